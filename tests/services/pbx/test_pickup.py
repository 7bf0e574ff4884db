"""Call pickup with real phones: group pickup (the pickup code, a ring group's members), directed
pickup (the directed code + an extension) and a BLF key's INVITE with Replaces (RFC 3891) built from
the dialog package's NOTIFY. The phone that rang gets CANCEL with "call completed elsewhere"; the
call record names the picker."""
import asyncio
import time
from contextlib import ExitStack

import pytest

from services.pbx.sip.message import Response, response_to

from .baresip import Baresip, have_baresip
from .blfwatch import Watcher, dialogs
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .rawphone import answer, in_dialog, next_request, sdp
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
SECRETS = {u["extension"]: u["sip_secret"] for u in (ALICE, BOB, CAROL)}


def phone(stack: ExitStack, pbx: PbxRunner, ext: str) -> Baresip:
    ua = stack.enter_context(Baresip(f"p{ext}", user=ext, password=SECRETS[ext], registrar=pbx.registrar))
    ua.register()
    return ua


def picked_up_row(pbx: PbxRunner, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in pbx.svc.cdr_query() if r["end_reason"] == "picked_up"]
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"no picked-up call record in {pbx.svc.cdr_query()}")


def talk_and_hang_up(pbx: PbxRunner, caller: Baresip, picker: Baresip) -> None:
    caller.wait_for("CALL_ESTABLISHED")
    picker.wait_for("CALL_ESTABLISHED")
    c, p = caller.rtp_stats()["rx"], picker.rtp_stats()["rx"]
    caller.wait_rtp(rx=c + 25)  # both hear each other through the relay
    picker.wait_rtp(rx=p + 25)
    [call] = pbx.svc.active_calls()
    assert set(call["parties"]) == {caller.user, picker.user}
    picker.hangup()
    caller.wait_for("CALL_CLOSED")


@pytest.fixture
def pbx(tmp_path):
    cfg = config([ALICE, BOB, CAROL], groups=[{"number": "600", "members": ["202", "203"]}])
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


def test_group_pickup_cancels_the_ringing_phone_as_completed_elsewhere(pbx):
    with ExitStack() as stack:
        alice, carol = phone(stack, pbx, "201"), phone(stack, pbx, "203")

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as bob:  # bob's phone rings: a scripted one
                assert (await bob.register("202", SECRETS["202"])).status == 200
                await asyncio.to_thread(alice.dial, "202")
                inv = await next_request(bob, "INVITE")
                answer(bob, inv, 180, "bobtag")
                await asyncio.to_thread(carol.dial, "*8")
                cancel = await next_request(bob, "CANCEL", timeout=10)
                bob.send(response_to(cancel, 200))
                answer(bob, inv, 487, "bobtag")
                return cancel
        cancel = run(main())
        assert "Call completed elsewhere" in (cancel.get("Reason") or "")
        talk_and_hang_up(pbx, alice, carol)
    row = picked_up_row(pbx)
    assert (row["caller"], row["dialled"], row["callee"], row["disposition"]) == ("201", "202", "203", "answered")


def test_directed_pickup_and_refusals(pbx):
    with ExitStack() as stack:
        alice, bob, carol = (phone(stack, pbx, e) for e in ("201", "202", "203"))
        alice.dial("**202")  # nothing rings at 202: refused
        assert alice.wait_for("CALL_CLOSED")["param"].startswith("480")
        alice.dial("*8")  # alice is in no pickup group
        assert alice.wait_for("CALL_CLOSED")["param"].startswith("480")
        carol.dial("202")  # carol rings bob; alice takes it by extension
        bob.wait_for("CALL_INCOMING")
        alice.dial("**202")
        bob.wait_for("CALL_CLOSED")
        talk_and_hang_up(pbx, carol, alice)
    row = picked_up_row(pbx)
    assert (row["caller"], row["dialled"], row["callee"]) == ("203", "202", "201")


