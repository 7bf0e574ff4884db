"""The browser phone's attended transfer and the WebRTC gateway's watchdog, in headless Chromium (fake
microphone) with real baresip desk phones: the browser consults a second phone while the first is held,
then joins them (REFER with Replaces) and leaves; each desk phone then hears the other's tone. A gateway
process killed with SIGKILL ends the browser's call on both sides (BYE), is started again by the PBX
(the status counts it), and the next browser call has media again, its RTCP reports crossing the
gateway both ways."""
from __future__ import annotations

import os
import signal

import pytest

from tests.services.pbx.baresip import have_baresip
from tests.webadmin.test_browser import server  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _until
from tests.webadmin.test_webphone import (
    FAKE_MEDIA,
    RecordingBaresip,
    _browser,
    _tone_microphone,
    box,
    call_desk_phone,
    open_phone,
    peak_frequency,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
assert box  # the fixture, imported


class ToneBaresip(RecordingBaresip):
    """A recording desk phone whose microphone is a tone of its own frequency."""

    def __init__(self, name: str, tone: int, **kw) -> None:
        self.tone = tone
        super().__init__(name, **kw)

    def _config(self) -> str:
        return super()._config().replace("audio_source ausine,440", f"audio_source ausine,{self.tone}")

    def heard_last(self, seconds: float = 1.0) -> float:
        """The strongest frequency of the last seconds it heard."""
        samples, rate = self.heard()
        return peak_frequency(samples[-int(seconds * rate):], rate)


REMOTE_REPORTS_JS = """async () => {
  const report = await window.webphone.session.sessionDescriptionHandler.peerConnection.getStats();
  const found = {};
  report.forEach((r) => {
    if (r.type === "remote-inbound-rtp" || r.type === "remote-outbound-rtp") found[r.type] = r;
  });
  return found;
}"""


def _calls(page, desk: ToneBaresip, number: str, heard: int = 50) -> None:
    """The browser calls the desk phone, which answers: audio flows both ways."""
    call_desk_phone(page, desk, number)
    desk.wait_rtp(rx=heard, tx=50, timeout=20)


def test_browser_consults_then_transfers_and_the_two_desk_phones_hear_each_other(box, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    gateway = box.svc.core.stack.transports.ws.gateway
    state = None
    with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
            ToneBaresip("bob", 440, user="202", password="bobsecret12", registrar=registrar) as bob, \
            ToneBaresip("carol", 660, user="203", password="carolsecret1", registrar=registrar) as carol:
        state = page.locator("#phone-state")
        bob.register()
        carol.register()
        open_phone(page)
        _calls(page, bob, "202")

        # consult carol: bob is held (music), the browser calls carol
        page.fill("#phone-transfer-to", "203")
        page.click("#phone-consult")
        carol.answer()
        expect(state).to_have_attribute("data-state", "consulting")
        expect(state).to_contain_text("203")
        assert len(box.svc.active_calls()) == 2 and _until(lambda: bob.rtp_stats().get("dir") == "recvonly")
        carol.wait_rtp(rx=50, timeout=20)

        # join them: the browser leaves both calls, bob is taken off hold and talks to carol
        page.click("#phone-complete")
        expect(state).to_have_attribute("data-state", "registered")
        expect(page.locator("#phone-log li").first).to_contain_text("transferred")
        assert _until(lambda: not gateway.legs)  # no browser media session left
        [call] = _until(lambda: len(calls := box.svc.active_calls()) == 1 and calls)
        assert set(call["relay"]) == {"202", "203"} and not call["on_hold"]
        _until(lambda: bob.rtp_stats().get("dir") == "sendrecv")
        relayed = call["relay"]["203"]["forwarded"]  # carol's packets the relay passed on to bob
        bob.wait_rtp(tx=bob.rtp_stats()["tx"] + 100, rx=bob.rtp_stats()["rx"] + 100, timeout=15)
        carol.wait_rtp(rx=carol.rtp_stats()["rx"] + 100, timeout=15)
        assert box.svc.active_calls()[0]["relay"]["203"]["forwarded"] >= relayed + 100
        carol.hangup()
        bob.wait_for("CALL_CLOSED")
    # what carol heard last is bob's 440 Hz (her only call, one recording: baresip's sndfile stops
    # recording a call whose media was renegotiated, as bob's was by the hold)
    assert abs(carol.heard_last() - 440) <= 20


def test_a_killed_gateway_ends_its_calls_is_restarted_and_serves_the_next_call(box, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    gateway = box.svc.core.stack.transports.ws.gateway
    with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
            ToneBaresip("bob", 440, user="202", password="bobsecret12", registrar=registrar) as bob:
        state = page.locator("#phone-state")
        bob.register()
        open_phone(page)
        _calls(page, bob, "202")
        killed = gateway._proc.pid
        os.kill(killed, signal.SIGKILL)

        # both sides of the call are told it ended; the PBX starts the gateway again
        bob.wait_for("CALL_CLOSED", timeout=10)
        expect(state).to_have_attribute("data-state", "registered")
        assert _until(lambda: not box.svc.active_calls())
        figures = _until(lambda: (f := box.svc.status().figures)["webrtc_gateway_restarts"] == 1 and f, 15)
        assert figures["webrtc_gateway_deaths"] == 1 and figures["webrtc_gateway_last_exit"] == -signal.SIGKILL
        assert figures["webrtc_gateway_calls_ended"] == 1 and figures["webrtc_gateway_running"]
        assert gateway._proc.pid != killed

        # the next browser call has its media through the new process
        _calls(page, bob, "202", heard=100)
        assert _until(lambda: gateway.counters["established"] == 2)

        # RTCP crosses the gateway both ways: bob gets the browser's reports, the browser bob's
        report = bob.wait_for("CALL_RTCP", timeout=15)["rtcp_stats"]
        assert report["rx"]["sent"] > 0  # the packet count of the browser's sender report
        reports = _until(lambda: (r := page.evaluate(REMOTE_REPORTS_JS)) and len(r) == 2 and r, 15)
        assert reports["remote-outbound-rtp"]["packetsSent"] > 0  # bob's sender report
        assert reports["remote-inbound-rtp"]["roundTripTimeMeasurements"] >= 1  # bob's receiver report
        assert _until(lambda: min(gateway.figures[max(gateway.figures)][3:]) > 0)  # counted each way
        page.click("#phone-hangup")
        bob.wait_for("CALL_CLOSED")
