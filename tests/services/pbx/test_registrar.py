"""Registrar and digest authentication over the wire, with a scripted client (exact control of credentials)."""
import sqlite3
import string
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.pbx.sip.message import Response

from .conftest import ALICE, BOB, CAROL, DAVE, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def shape(resp: Response) -> tuple:
    """What a response reveals: status, reason and header names (values hold random tags/nonces)."""
    return resp.status, resp.reason, sorted({name for name, _ in resp.headers})


def test_register_md5_several_contacts_and_removal(pbx):
    async def main():
        addr = ("127.0.0.1", pbx.port)
        async with SipClient(addr) as desk, SipClient(addr) as soft:
            assert (await desk.register("201", ALICE["sip_secret"])).status == 200
            resp = await soft.register("201", ALICE["sip_secret"], expires=120)
            assert resp.status == 200 and len(resp.get_all("Contact")) == 2
            regs = pbx.svc.registrations()
            assert sorted(r["source"] for r in regs) == sorted(f"udp:127.0.0.1:{c.port}" for c in (desk, soft))
            assert (await soft.register("201", ALICE["sip_secret"], expires=0)).status == 200
            assert [r["source"] for r in pbx.svc.registrations()] == [f"udp:127.0.0.1:{desk.port}"]
            too_short = await desk.register("201", ALICE["sip_secret"], expires=5)
            assert too_short.status == 423 and too_short.get("Min-Expires") == "60"
            # Contact: * with Expires: 0 removes every binding
            req = desk.request("REGISTER", f"sip:{addr[0]}", "201", headers={"Expires": "0"})
            req.set("Contact", "*")
            assert (await desk.authed(req, "201", ALICE["sip_secret"])).status == 200
            assert pbx.svc.registrations() == []
    run(main())


def test_register_sha256_when_offered(tmp_path):
    cfg = config([ALICE], digest_algorithms=["SHA-256", "MD5"])
    with PbxRunner(tmp_path / "p", cfg) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as c:
                c.send(c.request("REGISTER", "sip:127.0.0.1", "201"))
                challenge = await c.final()
                algs = [v.split("algorithm=")[1].split(",")[0] for v in challenge.get_all("WWW-Authenticate")]
                assert algs == ["SHA-256", "MD5"]
                resp = await c.register("201", ALICE["sip_secret"])  # the client picks SHA-256
                assert resp.status == 200
                assert (await c.register("201", "not-the-secret")).status == 403
        run(main())


