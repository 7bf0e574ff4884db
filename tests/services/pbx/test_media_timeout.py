"""RTP timeout and media engine supervision with real baresip phones: a phone that vanishes mid-call (its
namespace deleted) gets its call ended and the trunk channel freed; a call on hold is left alone; a media
engine killed mid-call ends its calls cleanly and a new engine carries the next call."""
import os
import signal
import time
from contextlib import ExitStack

import pytest

from tests.netns import Lab, needs_netns

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config
from .test_trunks import LINE, REMOTE, wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def talking(stack: ExitStack, pbx: PbxRunner) -> tuple[Baresip, Baresip]:
    """alice (201) called bob (202); audio reaches bob."""
    alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"], registrar=pbx.registrar))
    bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar))
    alice.register()
    bob.register()
    alice.dial("202")
    bob.answer()
    alice.wait_for("CALL_ESTABLISHED")
    bob.wait_rtp(rx=20)
    return alice, bob


def trunk_call_from_home(stack: ExitStack, lab: Lab, tmp_path, **box_pbx):
    """alice (201, baresip in namespace `home`) called the carrier's remote (6000) through the box's trunk;
    audio flows both ways. The carrier (a second PBX) and its customer live on the box namespace's
    loopback. Returns (pbx, home, remote)."""
    box, home = lab.host("box"), lab.host("home")
    lab.link(box, "192.0.2.1/24", home, "192.0.2.10/24")
    carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, REMOTE], rtp_timeout=0),
                                            host="127.0.0.2", netns=box))
    pbx = stack.enter_context(PbxRunner(tmp_path / "box", config(
        [ALICE], trunks=[{"name": "carrier", "host": "127.0.0.2", "port": carrier.port, "username": "5000",
                          "auth_password": LINE["sip_secret"]}],
        routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}], **box_pbx), host="192.0.2.1", netns=box))
    alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                        registrar=pbx.registrar, host=home, addr="192.0.2.10"))
    remote = stack.enter_context(Baresip("remote", user="6000", password=REMOTE["sip_secret"],
                                         registrar=carrier.registrar, host=box, addr="127.0.0.2"))
    alice.register()
    remote.register()
    alice.dial("6000")
    remote.answer()
    alice.wait_for("CALL_ESTABLISHED")
    alice.wait_rtp(tx=50, rx=50)
    remote.wait_rtp(tx=50, rx=50)
    assert pbx.svc.trunks()[0]["channels_in_use"] == 1
    return pbx, home, remote


@needs_netns
@pytest.mark.netns
def test_vanished_phone_call_ends_and_frees_the_trunk_channel(tmp_path):
    with Lab() as lab, ExitStack() as stack:
        pbx, home, remote = trunk_call_from_home(stack, lab, tmp_path, rtp_timeout=2)
        home.delete()  # alice's phone and network vanish without a word
        gone = time.monotonic()
        remote.wait_for("CALL_CLOSED", timeout=10)  # the box hung up the carrier side
        assert time.monotonic() - gone >= 1.5  # after the RTP timeout, not before
        wait(lambda: pbx.svc.trunks()[0]["channels_in_use"] == 0 and not pbx.svc.active_calls(),
             what="the trunk channel freed")
        [row] = wait(lambda: pbx.svc.cdr_query(), what="the call record")
        assert (row["disposition"], row["end_reason"], row["trunk"]) == ("answered", "rtp_timeout", "carrier")


def test_call_on_hold_outlives_the_rtp_timeout(tmp_path):
    with ExitStack() as stack:
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", config([ALICE, BOB], rtp_timeout=2)))
        alice, bob = talking(stack, pbx)
        alice.hold()
        wait(lambda: pbx.svc.active_calls()[0]["on_hold"], what="the call on hold")
        time.sleep(4)  # twice the timeout without media from the held side
        [call] = pbx.svc.active_calls()
        assert call["state"] == "connected"
        alice.resume()
        wait(lambda: not pbx.svc.active_calls()[0]["on_hold"], what="the call resumed")
        rx = bob.rtp_stats()["rx"]
        bob.wait_rtp(rx=rx + 20)
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        [row] = wait(lambda: pbx.svc.cdr_query(), what="the call record")
        assert row["end_reason"] == ""


def test_killed_media_engine_ends_its_calls_and_is_restarted(tmp_path):
    with ExitStack() as stack:
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", config([ALICE, BOB])))
        alice, bob = talking(stack, pbx)
        engine = pbx.svc.core.relay.pid
        os.kill(engine, signal.SIGKILL)
        alice.wait_for("CALL_CLOSED")  # both sides get a BYE
        bob.wait_for("CALL_CLOSED")
        [row] = wait(lambda: pbx.svc.cdr_query(), what="the call record")
        assert (row["disposition"], row["end_reason"]) == ("answered", "media_engine_restart")
        wait(lambda: pbx.svc.core.relay.pid != engine, what="a new media engine")
        bob.dial("201")  # the next call has audio both ways through the new engine
        alice.answer()
        bob.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(tx=30, rx=30)
        bob.wait_rtp(tx=30, rx=30)
        bob.hangup()
        alice.wait_for("CALL_CLOSED")
