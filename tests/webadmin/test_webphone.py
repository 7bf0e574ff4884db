"""The browser phone in headless Chromium (fake microphone): a staff user signs in, the page fetches their
own SIP account and registers over WSS; a baresip desk phone's call rings the browser and the user's
desk phone together; the page re-registers after the network drops and says so when the microphone is
refused; the credentials endpoint answers only the signed-in user, never cached, never without CSRF."""
from __future__ import annotations

import math
import re
import struct
import tempfile
import wave
from pathlib import Path

import pytest

from appliance.users import hash_password
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.services.pbx.test_apps import _goertzel
from tests.webadmin.helpers import admin_client_for, csrf_of
from tests.webadmin.test_account import PASSWORD, STAFF, signed_in
from tests.webadmin.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, server  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _LivePbx, _until
from webadmin import create_app

FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# the box's self-signed certificate on the WebSocket port too (a person accepts it once for the box's name)
TRUST = ["--ignore-certificate-errors"]


@pytest.fixture
def box(runtime, server):  # noqa: F811 (the fixture imported above)
    """The box with the staff users of test_account (dan has no extension) and its PBX running (the web
    admin's origin may open its WebSocket)."""
    admin_client_for(runtime)
    password_hash = hash_password(PASSWORD)

    def mutate(doc):
        doc["users"] += [{**person, "role": "staff", "password_hash": password_hash} for person in STAFF]
        doc.setdefault("pbx", {}).update(lab_sip_port=0, lab_rtp_port_min=24200, lab_rtp_port_max=24399,
                                         ws_origins=[server])
    runtime.engine.update("admin", "staff users", mutate)
    with _LivePbx(runtime) as live:
        yield live


def _browser(server_url: str, args: list[str]):  # noqa: F811
    from playwright.sync_api import sync_playwright

    class Session:
        def __enter__(self):
            self.p = sync_playwright().start()
            self.browser = self.p.chromium.launch(executable_path="/usr/bin/chromium",
                                                  args=CHROMIUM_ARGS + TRUST + args)
            self.context = self.browser.new_context(ignore_https_errors=True, base_url=server_url)
            self.context.set_default_timeout(TIMEOUT_MS)
            return self.context.new_page()

        def __exit__(self, *exc):
            self.context.close()
            self.browser.close()
            self.p.stop()
    return Session()


def _sign_in(page, login: str) -> None:
    page.goto("/login")
    page.fill("#f-login", login)
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/(dashboard|account)?/?$"))


def open_phone(page, login: str = "alice") -> None:
    """Signed in as `login`, on the phone page, registered."""
    from playwright.sync_api import expect
    _sign_in(page, login)
    page.goto("/webphone/")
    expect(page.locator("#phone-state")).to_have_attribute("data-state", "registered")


def call_desk_phone(page, desk, number: str = "202") -> None:
    """The browser dials `number`; the desk phone `desk` answers: the page is in the call."""
    from playwright.sync_api import expect
    page.fill("#phone-number", number)
    page.click("#phone-call")
    desk.answer()
    expect(page.locator("#phone-state")).to_have_attribute("data-state", "in_call")


def _browser_bindings(live) -> list[dict]:
    return [r for r in live.svc.registrations() if r["extension"] == "201" and r["source"].startswith("wss:")]


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_page_registers_rings_with_the_desk_phone_and_comes_back_after_a_network_drop(box, server):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    with _browser(server, FAKE_MEDIA) as page, \
            Baresip("desk", user="201", password="alicesecret1", registrar=registrar) as desk, \
            Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
        _sign_in(page, "alice")
        page.goto("/account/")
        page.click("a[href='/webphone/']")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "registered")
        expect(page.locator("#phone-state")).to_contain_text("201")
        assert len(_browser_bindings(box)) == 1
        desk.register()
        bob.register()

        # bob calls 201: the browser and alice's desk phone ring together; the desk phone answers
        bob.dial("201")
        expect(page.locator("#phone-incoming")).to_be_visible()
        expect(page.locator("#phone-caller")).to_contain_text("202")
        desk.answer()  # waits for its CALL_INCOMING
        bob.wait_for("CALL_ESTABLISHED")
        expect(page.locator("#phone-incoming")).to_be_hidden()  # the browser's ringing was cancelled
        expect(page.locator("#phone-log li").first).to_contain_text("202")
        bob.hangup()
        desk.wait_for("CALL_CLOSED")

        # bob calls again, alice declines in the browser while the desk phone rings on; bob hangs up
        bob.dial("201")
        expect(page.locator("#phone-incoming")).to_be_visible()
        page.click("#phone-decline")
        expect(page.locator("#phone-incoming")).to_be_hidden()
        desk.wait_for("CALL_INCOMING")
        bob.hangup()
        desk.wait_for("CALL_CLOSED")

        # the network drops (the box closes the connection): the page says so, reconnects, registers again
        before = _browser_bindings(box)[0]["source"]
        ws = box.svc.core.stack.transports.ws
        box.loop.call_soon_threadsafe(lambda: [f.conn.transport.abort() for f in list(ws.flows.values())])
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "offline")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "registered", timeout=20000)
        after = _until(lambda: _browser_bindings(box))
        assert after[0]["source"] != before