def test_failures_look_the_same_for_unknown_and_known_users(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as c:
            wrong = await c.register("201", "wrong-password")
            unknown = await c.register("299", "whatever-pass")
            disabled = await c.register("204", DAVE["sip_secret"])
            assert shape(wrong) == shape(unknown) == shape(disabled)
            assert wrong.status == 403
            c.send(c.request("REGISTER", "sip:127.0.0.1", "201"))
            first = await c.final()
            c.send(c.request("REGISTER", "sip:127.0.0.1", "299"))
            second = await c.final()
            assert shape(first) == shape(second) and first.status == 401
            # valid credentials for another extension's AOR are refused
            req = c.request("REGISTER", "sip:127.0.0.1", "202")
            assert (await c.authed(req, "201", ALICE["sip_secret"])).status == 403
    run(main())


def test_bad_credentials_never_ring_a_phone(pbx):
    async def main():
        addr = ("127.0.0.1", pbx.port)
        async with SipClient(addr) as bob, SipClient(addr) as attacker:
            assert (await bob.register("202", BOB["sip_secret"])).status == 200
            attempts = [("201", "wrong-password"), ("299", "x" * 12), ("204", DAVE["sip_secret"]),
                        ("201", ""), ("202 ", BOB["sip_secret"] + "x")]
            for username, password in attempts:
                req = attacker.request("INVITE", f"sip:202@{addr[0]}", "201", body=SDP)
                resp = await attacker.authed(req, username, password)
                assert resp.status == 403, (username, resp)
            # no credentials at all: challenged, never routed
            attacker.send(attacker.request("INVITE", f"sip:202@{addr[0]}", "201", body=SDP))
            assert (await attacker.final()).status == 407
            # bob's phone never saw an INVITE
            try:
                msg = await bob.recv(timeout=0.5)
                raise AssertionError(f"bob received {msg!r}")
            except TimeoutError:
                pass
            assert pbx.svc.active_calls() == []
    run(main())


def test_repeated_failures_ban_the_source(tmp_path):
    cfg = config([ALICE, CAROL], abuse={"max_auth_failures": 3, "ban_seconds": 60})
    with PbxRunner(tmp_path / "p", cfg) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as bad:
                for _ in range(3):
                    assert (await bad.register("201", "wrong-password")).status == 403
                bad.send(bad.request("OPTIONS", "sip:127.0.0.1", "201"))
                try:
                    await bad.final(timeout=0.7)
                    raise AssertionError("a banned source got an answer")
                except TimeoutError:
                    pass
            assert [b["source"] for b in pbx.svc.bans()] == ["127.0.0.1"]
            # another source is still served
            async with SipClient(("127.0.0.1", pbx.port), local_host="127.0.0.2") as good:
                assert (await good.register("203", CAROL["sip_secret"])).status == 200
            pbx.svc.unban("127.0.0.1")
            async with SipClient(("127.0.0.1", pbx.port)) as again:
                assert (await again.register("201", ALICE["sip_secret"])).status == 200
        run(main())


def test_request_flood_bans_the_source(tmp_path):
    cfg = config([ALICE], abuse={"max_requests": 20, "request_window": 10})
    with PbxRunner(tmp_path / "p", cfg) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as flood:
                for _ in range(40):
                    flood.send(flood.request("OPTIONS", "sip:127.0.0.1", "x"))
                answers = 0
                try:
                    while True:
                        await flood.recv(timeout=0.5)
                        answers += 1
                except TimeoutError:
                    pass
                assert answers == 20
            assert pbx.svc.bans()
        run(main())


def test_disabled_user_loses_its_phones_on_reload(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as c:
            assert (await c.register("201", ALICE["sip_secret"])).status == 200
    run(main())
    assert [r["extension"] for r in pbx.svc.registrations()] == ["201"]
    pbx.reload(config([dict(ALICE, enabled=False), BOB]))
    assert pbx.svc.registrations() == []


def _tcp_register(port: int, sock, ext: str, secret: str, contact_port: int | None = None) -> Response:
    import secrets as _secrets

    from services.pbx.auth import authorization
    from services.pbx.sip.message import parse

    local = sock.getsockname()
    call_id = _secrets.token_hex(6)

    def send(cseq: int, auth: str | None) -> Response:
        lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
                 f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK{_secrets.token_hex(5)}",
                 f"From: <sip:{ext}@127.0.0.1>;tag=t1", f"To: <sip:{ext}@127.0.0.1>", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} REGISTER", f"Contact: <sip:{ext}@{local[0]}:{contact_port or local[1]};transport=tcp>",
                 "Expires: 300"] + ([f"Authorization: {auth}"] if auth else []) + ["Content-Length: 0", "", ""]
        sock.sendall("\r\n".join(lines).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65535)
        return parse(data)
    challenge = send(1, None)
    assert challenge.status == 401
    return send(2, authorization(challenge.get("WWW-Authenticate"), "REGISTER", "sip:127.0.0.1", ext, secret))


def test_tcp_binding_outlives_its_connection(pbx):
    import socket
    import time
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as sock:
        assert _tcp_register(pbx.port, sock, "202", BOB["sip_secret"]).status == 200
        [reg] = pbx.svc.registrations()
        assert reg["source"] == f"tcp:127.0.0.1:{sock.getsockname()[1]}"
    time.sleep(0.3)
    [kept] = pbx.svc.registrations()  # until it expires: a new connection to its contact reaches the phone
    assert kept["contact"] == reg["contact"] and kept["source"] == reg["source"]


def test_configuration_is_validated(ctx):
    from services.pbx import SERVICE
    cfg = config([ALICE, BOB], groups=[{"number": "201", "members": ["299"], "overflow": "201"}],
                 dids=[{"number": "0123", "destination": "777"}], permissions={"nobody": "local"},
                 extensions={"999": {}, "202": {"forward_always": "202"}})
    errors = SERVICE(ctx).validate(cfg)
    for path, text in (("pbx.groups.0.number", "uses an extension number"),
                       ("pbx.groups.0.members", "299 is not an extension"), ("pbx.groups.0.overflow", "to itself"),
                       ("pbx.dids.0.destination", "DID 0123"), ("pbx.extensions.999", "settings for 999"),
                       ("pbx.extensions.202.forward_always", "202 forwards to itself"),
                       ("pbx.permissions.nobody", "unknown user 'nobody'")):
        assert any(e.path == path and text in e.message for e in errors), (path, text, errors)
    assert SERVICE(ctx).validate(config([ALICE, BOB])) == []


