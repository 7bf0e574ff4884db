"""Web call-back requests through the ACD with real peers: SIPp is the carrier behind a trunk and answers
as the visitor's phone (echoing the RTP it gets), baresip is the agent. The request waits in the queue with
its position; when the agent logs in, the agent's phone rings first (SIPp has received nothing yet), then
the visitor's; the agent hears its own tone back through the visitor's phone (audio both ways); the turn
counts as a callback in the queue's report. Numbers outside the patterns, a full queue and a duplicate are
refused."""
from __future__ import annotations

import math
import subprocess
import time
from contextlib import ExitStack

import pytest

from services.pbx import acd as acd_pkg
from services.pbx.acd import callback

from . import test_channel as ch
from .baresip import _free_port, have_baresip
from .conftest import BOB
from .pbxrunner import PbxRunner, config
from .sipp import have_sipp
from .test_conference import _newest_recording
from .test_conference_mixer import spectrum_peaks
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(not have_sipp(), reason="SIPp (sip-tester) is not installed")]
TONE = 1020.0


def _cfg(carrier_port: int):
    queue = {"number": "600", "name": "sales", "strategy": "longest_idle", "agent_timeout": 10, "wrap_up": 0,
             "announce_every": 0, "members": [{"agent": "202"}], "web_callback": True,
             "web_callback_numbers": ["0ZXXXXXXXX"], "web_callback_pending": 1}
    return config([BOB], digest_algorithms=["MD5"], codecs=["PCMU"], queues=[queue],
                  trunks=[{"name": "carrier", "host": "127.0.0.3", "port": carrier_port}],
                  routes=[{"name": "out", "prefix": "0", "trunks": ["carrier"]}])


def test_patterns():
    assert callback.pattern_regex("0ZXXXXXXXX").match("0612345678")
    assert not callback.pattern_regex("0ZXXXXXXXX").match("0012345678")
    assert callback.pattern_regex("6[0-5]XN").match("6492") and not callback.pattern_regex("6[0-5]XN").match("6691")
    assert callback.clean_number(" 06 12.34-56 78 ") == "0612345678"
    assert callback.clean_text('陳美玲 <b>"x"\\\n', 40) == "陳美玲 b x"


def test_agent_rung_first_then_the_visitor_through_the_carrier(tmp_path):
    port = _free_port("127.0.0.3")
    with PbxRunner(tmp_path / "box", _cfg(port)) as pbx, ExitStack() as stack:
        acd = pbx.sync(lambda: acd_pkg.for_core(pbx.svc.core))
        tone = ch.write_wav(tmp_path / "tone.wav", [int(6000 * math.sin(2 * math.pi * TONE * n / 8000))
                                                    for n in range(8000 * 60)])
        agent = stack.enter_context(ch.AudioBaresip("bob", tone, user="202", password=BOB["sip_secret"],
                                                    registrar=pbx.registrar, codecs=("pcmu",)))
        agent.register()
        request = pbx.svc.acd_web_callback
        assert request("sales", "00441234567")["reason"] == "number"  # international: not a pattern
        assert request("nope", "0612345678")["reason"] == "queue"
        first = request("sales", "06 12 34 56 78", "陳美玲 <b>", "Invoice")
        assert first == {"position": 1, "id": first["id"]}
        assert request("sales", "0612345678")["reason"] == "duplicate"
        assert request("sales", "0611111111")["reason"] == "full"  # web_callback_pending = 1
        assert pbx.sync(lambda: len(acd.waiting["sales"])) == 1

        messages = tmp_path / "sipp-messages.log"
        sipp = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.3", "-p", str(port), "-mi", "127.0.0.3",
                                 "-mp", str(_free_port("127.0.0.3")), "-rtp_echo", "-m", "1", "-nostdin",
                                 "-timeout", "60s", "-trace_msg", "-message_file", str(messages)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(lambda: sipp.poll() is None and sipp.kill())
        time.sleep(0.5)
        pbx.sync(lambda: acd.login("202"))
        wait(lambda: agent.call_state() == "CALL_INCOMING", timeout=15, what="the agent's phone to ring")
        time.sleep(0.5)
        assert not messages.exists() or "INVITE sip:" not in messages.read_text(errors="replace")  # agent first
        ringing = agent.answer(timeout=5)
        assert "0612345678" in str(ringing) and "陳美玲 b (Invoice)" in agent.log(), ringing  # number, name, subject
        wait(lambda: messages.exists() and "INVITE sip:0612345678@" in messages.read_text(errors="replace"),
             timeout=15, what="the visitor's call through the carrier")
        before = agent.rtp_stats()["rx"]
        time.sleep(3.0)
        stats = agent.rtp_stats()
        assert stats["rx"] - before >= 100, stats  # 20 ms packets: 150 in 3 s
        raw = _newest_recording(agent).read_bytes()
        start = raw.find(b"data") + 8
        samples = list(memoryview(raw[start:start + (len(raw) - start) // 2 * 2]).cast("h"))[-8000:]
        assert spectrum_peaks(samples, 8000, [TONE])[TONE] > 0.03  # its own tone, echoed by the visitor's phone
        agent.hangup()
        agent.wait_for("CALL_CLOSED")
        sipp.wait(timeout=20)
        rows = wait(lambda: [r for r in pbx.svc.acd_report(0, time.time() + 10, "queue")], what="report")
        [q] = rows
        assert (q["offered"], q["callbacks"]) == (1, 1), q
        assert pbx.sync(lambda: acd.waiting["sales"]) == []
