"""Silent monitor, whisper and barge-in with real baresip phones, each sending its own tone: a caller in
the queue is served by agent bob; a non-supervisor's *56 is refused; carol (the queue's supervisor) whispers
(bob hears her, the caller does not: energy), switches to monitor and then barge with keys, and hangs up;
the caller and the agent go on talking to each other."""
from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from services.pbx import acd as acd_pkg
from services.pbx.prompts import PromptLibrary

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, seed_prompts
from .pbxrunner import PbxRunner, config, user
from .test_conference import _phone, heard_tones

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")
CALLER, AGENT, SUPERVISOR = 520.0, 1020.0, 1250.0
FREQS = [CALLER, AGENT, SUPERVISOR]
HEARD, SILENT = 0.03, 0.01


def _cfg():
    queue = {"number": "600", "name": "sales", "strategy": "longest_idle", "agent_timeout": 10, "wrap_up": 0,
             "announce_every": 0, "members": [{"agent": "202"}], "supervisors": ["203"]}
    return config([ALICE, BOB, CAROL, ERIN], digest_algorithms=["MD5"], codecs=["PCMU"], queues=[queue])


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return ch.tone_files(d, FREQS)


def _heard(ua, seconds: float = 1.5) -> dict[float, float]:
    return heard_tones(ua, FREQS, seconds)


def test_supervisor_monitors_whispers_and_barges(tmp_path, tones, prompt_set):
    seed_prompts(prompt_set, tmp_path)
    with PbxRunner(tmp_path, _cfg()) as pbx, ExitStack() as stack:
        PromptLibrary(tmp_path, "en").ensure()
        caller = _phone(stack, pbx, ALICE, tones[0])
        agent = _phone(stack, pbx, BOB, tones[1])
        supervisor = _phone(stack, pbx, CAROL, tones[2])
        intruder = _phone(stack, pbx, ERIN, tones[2])
        pbx.sync(lambda: acd_pkg.for_core(pbx.svc.core).login("202"))
        caller.dial("600")
        caller.wait_for("CALL_ESTABLISHED")
        agent.answer(timeout=15)
        time.sleep(2.0)
        assert _heard(caller)[AGENT] > HEARD and _heard(agent)[CALLER] > HEARD

        intruder.dial("*56202")  # not a supervisor of the queue
        intruder.wait_for("CALL_CLOSED", timeout=10)
        assert not [e for e in intruder.events if e.get("type") == "CALL_ESTABLISHED"]

        supervisor.dial("*56202")  # whisper
        supervisor.wait_for("CALL_ESTABLISHED")
        time.sleep(2.5)
        to_supervisor, to_agent, to_caller = _heard(supervisor), _heard(agent), _heard(caller)
        assert to_supervisor[CALLER] > HEARD and to_supervisor[AGENT] > HEARD, to_supervisor
        assert to_agent[SUPERVISOR] > HEARD and to_agent[CALLER] > HEARD, to_agent
        assert to_caller[SUPERVISOR] < SILENT and to_caller[AGENT] > HEARD, to_caller

        supervisor.send_dtmf("4")  # monitor: nobody hears the supervisor
        time.sleep(2.5)
        assert _heard(agent)[SUPERVISOR] < SILENT and _heard(caller)[SUPERVISOR] < SILENT
        assert _heard(supervisor)[CALLER] > HEARD

        supervisor.send_dtmf("6")  # barge: both hear the supervisor
        time.sleep(2.5)
        assert _heard(caller)[SUPERVISOR] > HEARD and _heard(agent)[SUPERVISOR] > HEARD

        supervisor.hangup()
        supervisor.wait_for("CALL_CLOSED")
        time.sleep(2.0)  # relayed to each other again
        assert caller.call_state() == "CALL_ESTABLISHED" and agent.call_state() == "CALL_ESTABLISHED"
        after = _heard(caller)
        assert after[AGENT] > HEARD and after[SUPERVISOR] < SILENT, after
        assert _heard(agent)[CALLER] > HEARD
        caller.hangup()
        agent.wait_for("CALL_CLOSED")
