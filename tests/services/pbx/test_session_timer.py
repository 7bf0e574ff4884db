"""Session timers (RFC 4028) and the maximum call duration: a scripted caller that stops refreshing
its session, one that is gone when the box refreshes, and a scripted callee (no timer support) gone
at the box's refresh re-INVITE, all end with BYE on both sides (their baresip partners hang up) and a
CDR reason; too short an interval gets 422; a call of a class with a maximum duration ends on time
and frees its trunk channel."""
import asyncio
import time
from contextlib import ExitStack

import pytest

from services.pbx.session_timer import SessionTimer
from services.pbx.sip.message import Request, Response, response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE, run
from .pbxrunner import PbxRunner, config, user
from .rawphone import answer, in_dialog, next_request, sdp
from .sipclient import SipClient
from .test_calls import phones
from .test_trunks import LINE, REMOTE, wait

ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")
SCALE = 0.2  # SessionTimer.time_scale in the tests that wait for a session to lapse


async def call(x: SipClient, port: int, number: str, callee: Baresip, headers: dict) -> Response:
    req = x.request("INVITE", f"sip:{number}@127.0.0.1:{port}", "201", body=sdp(4000), headers=headers)
    ok, _ = await asyncio.gather(x.authed(req, "201", ALICE["sip_secret"], timeout=15), callee.aio.answer())
    assert ok.status == 200
    x.send(in_dialog(x, "ACK", ok, ok.call_id))
    return ok


def test_too_short_an_interval_gets_422(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            req = x.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "201", body=sdp(4000),
                            headers={"Supported": "timer", "Session-Expires": "30"})
            return await x.authed(req, "201", ALICE["sip_secret"])
    resp = run(main())
    assert resp.status == 422 and resp.get("Min-SE") == "90"


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_sessions_that_are_not_refreshed_end_both_sides(tmp_path, monkeypatch):
    monkeypatch.setattr(SessionTimer, "time_scale", SCALE)  # the 90 s sessions play out in 18 s
    cfg = config([ALICE, BOB, CAROL, DAVE, ERIN], session_expires=90, min_se=90)
    with PbxRunner(tmp_path / "pbx", cfg) as pbx, ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as quiet, SipClient(("127.0.0.1", pbx.port)) as gone, \
                    SipClient(("127.0.0.1", pbx.port)) as erin:
                answered = {}  # when each session's timer started (its 2xx), for the times below
                # erin: a callee without session timers; the box refreshes it, the refresh finds it gone
                assert (await erin.register("205", ERIN["sip_secret"])).status == 200
                await alice.aio.dial("205")
                inv = await next_request(erin, "INVITE", 10)
                answered["erin"] = time.monotonic()
                answer(erin, inv, 200, "erintag", sdp(4002))
                await alice.aio.wait_for("CALL_ESTABLISHED")
                # quiet: supports timers, is the refresher, never refreshes
                ok1 = await call(quiet, pbx.port, "202", bob,
                                 {"Supported": "timer", "Session-Expires": "90;refresher=uac"})
                answered["quiet"] = time.monotonic()
                assert ok1.get("Session-Expires") == "90;refresher=uac" and ok1.get("Require") == "timer"
                # gone: no timer support, so the box refreshes; the refresh finds no dialog there any more
                ok2 = await call(gone, pbx.port, "203", carol, {"Allow": "INVITE, ACK, BYE, CANCEL, UPDATE"})
                answered["gone"] = time.monotonic()
                assert ok2.get("Session-Expires") == "90;refresher=uas"
                results = {}

                async def serve(x: SipClient, name: str, refresh_status: int) -> None:
                    while name not in results:
                        try:
                            msg = await x.recv(timeout=30)
                        except TimeoutError:
                            return
                        if not isinstance(msg, Request):
                            continue
                        since = round((time.monotonic() - answered[name]) / SCALE, 1)  # in session seconds
                        if msg.method in ("UPDATE", "INVITE"):
                            results[name + "_refresh"] = (msg.method, since)
                            x.send(response_to(msg, refresh_status))
                        elif msg.method == "BYE":
                            x.send(response_to(msg, 200))
                            results[name] = since
                await asyncio.gather(serve(quiet, "quiet", 200), serve(gone, "gone", 481), serve(erin, "erin", 481))
                return results
        results = run(main(), timeout=60)
        # quiet never refreshed: BYE at 90 - 30 s; gone: refreshed by UPDATE at 45 s, answered 481 (session
        # seconds: the lower bounds are the timers', the upper ones leave 3 s of slack for a loaded machine)
        slack = 3 / SCALE
        assert 60 - 2.5 <= results["quiet"] <= 60 + slack, results
        assert results["gone_refresh"][0] == "UPDATE" and 45 - 2.5 <= results["gone_refresh"][1] <= 45 + slack, results
        assert 45 - 2.5 <= results["gone"] <= 45 + slack, results
        assert "quiet_refresh" not in results
        assert results["erin_refresh"][0] == "INVITE" and 45 <= results["erin"] <= 45 + slack, results
        bob.wait_for("CALL_CLOSED")
        carol.wait_for("CALL_CLOSED")
        alice.wait_for("CALL_CLOSED")
        rows = wait(lambda: len(pbx.svc.cdr_query()) == 3 and pbx.svc.cdr_query(), what="three call records")
        assert sorted((r["callee"], r["end_reason"]) for r in rows) == [
            ("202", "session_expired"), ("203", "session_expired"), ("205", "session_expired")]


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_maximum_call_duration_per_class_frees_the_trunk_channel(tmp_path):
    with ExitStack() as stack:
        carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, REMOTE]), host="127.0.0.2"))
        box_cfg = config([ALICE, BOB, CAROL, DAVE], max_call_duration={"national": 2, "internal": 0},
                         trunks=[{"name": "carrier", "host": "127.0.0.2", "port": carrier.port, "username": "5000",
                                  "auth_password": LINE["sip_secret"], "registration": True}],
                         routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}])
        box = stack.enter_context(PbxRunner(tmp_path / "box", box_cfg))
        wait(lambda: box.svc.trunks()[0]["registered"], what="trunk registration")
        [alice] = phones(stack, box, "201")
        remote = stack.enter_context(Baresip("remote", user="6000", password=REMOTE["sip_secret"],
                                             registrar=carrier.registrar, addr="127.0.0.2"))
        remote.register()
        alice.dial("6000")
        remote.answer()
        alice.wait_for("CALL_ESTABLISHED")
        started = time.monotonic()
        assert box.svc.trunks()[0]["channels_in_use"] == 1
        alice.wait_for("CALL_CLOSED")
        remote.wait_for("CALL_CLOSED")
        assert 1.5 <= time.monotonic() - started <= 5
        assert box.svc.trunks()[0]["channels_in_use"] == 0
        [row] = wait(lambda: box.svc.cdr_query(), what="the call record")
        assert (row["disposition"], row["trunk"], row["end_reason"]) == ("answered", "carrier", "max_duration")