@pytest.mark.slow
def test_a_refused_microphone_is_said_and_places_no_call(box, server):  # noqa: F811
    from playwright.sync_api import expect

    with _browser(server, []) as page:  # no fake media: the permission prompt is refused
        page.context.clear_permissions()
        open_phone(page)
        page.fill("#phone-number", "202")
        page.click("#phone-call")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "no_mic")
        assert box.svc.active_calls() == []


def test_credentials_only_for_the_signed_in_user(box, runtime):
    alice, bob = signed_in(runtime, "alice"), signed_in(runtime, "bob")
    token = csrf_of(alice, "/webphone/")
    mine = alice.post("/webphone/credentials", headers={"X-CSRF-Token": token})
    assert mine.status_code == 200 and mine.headers["Cache-Control"] == "no-store"
    body = mine.get_json()
    assert body["username"] == "201" and body["password"] == "alicesecret1"
    assert body["ws"] == f"wss://localhost:{box.svc.ws_port}/ws"
    # bob's session only ever gets bob's account, whatever it asks for
    bobs = bob.post("/webphone/credentials?login=alice&extension=201",
                    headers={"X-CSRF-Token": csrf_of(bob, "/webphone/")}, data={"login": "alice"})
    assert bobs.get_json()["username"] == "202" and "alicesecret1" not in bobs.get_data(as_text=True)
    # no CSRF token (a request another site makes the browser send), no GET, nobody signed in
    assert alice.post("/webphone/credentials").status_code == 400
    assert alice.get("/webphone/credentials").status_code == 405
    stranger = create_app(runtime).test_client()
    refused = stranger.post("/webphone/credentials")
    assert refused.status_code in (302, 400) and "alicesecret1" not in refused.get_data(as_text=True)
    # dan has no extension: no phone
    dan = signed_in(runtime, "dan")
    assert dan.post("/webphone/credentials", headers={"X-CSRF-Token": csrf_of(dan, "/webphone/")}).status_code == 404
    page = alice.get("/webphone/")
    assert f"wss://localhost:{box.svc.ws_port}" in page.headers["Content-Security-Policy"]
    assert "alicesecret1" not in page.get_data(as_text=True)


# -- media: the browser's WebRTC leg bridged to a desk phone's plain RTP (services/pbx/webrtc) -------------
TONE_HZ = 1000


def _tone_wav(path, seconds: float = 20.0, rate: int = 48000) -> None:
    """The browser's fake microphone: a steady 1 kHz tone."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        frames += struct.pack("<h", int(8000 * math.sin(2 * math.pi * TONE_HZ * n / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


def _tone_microphone(tmp_path) -> list[str]:
    """Chromium's arguments for a fake microphone playing the tone."""
    tone = tmp_path / "tone.wav"
    _tone_wav(tone)
    return [f"--use-file-for-fake-audio-capture={tone}"]


class RecordingBaresip(Baresip):
    """A desk phone that also writes what it hears to WAV files (baresip's sndfile module)."""

    def _config(self) -> str:
        self.recordings = Path(tempfile.mkdtemp(prefix=f"baresip-{self.name}-rec-"))
        return super()._config() + f"module sndfile.so\nsnd_path {self.recordings}\n"

    def heard(self) -> tuple[list[int], int]:
        """The samples it decoded from the call (the far end's audio) and their rate."""
        files = sorted(self.recordings.glob("*dec*.wav"))
        assert files, f"no recording in {self.recordings}: {list(self.recordings.iterdir())}"
        with wave.open(str(files[-1])) as wav:
            data, rate, channels = wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels()
        samples = list(struct.unpack(f"<{len(data) // 2}h", data))[::channels]
        return samples, rate