def test_blf_key_picks_up_with_replaces(pbx):
    """Carol's BLF key for bob: the NOTIFY of his ringing dialog names its call-id and tags and, as local
    target, the directed pickup code; her phone's INVITE with Replaces takes the call."""
    with ExitStack() as stack:
        alice, bob = phone(stack, pbx, "201"), phone(stack, pbx, "202")

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                carol = Watcher(x, "203", SECRETS["203"])
                assert await carol.subscribe("202") == 200
                await asyncio.to_thread(alice.dial, "202")
                await asyncio.to_thread(bob.wait_for, "CALL_INCOMING")
                assert "early" in await carol.states("202", "early")
                [ringing] = [d for body in carol.notifies["202"] for d in body if d["state"] == "early"][:1]
                assert ringing["direction"] == "recipient" and ringing["local_target"].startswith("sip:**202@")
                assert ringing["remote"].startswith("sip:201@")
                assert ringing["local-tag"] and ringing["remote-tag"]  # bob's tag (from his 180) and ours
                inv = x.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "203", body=sdp(4990), headers={
                    "Replaces": f"{ringing['call-id']};to-tag={ringing['remote-tag']};"
                                f"from-tag={ringing['local-tag']}"})
                x.send(inv)
                challenge = await carol.pump(lambda m: isinstance(m, Response) and m.status == 407)
                x.answer_challenge(inv, challenge, "203", SECRETS["203"])
                ok = await carol.pump(lambda m: isinstance(m, Response) and m.cseq[1] == "INVITE" and m.status >= 200)
                assert ok.status == 200 and b"m=audio" in ok.body
                x.send(in_dialog(x, "ACK", ok, ok.call_id))
                await asyncio.to_thread(bob.wait_for, "CALL_CLOSED")
                await asyncio.to_thread(alice.wait_for, "CALL_ESTABLISHED")
                states = await carol.states("202", "terminated")
                x.send(in_dialog(x, "BYE", ok, ok.call_id))
                bye_ok = await carol.pump(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")
                return states, bye_ok
        states, bye_ok = run(main())
        assert bye_ok.status == 200
        assert states.index("early") < states.index("terminated") and "confirmed" not in states
        alice.wait_for("CALL_CLOSED")
    row = picked_up_row(pbx)
    assert (row["caller"], row["dialled"], row["callee"]) == ("201", "202", "203")


def test_replaces_of_an_unknown_dialog_is_481(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            inv = x.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "203", body=sdp(4990),
                            headers={"Replaces": "nosuchcall;to-tag=a;from-tag=b"})
            return await x.authed(inv, "203", SECRETS["203"])
    assert run(main()).status == 481


def test_a_carrier_cannot_pick_up_with_replaces(tmp_path):
    """Only the box's own phones pick up: an INVITE from a trunk naming a ringing dialog in Replaces is
    an ordinary incoming call (its DID rings bob again), it does not take alice's call."""
    cfg = config([ALICE, BOB, CAROL], trunks=[{"name": "carrier", "host": "127.0.0.1"}],
                 dids=[{"number": "0145000202", "destination": "202"}])
    with PbxRunner(tmp_path / "pbx", cfg) as pbx, ExitStack() as stack:
        alice, bob = phone(stack, pbx, "201"), phone(stack, pbx, "202")

        async def main():
            await asyncio.to_thread(alice.dial, "202")
            await asyncio.to_thread(bob.wait_for, "CALL_INCOMING")
            await asyncio.sleep(0.3)  # the dialog ids as a BLF watcher gets them
            body = pbx.sync(lambda: pbx.svc.core.subscriptions.packages["dialog"].body("202", 1, "sip:202@h"))
            [ringing] = dialogs(body)
            async with SipClient(("127.0.0.1", pbx.port)) as carrier:
                inv = carrier.request("INVITE", f"sip:0145000202@127.0.0.1:{pbx.port}", "0600000000",
                                      body=sdp(4990), headers={
                                          "Replaces": f"{ringing['call-id']};to-tag={ringing['remote-tag']};"
                                                      f"from-tag={ringing['local-tag']}"})
                carrier.send(inv)
                await asyncio.to_thread(bob.wait_for, "CALL_INCOMING")  # the DID rings bob: a new call
                return alice.call_state()
        assert run(main()) != "CALL_ESTABLISHED"
        assert len(pbx.svc.active_calls()) == 2
