"""Digest authentication (services/pbx/auth.py): the maths, nonces bound to the address they went to,
nonce-counts used once, the digest uri bound to the Request-URI, the configured algorithms."""
import time

import pytest

from services.pbx.auth import DigestServer, NonceCounts, authorization, digest_response, parse_digest
from services.pbx.config import PbxConfig
from services.pbx.sip.message import Request

PHONE = ("udp", "192.0.2.20", 5060)


def signed(server: DigestServer, uri: str = "sip:office.lan", method: str = "REGISTER", source=PHONE,
           user: str = "201", password: str = "secret-201", challenge: str | None = None) -> Request:
    """A request answering a fresh challenge sent to `source` (or the given one)."""
    challenge = challenge or server.challenges(source[1])[0]
    req = Request(method, uri)
    req.source = source
    req.add("Authorization", authorization(challenge, method, uri, user, password))
    return req


def check(server: DigestServer, req: Request):
    return server.check(req, "Authorization")


def test_md5_sha256_failures_and_stale(monkeypatch):
    server = DigestServer("office.lan", {"201": "secret-201"}.get)
    for i in range(2):  # SHA-256, MD5 (one nonce for both: a client answers one of them)
        assert check(server, signed(server, challenge=server.challenges(PHONE[1])[i])).outcome == "ok"
    wrong, unknown = check(server, signed(server, password="wrong")), check(server, signed(server, user="299"))
    assert (wrong.outcome, wrong.proved) == (unknown.outcome, unknown.proved) == ("failed", True)
    # a nonce we never issued: a fresh challenge, whatever the response (no password oracle), not counted
    challenge = server.challenges(PHONE[1])[0]
    nonce = parse_digest(challenge)["nonce"]
    forged = nonce[:-1] + ("1" if nonce[-1] == "0" else "0")
    for password in ("secret-201", "wrong"):
        result = check(server, signed(server, password=password, challenge=challenge.replace(nonce, forged)))
        assert (result.outcome, result.proved) == ("stale", False)
    req = signed(server)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    assert check(server, req).outcome == "stale"
    # RFC 2617 example values (MD5, qop=auth)
    assert digest_response("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
                           "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth", "00000001", "0a4f113b") == \
        "6629fae49393a05397450978507c4ef1"


def test_each_nonce_count_is_accepted_once():
    server = DigestServer("office.lan", {"201": "secret-201"}.get)
    challenge = server.challenges(PHONE[1])[0]
    req = signed(server, challenge=challenge)
    assert check(server, req).outcome == "ok"
    replay = check(server, req)
    assert (replay.outcome, replay.proved) == ("stale", True)  # a fresh challenge, stale=true
    value = req.get("Authorization")

    def with_nc(nc: int) -> Request:
        p = parse_digest(value)
        again = Request("REGISTER", "sip:office.lan")
        again.source = PHONE
        resp = digest_response("SHA-256", "201", "office.lan", "secret-201", "REGISTER", "sip:office.lan",
                               p["nonce"], "auth", f"{nc:08x}", p["cnonce"])
        again.add("Authorization", value.replace(p["response"], resp).replace("nc=00000001", f"nc={nc:08x}"))
        return again
    assert check(server, with_nc(5)).outcome == "ok"  # the phone's next requests on the same nonce
    assert check(server, with_nc(3)).outcome == "ok"  # crossed on the way: still unused
    assert check(server, with_nc(3)).outcome == "stale"
    assert check(server, with_nc(200)).outcome == "ok"
    assert check(server, with_nc(100)).outcome == "stale"  # below the window: cannot be told apart


def test_replay_from_another_address_is_challenged_not_counted():
    server = DigestServer("office.lan", {"201": "secret-201"}.get)
    req = signed(server)
    req.source = ("udp", "203.0.113.66", 5060)
    result = check(server, req)
    assert (result.outcome, result.proved) == ("stale", False)
    req.source = PHONE
    assert check(server, req).outcome == "ok"


def test_digest_uri_must_name_the_request_uri():
    server = DigestServer("office.lan", {"201": "secret-201"}.get)
    req = signed(server, uri="sip:202@office.lan", method="INVITE")
    toll = Request("INVITE", "sip:00900123456@office.lan")
    toll.source, toll.headers = PHONE, req.headers
    assert check(server, toll).outcome == "missing"
    for other in ("sips:202@office.lan", "sip:202@other.example", "sip:2020@office.lan", "202@office.lan"):
        toll = Request("INVITE", "sip:202@office.lan")
        toll.source = PHONE
        toll.add("Authorization", authorization(server.challenges(PHONE[1])[0], "INVITE", other, "201", "secret-201"))
        assert check(server, toll).outcome == "missing", other
    for same in ("sip:202@OFFICE.LAN", "sip:202@office.lan:5070", "sip:202@office.lan;user=phone"):
        ok = Request("INVITE", same)
        ok.source = PHONE
        ok.add("Authorization", signed(server, uri="sip:202@office.lan", method="INVITE").get("Authorization"))
        assert check(server, ok).outcome == "ok", same


def test_only_configured_algorithms_are_accepted():
    server = DigestServer("office.lan", {"201": "secret-201"}.get, ("SHA-256",))
    [challenge] = server.challenges(PHONE[1])
    assert "algorithm=SHA-256" in challenge
    md5 = signed(server, challenge=challenge.replace("algorithm=SHA-256", "algorithm=MD5"))
    assert check(server, md5).outcome == "missing"  # challenged again with what we offer
    assert check(server, signed(server, challenge=challenge)).outcome == "ok"


def test_sha256_first_by_default_md5_alone_for_old_libre():
    cfg = PbxConfig()
    server = DigestServer("office.lan", {}.get, cfg.digest_algorithms, cfg.digest_md5_only_agents)
    assert server.offered("Yealink SIP-T46U 108.86.0.20") == ("SHA-256", "MD5")
    assert server.offered("baresip v1.0.0 (x86_64/linux)") == ("MD5",)  # libre 1.1 fails on any SHA-256
    assert server.offered("baresip v3.11.0 (x86_64/linux)") == ("MD5",)
    assert server.offered("baresip v3.12.0 (x86_64/linux)") == ("SHA-256", "MD5")
    sha_only = DigestServer("office.lan", {}.get, ("SHA-256",), cfg.digest_md5_only_agents)
    assert sha_only.offered("baresip v1.0.0 (x86_64/linux)") == ("SHA-256",)
    with pytest.raises(ValueError, match="regular expression"):
        PbxConfig(digest_md5_only_agents=["baresip ("])


def test_nonce_table_is_bounded_and_forgets_safely():
    counts = NonceCounts(limit=3)
    now = int(time.time())
    nonces = [f"{now - 10 + i:08x}" + "0" * 48 for i in range(4)]
    for i, nonce in enumerate(nonces):
        assert counts.first_use(nonce, now - 10 + i, 1)
    assert len(counts) == 3
    # the forgotten nonce (and any issued no later) can no longer be told used or not: stale
    assert not counts.first_use(nonces[0], now - 10, 2)
    assert not counts.first_use(nonces[1], now - 9, 2)