_names = st.one_of(st.sampled_from(["201", "202", "203", "204", "299", "2010", "0201"]),
                   st.text(alphabet="0123456789abc*#", min_size=1, max_size=8))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=_names, password=st.text(alphabet=string.printable.strip().replace('"', "").replace("\\", ""),
                                         max_size=20))
def test_wrong_credentials_never_place_a_call(trusted_pbx, username, password):
    """Property: any credentials except an enabled user's own secret get 403 and no phone rings."""
    real = {u["extension"]: u["sip_secret"] for u in (ALICE, BOB, CAROL)}
    assume(real.get(username) != password)

    async def main():
        addr = ("127.0.0.1", trusted_pbx.port)
        async with SipClient(addr) as attacker:
            req = attacker.request("INVITE", f"sip:202@{addr[0]}", "201", body=SDP)
            resp = await attacker.authed(req, username, password)
            assert resp.status == 403, resp
    run(main())
    assert trusted_pbx.svc.active_calls() == []
    assert trusted_pbx.svc.cdr_query() == []


@pytest.fixture(scope="module")
def trusted_pbx(tmp_path_factory):
    """One PBX for all examples; loopback trusted so the ban does not cut the property test short."""
    with PbxRunner(tmp_path_factory.mktemp("pbx"), config([ALICE, BOB, CAROL, DAVE],
                                                          abuse={"trusted": ["127.0.0.1"]})) as runner:
        yield runner


def test_required_extension_and_codec_mismatch_are_refused(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as c:
            c.send(c.request("INVITE", "sip:202@127.0.0.1", "201", body=SDP, headers={"Require": "100rel"}))
            resp = await c.final()
            assert resp.status == 420 and resp.get("Unsupported") == "100rel"
            req = c.request("INVITE", "sip:202@127.0.0.1", "201")  # delayed offer, bob is not registered
            assert (await c.authed(req, "201", ALICE["sip_secret"])).status == 480
            req = c.request("INVITE", "sip:202@127.0.0.1", "201", body=SDP.replace(b"0 101", b"18 101"))
            assert (await c.authed(req, "201", ALICE["sip_secret"])).status == 488  # G.729 only
    run(main())
    deadline = time.monotonic() + 5  # the record is written just after the answer left
    while len(pbx.svc.cdr_query()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(r["status"] for r in pbx.svc.cdr_query()) == [480, 488]


def test_port_in_use_fails_cleanly_and_status_reports_down(ctx):
    import socket as _socket

    from services.pbx import SERVICE
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        cfg = config([ALICE], lab_sip_port=busy.getsockname()[1])
        svc = SERVICE(ctx)
        with pytest.raises(OSError):
            run(svc.start(cfg))
        assert svc.status().health == "down" and svc.registrations() == []
        assert svc.cdr_query() == []  # call records stay readable while stopped


def stored_rows(data_dir) -> list[tuple]:
    """(extension, contact, transport, ip, port) rows, read by another connection as a new process would."""
    path = data_dir / "state" / "pbx" / "registrations.sqlite"
    with sqlite3.connect(path) as db:
        return db.execute("SELECT extension, contact, transport, ip, port FROM bindings ORDER BY contact").fetchall()


def test_registrations_survive_a_restart(tmp_path):
    """A real phone registered once is called after the PBX restarted, without registering again."""
    import asyncio
    from contextlib import ExitStack

    from .baresip import Baresip
    with ExitStack() as stack:
        first = PbxRunner(tmp_path / "p", config([ALICE, BOB])).__enter__()
        try:
            phone = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                                registrar=first.registrar, regint=3600))
            phone.register()
            port = first.port
        finally:
            first.__exit__(None, None, None)  # the PBX stops, the phone stays up
        rows = [(ext, transport, ip, port) for ext, _, transport, ip, port in stored_rows(tmp_path / "p")]
        assert rows == [("201", "udp", "127.0.0.1", phone.sip_port)]
        again = stack.enter_context(PbxRunner(tmp_path / "p", config([ALICE, BOB], lab_sip_port=port)))
        [reg] = again.svc.registrations()
        assert reg["extension"] == "201" and reg["user_agent"].startswith("baresip")

        async def main():
            async with SipClient(("127.0.0.1", again.port)) as caller:
                req = caller.request("INVITE", "sip:201@127.0.0.1", "202", body=SDP)
                ok, _ = await asyncio.gather(caller.authed(req, "202", BOB["sip_secret"], timeout=15),
                                             phone.aio.answer())
                assert ok.status == 200
        run(main())
        assert again.svc.core.counters["registrations"] == 0  # the phone never registered again
