"""Self-test of the load generator against its own challenging UAS (no PBX): `pytest bench/`."""
from __future__ import annotations

import asyncio

from bench.sipload import scenarios, sip
from bench.sipload.endpoint import Endpoint

USERS = {f"2{i:03d}": f"secret-{i}" for i in range(10)} | {f"3{i:03d}": f"pw-{i}" for i in range(10)}


async def _target() -> tuple[scenarios.Target, Endpoint]:
    uas = await Endpoint.open(users=USERS, realm="selftest")
    callers = [(u, p) for u, p in USERS.items() if u.startswith("2")]
    callees = [(u, p) for u, p in USERS.items() if u.startswith("3")]
    return scenarios.Target(uas.addr, "127.0.0.1", callers, callees), uas


def test_register_load_authenticates():
    async def go():
        target, uas = await _target()
        try:
            good = await scenarios.register_load(target, seconds=1, workers=4)
            target.users_for_register = [("2000", "wrong-password")]
            bad = await scenarios.register_load(target, seconds=0.5, workers=2)
        finally:
            uas.close()
        return good, bad
    good, bad = asyncio.run(go())
    assert good["ok"] > 20 and good["failed"] == 0
    assert bad["ok"] == 0 and set(bad["failures"]) == {"401"}


def test_call_load_full_cycles():
    async def go():
        target, uas = await _target()
        try:
            return await scenarios.call_load(target, seconds=1, workers=5, uas=uas), uas.stats
        finally:
            uas.close()
    result, uas_stats = asyncio.run(go())
    assert result["ok"] > 10 and result["failed"] == 0 and result["ringing"] == result["ok"]
    assert uas_stats["byes"] >= result["ok"] and uas_stats["invites"] >= result["ok"]


def test_media_load_counts_loss_and_jitter():
    async def go():
        target, uas = await _target()
        try:
            return await scenarios.media_load(target, calls=5, seconds=1, setup_workers=2, uas=uas)
        finally:
            uas.close()
    result = asyncio.run(go())
    assert result["established"] == 5 and result["media_streams"] == 10
    assert result["packets_sent"] == 10 * 50
    assert result["loss_pct"] < 1 and result["silent_streams"] == 0
    assert 0 <= result["jitter_mean_ms"] < 20 and result["bye_failed"] == 0


def test_digest_matches_rfc_2617_example():
    challenge = {"realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "qop": "auth",
                 "opaque": "5ccc069c403ebaf9f0171e9517f40e41"}
    answer = sip.digest_answer(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    params = sip.parse_challenge(answer)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"     # the RFC's worked example
    assert params["username"] == "Mufasa" and params["opaque"] == challenge["opaque"]
    ok = sip.check_digest(answer, "GET", {"Mufasa": "Circle Of Life"}.get, "testrealm@host.com")
    assert ok == "Mufasa"
    assert sip.check_digest(answer, "GET", {"Mufasa": "wrong"}.get, "testrealm@host.com") is None


def test_parser_rejects_garbage():
    import pytest
    for data in (b"", b"\xff\xfe", b"INVITE\r\n\r\n", b"SIP/2.0 abc OK\r\n\r\n", b"A b SIP/2.0\r\nbad\r\n\r\n"):
        with pytest.raises(sip.SipError):
            sip.parse(data)
    msg = sip.parse(b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\r\n"
                    b"i: x\r\nCSeq: 7 INVITE\r\n\r\n")
    assert msg.status == 180 and msg.branch == "z9hG4bK1" and len(msg.all("via")) == 2
    assert msg.cseq == (7, "INVITE") and msg.call_id == "x"
