"""Call park with real phones: bob transfers his call with alice to the park code, hears the slot
number, alice hears music on hold, the slot's busy lamp lights; carol dials the slot and talks with
alice. Unretrieved, a parked call rings the parker again, then the fallback."""
import asyncio
import time
from contextlib import ExitStack

import pytest

from services.pbx.features import park

from .baresip import Baresip, have_baresip
from .blfwatch import Watcher
from .conftest import ALICE, BOB, CAROL, run, seed_prompts
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
SECRETS = {u["extension"]: u["sip_secret"] for u in (ALICE, BOB, CAROL)}


@pytest.fixture(scope="module")
def prompts(prompt_set):
    """The voice prompts, made once for the session (conftest.prompt_set) and linked into each test's box."""
    return prompt_set


def box(tmp_path, prompts, **pbx) -> PbxRunner:
    seed_prompts(prompts, tmp_path / "pbx")
    return PbxRunner(tmp_path / "pbx", config([ALICE, BOB, CAROL], **pbx))


def phones(stack: ExitStack, pbx: PbxRunner, *exts: str) -> list[Baresip]:
    uas = [stack.enter_context(Baresip(f"p{e}", user=e, password=SECRETS[e], registrar=pbx.registrar)) for e in exts]
    for ua in uas:
        ua.register()
    return uas


def parked(pbx: PbxRunner, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lot = pbx.sync(lambda: {slot: p for slot, p in park.lot(pbx.svc.core).items() if p.channel.media is not None})
        if lot:
            return lot
        time.sleep(0.1)
    raise AssertionError("nothing was parked")


def park_alice(alice: Baresip, bob: Baresip, code: str = "*70") -> None:
    alice.dial("202")
    bob.answer()
    alice.wait_for("CALL_ESTABLISHED")
    bob.wait_rtp(rx=10)
    bob.transfer(code)


def test_park_announce_music_blf_and_retrieve(tmp_path, prompts):
    with box(tmp_path, prompts) as pbx, ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")

        async def watch_and_park():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                lamp = Watcher(x, "203", SECRETS["203"])
                assert await lamp.subscribe("701") == 200  # a desk phone's park key
                await asyncio.to_thread(park_alice, alice, bob)
                lot = await asyncio.to_thread(parked, pbx)
                lit = await lamp.states("701", "confirmed")
                rx = alice.rtp_stats()["rx"]
                await asyncio.to_thread(alice.wait_rtp, 0, rx + 50)  # music on hold reaches alice
                await asyncio.to_thread(carol.dial, "701")
                await asyncio.to_thread(carol.wait_for, "CALL_ESTABLISHED")
                return lot, lit, await lamp.states("701", "terminated")
        lot, lit, after = run(watch_and_park())
        assert list(lot) == ["701"] and lot["701"].parker == "202"
        assert [p.rsplit("/", 1)[1] for p in lot["701"].announced] == [
            "park-parked-on-8000.wav", "num-7-8000.wav", "num-0-8000.wav", "num-1-8000.wav"]
        bob.wait_for("CALL_CLOSED")
        assert "confirmed" in lit and after[-1] == "terminated"
        c, a = carol.rtp_stats()["rx"], alice.rtp_stats()["rx"]
        carol.wait_rtp(rx=c + 25)
        alice.wait_rtp(rx=a + 25)
        [call] = pbx.svc.active_calls()
        assert set(call["parties"]) == {"201", "203"}
        assert pbx.sync(lambda: dict(park.lot(pbx.svc.core))) == {}
        carol.dial("701")  # nothing parked there any more: the prompt, then hung up
        assert carol.wait_for("CALL_ESTABLISHED")
        carol.wait_for("CALL_CLOSED", timeout=15)
        alice.hangup()
        carol.wait_for("CALL_CLOSED")


def test_park_timeout_rings_the_parker_then_the_fallback(tmp_path, prompts):
    with box(tmp_path, prompts, park={"timeout": 10, "ring_back": 5, "fallback": "203"}) as pbx, ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")
        park_alice(alice, bob, "702")  # a park key of slot 702: parked there
        assert list(parked(pbx)) == ["702"]
        bob.wait_for("CALL_CLOSED")
        started = time.monotonic()
        ring = bob.wait_for("CALL_INCOMING", timeout=20)  # the timeout: bob's phone rings; he does not answer
        assert ring["peeruri"].startswith("sip:201@")
        assert time.monotonic() - started >= 5
        carol.answer(timeout=15)  # then the fallback
        carol.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_CLOSED")
        c = carol.rtp_stats()["rx"]
        carol.wait_rtp(rx=c + 25)
        assert {p for call in pbx.svc.active_calls() for p in call["parties"]} == {"201", "203"}
        carol.hangup()
        alice.wait_for("CALL_CLOSED")


def test_a_parked_caller_hanging_up_frees_the_slot(tmp_path, prompts):
    with box(tmp_path, prompts) as pbx, ExitStack() as stack:
        alice, bob = phones(stack, pbx, "201", "202")

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                lamp = Watcher(x, "202", SECRETS["202"])
                assert await lamp.subscribe("701") == 200
                await asyncio.to_thread(park_alice, alice, bob)
                await asyncio.to_thread(parked, pbx)
                await lamp.states("701", "confirmed")
                await asyncio.to_thread(alice.hangup)
                return await lamp.states("701", "terminated")
        states = run(main())
        assert states[-1] == "terminated"
        deadline = time.monotonic() + 5
        while pbx.sync(lambda: dict(park.lot(pbx.svc.core))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pbx.sync(lambda: dict(park.lot(pbx.svc.core))) == {} and pbx.svc.active_calls() == []
