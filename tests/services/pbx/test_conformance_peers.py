"""Conformance against third-party SIP tools (SIPp, baresip): an offerless re-INVITE answered with an
offer, INFO DTMF reaching the other phone, a TCP phone reached after the PBX closed its connection."""
import time
from contextlib import ExitStack

import pytest

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE, PbxRunner, config
from .sipp import have_sipp, run_sipp

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
needs_sipp = pytest.mark.skipif(not have_sipp(), reason="SIPp is not installed (apt-get install sip-tester)")


def _bob(stack: ExitStack, pbx, **kw) -> Baresip:
    bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar,
                                      auto_answer=True, **kw))
    bob.register()
    return bob


@pytest.fixture
def md5_pbx(tmp_path):
    """SIPp (3.6) answers MD5 challenges only, and only the first one offered."""
    with PbxRunner(tmp_path / "pbx", config([ALICE, BOB, CAROL, DAVE], digest_algorithms=["MD5"])) as runner:
        yield runner


@needs_sipp
@pytest.mark.parametrize("scenario,digits", [
    ("reinvite_without_sdp.xml", ""),  # the PBX offers in its 200, SIPp answers in the ACK
    ("info_dtmf.xml", "42"),  # INFO application/dtmf-relay passed on to bob (baresip shows the digits)
])
def test_sipp_call_with_baresip_callee(md5_pbx, tmp_path, scenario, digits):
    with ExitStack() as stack:
        bob = _bob(stack, md5_pbx)
        out = run_sipp(scenario, md5_pbx.registrar, "202", "201", ALICE["sip_secret"], tmp_path)
        assert out.returncode == 0, f"SIPp {scenario} failed:\n{out.errors[-3000:]}\n{out.stdout[-2000:]}"
        bob.wait_for("CALL_CLOSED")
        assert bob.dtmf_received == digits


def test_tcp_phone_is_called_after_the_pbx_closed_its_connection(pbx):
    """The PBX closes connections idle for 900 s; a phone without keep-alives keeps its binding."""
    with ExitStack() as stack:
        bob = _bob(stack, pbx, transport="tcp", regint=600)
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=pbx.registrar))
        alice.register()
        transports = pbx.svc.core.stack.transports

        def close_all() -> int:
            for conn in list(transports.tcp.values()):
                conn.transport.close()  # what the idle reaper does
            return len(transports.tcp)
        pbx.sync(close_all)
        deadline = time.monotonic() + 3
        while pbx.sync(lambda: len(transports.tcp)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [reg] = [r for r in pbx.svc.registrations() if r["extension"] == "202"]
        alice.dial("202")
        bob.wait_for("CALL_ESTABLISHED")
        alice.wait_for("CALL_ESTABLISHED")
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
