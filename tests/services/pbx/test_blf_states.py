"""Busy lamp fields (RFC 4235 dialog package) seen by a subscribing UA while real phones call: the
callee's lamp goes early -> confirmed -> terminated, the caller's trying/early -> confirmed ->
terminated, and the documents carry what a BLF key needs (the dialog's SIP ids, the other party)."""
import asyncio
from contextlib import ExitStack

import pytest

from .baresip import Baresip, have_baresip
from .blfwatch import Watcher
from .conftest import ALICE, BOB, CAROL, run
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_notify_states_follow_a_call(pbx):
    with ExitStack() as stack:
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"], registrar=pbx.registrar))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar))
        alice.register()
        bob.register()

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                carol = Watcher(x, "203", CAROL["sip_secret"])
                assert await carol.subscribe("202") == 200
                assert await carol.subscribe("201") == 200
                idle = await carol.states("202", "never", timeout=0.5)
                await asyncio.to_thread(alice.dial, "202")
                await asyncio.to_thread(bob.answer)
                await asyncio.to_thread(alice.wait_for, "CALL_ESTABLISHED")
                await carol.states("202", "confirmed")
                await asyncio.sleep(0.3)
                await asyncio.to_thread(alice.hangup)
                return idle, await carol.states("202", "terminated"), await carol.states("201", "terminated"), carol
        idle, callee, caller, carol = run(main())
    assert idle == []  # the first NOTIFY: no dialog, the lamp is off
    assert [s for i, s in enumerate(callee) if i == 0 or callee[i - 1] != s] == ["early", "confirmed", "terminated"]
    assert callee[-1] == "terminated" and carol.notifies["202"][-1][0]["state"] == "terminated"
    assert caller[0] in ("trying", "early") and caller.index("confirmed") < caller.index("terminated")
    confirmed = next(d for body in carol.notifies["202"] for d in body if d["state"] == "confirmed")
    assert confirmed["direction"] == "recipient" and confirmed["call-id"] and confirmed["remote-tag"]
    assert confirmed["local-tag"]  # bob's own tag, known once he answered
    assert confirmed["remote"].startswith("sip:201@")
    outgoing = next(d for body in carol.notifies["201"] for d in body if d["state"] == "confirmed")
    assert outgoing["direction"] == "initiator" and outgoing["remote"].startswith("sip:202@")
