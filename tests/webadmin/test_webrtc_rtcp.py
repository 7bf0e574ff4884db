"""RTCP on a transcoded browser leg: headless Chromium made to offer Opus alone (setCodecPreferences) calls a
baresip desk phone through the box's WebRTC gateway, which transcodes Opus <-> G.711 and reports itself over
SRTCP; Chromium's getStats() then shows the gateway's reports: remote-inbound-rtp (a receiver report on what
the browser sends, with a round-trip time) and remote-outbound-rtp (a sender report on what it receives)."""
from __future__ import annotations

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
)

__all__ = ["box"]  # the fixture

OPUS_ONLY = """(() => {
  const offer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    const opus = RTCRtpSender.getCapabilities("audio").codecs.filter((c) => c.mimeType === "audio/opus");
    for (const t of this.getTransceivers()) t.setCodecPreferences(opus);
    return offer.apply(this, args);
  };
})();"""

REPORTS_JS = """async () => {
  const pc = window.webphone.session.sessionDescriptionHandler.peerConnection;
  const report = await pc.getStats();
  const out = {codec: null};
  report.forEach((r) => {
    if (r.type === "remote-inbound-rtp") out.remoteInbound = {rtt: r.roundTripTime, lost: r.packetsLost};
    if (r.type === "remote-outbound-rtp") out.remoteOutbound = {packets: r.packetsSent};
    if (r.type === "inbound-rtp" && r.kind === "audio") out.packets = r.packetsReceived;
    if (r.type === "outbound-rtp" && r.kind === "audio") out.codecId = r.codecId;
  });
  report.forEach((r) => { if (r.id === out.codecId) out.codec = r.mimeType; });
  return out;
}"""


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_an_opus_only_browser_sees_the_gateways_reports_in_get_stats(box, server, tmp_path):  # noqa: F811

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
            RecordingBaresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
        page.add_init_script(OPUS_ONLY)
        bob.register()
        open_phone(page)
        call_desk_phone(page, bob)
        bob.wait_rtp(rx=100, tx=100, timeout=20)
        stats = _until(lambda: (s := page.evaluate(REPORTS_JS)) and "remoteInbound" in s
                       and "remoteOutbound" in s and s)
        assert stats["codec"] == "audio/opus", stats  # the gateway transcodes this leg
        assert stats["remoteInbound"]["lost"] == 0 and stats["remoteOutbound"]["packets"] > 0, stats
        rtt = _until(lambda: page.evaluate(REPORTS_JS)["remoteInbound"]["rtt"])
        assert 0 <= rtt < 1, rtt  # the browser matched our report to its own sender report
        page.click("#phone-hangup")
        bob.wait_for("CALL_CLOSED")
