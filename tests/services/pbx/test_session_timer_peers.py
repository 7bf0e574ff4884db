"""Session timers (RFC 4028) against peers the box does not script: a SIPp callee (the carrier) that
answers the first INVITE 422 with a Min-SE above the box's interval (the box asks again with that one,
and SIPp checks it), and a baresip phone behind a trunk call that vanishes with its namespace: the
session expires, the call ends on the carrier's side too and the trunk channel is freed. The RTP timeout
is off, so only the session timer can end that call."""
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx.session_timer import SessionTimer
from tests.netns import Lab, needs_netns

from .baresip import Baresip, _free_port, have_baresip
from .conftest import ALICE
from .pbxrunner import PbxRunner, config
from .sipp import have_sipp
from .test_media_timeout import trunk_call_from_home
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
CALLEE_MIN_SE = Path(__file__).parent / "sipp" / "callee_min_se.xml"
CARRIER = "127.0.0.3"


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@pytest.mark.skipif(not have_sipp(), reason="SIPp is not installed")
def test_a_callee_answering_422_is_asked_again_with_its_min_se(tmp_path):
    port = _free_port(CARRIER)
    cfg = config([ALICE], session_expires=300, min_se=90,
                 trunks=[{"name": "carrier", "host": CARRIER, "port": port}],
                 routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}])
    with ExitStack() as stack:
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", cfg))
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=pbx.registrar))
        alice.register()
        callee = subprocess.Popen(
            ["sipp", "-sf", str(CALLEE_MIN_SE), "-i", CARRIER, "-p", str(port), "-mp", str(_free_port(CARRIER)),
             "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err",
             "-error_file", str(tmp_path / "sipp-errors.log")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait(lambda: _listening(CARRIER, port), what="SIPp listening")
            alice.dial("6000")
            alice.wait_for("CALL_ESTABLISHED")

            def trunk_interval():
                legs = [leg for call in pbx.svc.core.calls.values() for leg in call.legs if leg.trunk]
                return [leg.session.interval if leg.session else None for leg in legs]
            assert pbx.sync(trunk_interval) == [600]  # the interval the callee asked for, we refresh it
            alice.hangup()
            out, _ = callee.communicate(timeout=40)
            errors = tmp_path / "sipp-errors.log"
            assert callee.returncode == 0, out.decode(errors="replace") + (
                errors.read_text(errors="replace") if errors.exists() else "")
        finally:
            if callee.poll() is None:
                callee.kill()
                callee.wait(5)
    # the box's first INVITE asked for 300 s (SIPp's 422 checks it was under 600), the second for 600


@needs_netns
@pytest.mark.netns
def test_session_expiry_ends_the_call_of_a_vanished_phone_and_frees_the_trunk(tmp_path, monkeypatch):
    monkeypatch.setattr(SessionTimer, "time_scale", 0.2)  # the box refreshes the 90 s session after 9 s
    with Lab() as lab, ExitStack() as stack:
        pbx, home, remote = trunk_call_from_home(stack, lab, tmp_path, rtp_timeout=0, session_expires=90, min_se=90)
        pbx.svc.core.stack.timers.T1 = 0.1  # the refresh to the vanished phone times out (64 * T1) in 6.4 s
        home.delete()  # alice's phone and network vanish without a word; the carrier side keeps sending
        gone = time.monotonic()
        remote.wait_for("CALL_CLOSED", timeout=40)  # the box hung up the carrier side
        assert time.monotonic() - gone >= 6.4  # the session's refresh timing out, not anything sooner
        wait(lambda: pbx.svc.trunks()[0]["channels_in_use"] == 0 and not pbx.svc.active_calls(),
             what="the trunk channel freed")
        [row] = wait(lambda: pbx.svc.cdr_query(), what="the call record")
        assert (row["disposition"], row["end_reason"], row["trunk"]) == ("answered", "session_expired", "carrier")
