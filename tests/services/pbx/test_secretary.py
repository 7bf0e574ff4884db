"""Manager / secretary with real baresip phones: alice (201) is the manager, bob (202) her secretary,
carol (203) a colleague; callers from outside come in on a carrier trunk (a baresip on 127.0.0.3,
DID 5000 -> 201). Screening rings the secretary, not the manager; the bypass list and screening off
ring the manager; the manager's screening feature code changes the configuration through the apply
engine (changes.py kind "screening"); the intercom code calls the other one with auto-answer headers."""
from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from appliance.apply import ApplyEngine
from appliance.changerequests import ChangeRequests
from appliance.store import ConfigStore

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .rawphone import answer, invite, next_request, sdp
from .test_conformance_calls import _registered
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
OUTSIDE, VIP = "0611223344", "0699887766"


def _cfg(screening: bool = True, bypass=("203", VIP)):
    return config([ALICE, BOB, CAROL], digest_algorithms=["MD5"], codecs=["PCMU"],
                  trunks=[{"name": "carrier", "host": "127.0.0.3"}], dids=[{"number": "5000", "destination": "201"}],
                  secretaries=[{"manager": "201", "secretary": "202", "screening": screening, "bypass": list(bypass)}],
                  extensions={ext: {"voicemail": False} for ext in ("201", "202", "203")})  # a busy phone: 486


class Office:
    def __init__(self, stack: ExitStack, pbx: PbxRunner) -> None:
        self.pbx = pbx
        self.phones = {}
        for who in (ALICE, BOB, CAROL):
            ua = stack.enter_context(Baresip(who["login"], user=who["extension"], password=who["sip_secret"],
                                             registrar=pbx.registrar, auto_answer=False))
            ua.register()
            self.phones[who["extension"]] = ua
        self.outside = {n: stack.enter_context(Baresip(f"out{n}", user=n, addr="127.0.0.3")) for n in (OUTSIDE, VIP)}

    def rings(self, caller: Baresip, number: str) -> str:
        """Who of alice and bob rings when `caller` dials `number` (the call is then hung up)."""
        caller.dial(number if "@" in number or number.startswith("2") else f"sip:{number}@{self.pbx.registrar}")
        deadline = time.monotonic() + 10
        rung = None
        while rung is None and time.monotonic() < deadline:
            for ext in ("201", "202"):
                if self.phones[ext].call_state() == "CALL_INCOMING":
                    rung = ext
            time.sleep(0.05)
        time.sleep(0.3)  # the other one would be ringing by now too
        both = [ext for ext in ("201", "202") if self.phones[ext].call_state() == "CALL_INCOMING"]
        caller.hangup()
        for ext in both:
            self.phones[ext].wait_for("CALL_CLOSED")
        caller.wait_for("CALL_CLOSED")
        return ",".join(both) or "nobody"


@pytest.fixture
def office(tmp_path):
    with ExitStack() as stack:
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", _cfg()))
        yield Office(stack, pbx)


def test_screening_rings_the_secretary_and_the_bypass_list_the_manager(office):
    assert office.rings(office.outside[OUTSIDE], "5000") == "202"  # from outside: the secretary
    assert office.rings(office.outside[VIP], "5000") == "201"      # a caller on the bypass list
    assert office.rings(office.phones["203"], "201") == "201"      # a colleague on the bypass list
    office.pbx.reload(_cfg(bypass=()))
    assert office.rings(office.phones["203"], "201") == "202"      # ... and once off it
    office.pbx.reload(_cfg(screening=False))
    assert office.rings(office.outside[OUTSIDE], "5000") == "201"  # screening off


def test_the_secretary_puts_a_screened_call_through(office):
    outside, bob, alice = office.outside[OUTSIDE], office.phones["202"], office.phones["201"]
    outside.dial(f"sip:5000@{office.pbx.registrar}")
    bob.answer()
    outside.wait_for("CALL_ESTABLISHED")
    bob.transfer("201")  # blind transfer to the manager: not screened again
    alice.answer()
    outside.wait_rtp(rx=20)
    alice.hangup()
    outside.wait_for("CALL_CLOSED")


class Supervisor:
    """The root's part for the PBX run by the test: reloads go to the PBX runner's loop."""

    def __init__(self, pbx: PbxRunner) -> None:
        self.pbx = pbx

    def run(self, coro, timeout: float):
        return self.pbx.call(coro, timeout)

    async def reconfigure(self, name: str, config) -> None:
        await self.pbx.svc.reload(config)


def test_the_manager_switches_screening_by_feature_code(office, tmp_path):
    pbx = office.pbx
    engine = ApplyEngine(pbx.ctx, ConfigStore(pbx.ctx.db_path), {"pbx": pbx.svc})
    engine.apply(pbx.cfg, "test", "the office")
    engine.live = Supervisor(pbx)
    requests = ChangeRequests(engine, {"pbx": pbx.svc}, pbx.svc.core.events.bus)
    try:
        alice = office.phones["201"]
        alice.dial("*48")
        alice.wait_for("CALL_ESTABLISHED", timeout=30)  # the prompts are made on first use
        wait(lambda: not pbx.svc.core.cfg.secretaries[0].screening, timeout=30, what="screening off")
        alice.wait_for("CALL_CLOSED", timeout=30)
        assert engine.current_config().pbx.secretaries[0].screening is False
        assert "screening of 201 off" in engine.store.current().summary
        assert office.rings(office.outside[OUTSIDE], "5000") == "201"
    finally:
        requests.close()


def test_intercom_asks_the_other_phone_to_answer_on_the_speaker(tmp_path):
    """baresip 1.0 ignores these headers (it has no header-driven auto-answer): scripted phones check them
    on the wire, both ways, and that a plain call to the secretary carries none."""
    async def main(pbx):
        async with _registered(pbx, "201", "202") as (alice, bob):
            for caller, callee, ext, number in ((alice, bob, "201", "*49"), (bob, alice, "202", "*49"),
                                                (alice, bob, "201", "202")):
                req = caller.request("INVITE", f"sip:{number}@127.0.0.1", ext, body=sdp(4000))
                req = await invite(caller, req, ext, {"201": ALICE, "202": BOB}[ext]["sip_secret"])
                incoming = await next_request(callee, "INVITE")
                headers = (incoming.get("Call-Info"), incoming.get("Alert-Info"))
                answer(callee, incoming, 486, "busytag")
                assert (await caller.final()).status == 486
                if number == "*49":
                    assert "answer-after=0" in headers[0] and "auto" in headers[1].lower(), headers
                else:
                    assert headers == (None, None)

    with PbxRunner(tmp_path / "pbx", _cfg()) as pbx:
        run(main(pbx))