def peak_frequency(samples: list[int], rate: int) -> float:
    """The strongest frequency (10 Hz steps, 200-3400 Hz) of the loudest second."""
    window = max((samples[i:i + rate // 4] for i in range(0, max(1, len(samples) - rate // 4), rate // 4)),
                 key=lambda w: sum(x * x for x in w))
    return max(range(200, 3400, 10), key=lambda f: _goertzel(window, f, rate))


STATS_JS = """async () => {
  const s = window.webphone.session;
  if (!s || !s.sessionDescriptionHandler) return null;
  const report = await s.sessionDescriptionHandler.peerConnection.getStats();
  let found = null;
  report.forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "audio") found = r; });
  return found && {packets: found.packetsReceived, level: found.audioLevel || 0, energy: found.totalAudioEnergy || 0};
}"""


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_browser_calls_a_desk_phone_with_audio_both_ways(box, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
            RecordingBaresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
        bob.register()
        open_phone(page)
        call_desk_phone(page, bob)
        bob.wait_rtp(rx=150, tx=150, timeout=20)   # the browser's audio reaches the desk phone as plain RTP
        stats = _until(lambda: (s := page.evaluate(STATS_JS)) and s["packets"] > 100 and s["level"] > 0 and s)
        assert stats["energy"] > 0   # the desk phone's 440 Hz tone plays in the browser
        gateway = box.svc.core.stack.transports.ws.gateway
        assert gateway.counters["established"] == 1 and gateway.setup_ms
        page.click("#phone-hangup")
        bob.wait_for("CALL_CLOSED")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "registered")
    samples, rate = bob.heard()
    assert abs(peak_frequency(samples, rate) - TONE_HZ) <= 20   # what bob heard is the browser's tone
    assert _until(lambda: not gateway.legs)   # the session ended with the call


def _rogue_frames(ws_url: str, origin: str) -> int:
    """Garbage and an oversized frame over another WebSocket to the box; the close code it got for the latter."""
    import ssl

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with connect(ws_url, ssl=ctx, origin=origin, subprotocols=["sip"], max_size=None) as rogue:
        rogue.send("\x00 garbage, no SIP at all \r\n\r\n")
        rogue.send(b"\xff" * 300)
        rogue.send("INVITE " + "x" * 70000)
        try:
            rogue.recv(timeout=5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 0
    return -1


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_browser_answers_sends_dtmf_holds_and_transfers_while_garbage_is_dropped(box, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    ws = box.svc.core.stack.transports.ws
    with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
            Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob, \
            Baresip("carol", user="203", password="carolsecret1", registrar=registrar) as carol:
        bob.register()
        carol.register()
        open_phone(page)
        ws_url = f"wss://127.0.0.1:{box.svc.ws_port}/ws"

        bob.dial("201")
        expect(page.locator("#phone-caller")).to_contain_text("202")
        page.click("#phone-answer")
        bob.wait_for("CALL_ESTABLISHED")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "in_call")
        bob.wait_rtp(rx=100, tx=100, timeout=20)
        _until(lambda: (s := page.evaluate(STATS_JS)) and s["packets"] > 50 and s["level"] > 0)

        # garbage and a huge frame on another connection: dropped and counted, the call goes on
        malformed = box.svc.core.stack.counters["malformed"]
        assert _rogue_frames(ws_url, server) == 1009
        assert _until(lambda: ws.counters["oversized"] == 1)
        assert _until(lambda: box.svc.core.stack.counters["malformed"] >= malformed + 2)
        heard = bob.rtp_stats()["rx"]
        bob.wait_rtp(rx=heard + 50, timeout=10)

        for digit in "12#":   # the dial pad sends DTMF in a call (RFC 4733 through the gateway)
            page.click(f"#phone-dialpad [data-key='{digit}']")
        try:
            _until(lambda: bob.dtmf_received.endswith("12#"), 10)
        except AssertionError:
            raise AssertionError(f"bob received DTMF {bob.dtmf_received!r}") from None

        page.click("#phone-mute")
        assert page.evaluate("window.webphone.session.sessionDescriptionHandler.peerConnection.getSenders()"
                             ".every((s) => !s.track || !s.track.enabled)")
        page.click("#phone-mute")
        page.click("#phone-hold")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "on_hold")
        _until(lambda: box.svc.active_calls() and box.svc.active_calls()[0]["on_hold"])
        page.click("#phone-hold")
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "in_call")
        _until(lambda: not box.svc.active_calls()[0]["on_hold"])
        _until(lambda: bob.rtp_stats().get("dir") == "sendrecv")  # bob was asked to send again
        bob.wait_rtp(tx=bob.rtp_stats()["tx"] + 25, timeout=10)

        # blind transfer: bob goes on with carol, the browser's call ends
        page.fill("#phone-transfer-to", "203")
        page.click("#phone-transfer")
        carol.answer()
        carol.wait_rtp(rx=50, timeout=20)
        expect(page.locator("#phone-state")).to_have_attribute("data-state", "registered")
        expect(page.locator("#phone-log li").first).to_contain_text("203")
        carol.hangup()
        bob.wait_for("CALL_CLOSED")
