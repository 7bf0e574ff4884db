"""My voicemail on the staff page: the signed-in user's own messages per folder (caller, time, duration),
listened to and downloaded, marked heard, saved, deleted; greetings uploaded (converted with sox) and
removed; voicemail by e-mail chosen. All through PbxClient to a running PBX (the pages never open its
files); another user's message is 404. In headless Chromium the page's audio element plays a message."""
from __future__ import annotations

import datetime
import math
import wave
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import pytest

from services.pbx.voicemail import for_core
from tests.services.pbx.pbxrunner import PbxRunner
from tests.services.pbx.vmutil import put_message
from tests.webadmin.helpers import post
from tests.webadmin.test_account import PASSWORD, signed_in, staff  # noqa: F401 (the staff fixture)
from tests.webadmin.test_browser import page, server  # noqa: F401 (the browser fixtures)


def _tone(path, seconds: float = 2.0, rate: int = 8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True)
                               for n in range(int(seconds * rate))))
    return path


@contextmanager
def _live_pbx(runtime):
    """The PBX running the stored configuration, as the runtime's own pbx service (what the client calls)."""
    with PbxRunner(runtime.ctx.data_dir, runtime.config) as live:
        original = runtime.services["pbx"]
        runtime.services["pbx"] = live.svc
        try:
            yield live
        finally:
            runtime.services["pbx"] = original


def test_staff_listen_to_and_handle_their_own_messages_only(staff, tmp_path):  # noqa: F811
    tone = _tone(tmp_path / "tone.wav", 3.0)
    with _live_pbx(staff) as live:
        mine = put_message(live, "201", tone, "202", "Bob Durand")
        theirs = put_message(live, "202", tone, "203", "Carol Petit")
        alice = signed_in(staff, "alice")
        html = alice.get("/account/voicemail").get_data(as_text=True)
        assert 'id="folder-INBOX"' in html and f'id="msg-{mine.id}"' in html and "Bob Durand" in html
        assert "&lt;202&gt;" in html and "0:03" in html and theirs.id not in html
        assert f'<audio controls preload="metadata" src="/account/voicemail/{mine.id}.wav">' in html

        played = alice.get(f"/account/voicemail/{mine.id}.wav")
        assert played.status_code == 200 and played.mimetype == "audio/wav"
        assert played.data == mine.wav.read_bytes()
        download = alice.get(f"/account/voicemail/{mine.id}.wav?download=1")
        assert download.headers["Content-Disposition"].startswith("attachment")

        assert alice.get(f"/account/voicemail/{theirs.id}.wav").status_code == 404  # bob's message
        assert post(alice, f"/account/voicemail/{theirs.id}/delete", {}, "/account/voicemail").status_code == 404
        assert alice.get("/account/voicemail/0000000000-00000000.wav").status_code == 404
        assert alice.get("/account/voicemail/..%2F..%2Fcdr.wav").status_code == 404
        assert live.sync(lambda: for_core(live.svc.core).box("202").find(theirs.id)) is not None

        box = live.sync(for_core(live.svc.core).box, "201")
        assert post(alice, f"/account/voicemail/{mine.id}/heard", {}, "/account/voicemail").status_code == 302
        assert [m.id for m in box.messages("Old")] == [mine.id]
        assert live.svc.core.events.bus.retained("pbx.mailbox")["201"] == {"extension": "201", "new": 0, "old": 1}
        assert post(alice, f"/account/voicemail/{mine.id}/save", {}, "/account/voicemail").status_code == 302
        assert [m.id for m in box.messages("Saved")] == [mine.id]
        page_now = alice.get("/account/voicemail").get_data(as_text=True)
        assert "The message was moved to Saved." in page_now
        assert post(alice, f"/account/voicemail/{mine.id}/delete", {}, "/account/voicemail").status_code == 302
        assert box.find(mine.id) is None

        dan = signed_in(staff, "dan")  # no extension: no box
        assert "you have no voicemail box" in dan.get("/account/voicemail").get_data(as_text=True)
        assert dan.get(f"/account/voicemail/{mine.id}.wav").status_code == 404


def test_greetings_upload_and_removal_and_the_email_setting(staff, tmp_path):  # noqa: F811
    with _live_pbx(staff) as live:
        alice = signed_in(staff, "alice")
        box = live.sync(for_core(live.svc.core).box, "201")
        wav = _tone(tmp_path / "greeting.wav", 2.0, 16000)
        with open(wav, "rb") as f:
            sent = post(alice, "/account/voicemail/greetings/temporary", {"audio": (f, "hello.wav")},
                        "/account/voicemail", content_type="multipart/form-data")
        assert sent.status_code == 302
        stored = box.greeting("temporary")
        with wave.open(str(stored), "rb") as w:
            assert (w.getframerate(), w.getnchannels()) == (8000, 1) and abs(w.getnframes() / 8000 - 2.0) < 0.05
        html = alice.get("/account/voicemail").get_data(as_text=True)
        assert "Your greeting was saved" in html and html.index("recorded") > html.index('id="greeting-temporary"')

        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
        with open(broken, "rb") as f:
            post(alice, "/account/voicemail/greetings/busy", {"audio": (f, "b.wav")}, "/account/voicemail",
                 content_type="multipart/form-data")
        assert "The file was refused" in alice.get("/account/voicemail").get_data(as_text=True)
        assert box.greeting("busy") is None

        assert post(alice, "/account/voicemail/greetings/temporary/remove", {}, "/account/voicemail").status_code == 302
        assert box.greeting("temporary") is None

        saved = post(alice, "/account/voicemail/email", {"voicemail_email": "attach", "voicemail_email_delete": "on"},
                     "/account/voicemail")
        assert saved.status_code == 302
        mine = staff.config.pbx.extensions["201"]
        assert (mine.voicemail_email, mine.voicemail_email_delete) == ("attach", True)
        assert staff.store.current().author == "alice" and mine.blf_watchers == "nobody"  # only these two fields
        assert post(alice, "/account/voicemail/email", {"voicemail_email": "everyone"}, "/account/voicemail") \
            .status_code == 400
        mp3 = post(alice, "/account/voicemail/email", {"voicemail_email": "attach", "voicemail_compressed": "on"},
                   "/account/voicemail")
        assert mp3.status_code == 302 and staff.config.pbx.extensions["201"].voicemail_compressed


def test_the_temporary_greetings_end_date(staff):  # noqa: F811
    """A day in the box's time zone, from today to a year ahead; empty: until removed. The page says when
    it ends, and that callers hear the other greetings once it has."""
    zone = ZoneInfo(staff.config.system.timezone)
    today = datetime.datetime.now(zone).date()
    alice = signed_in(staff, "alice")
    url = "/account/voicemail/temporary-until"
    with _live_pbx(staff):
        assert post(alice, url, {"voicemail_temporary_until": today.isoformat()}, "/account/voicemail") \
            .status_code == 302
        assert staff.config.pbx.extensions["201"].voicemail_temporary_until == today
        html = alice.get("/account/voicemail").get_data(as_text=True)
        assert f"Callers hear it until the end of {today.isoformat()}" in html and f'value="{today}"' in html
        for bad in ((today - datetime.timedelta(days=1)).isoformat(), "2026-02-30", "tomorrow"):
            refused = post(alice, url, {"voicemail_temporary_until": bad}, "/account/voicemail")
            html = refused.get_data(as_text=True)
            assert refused.status_code == 400 and 'href="#f-voicemail_temporary_until"' in html
            assert "enter a day from today to a year ahead" in html and f'value="{bad}"' in html
            assert staff.config.pbx.extensions["201"].voicemail_temporary_until == today
        assert post(alice, url, {"voicemail_temporary_until": ""}, "/account/voicemail").status_code == 302
        assert staff.config.pbx.extensions["201"].voicemail_temporary_until is None


@pytest.mark.slow
def test_the_staff_page_plays_a_message_in_the_browser(staff, server, page, tmp_path):  # noqa: F811
    with _live_pbx(staff) as live:
        msg = put_message(live, "201", _tone(tmp_path / "tone.wav", 3.0), "202", "Bob Durand")
        page.goto("/login")
        page.fill("#f-login", "alice")
        page.fill("#f-password", PASSWORD)
        page.click("button[type=submit]")
        page.goto("/account/")
        page.click("#my-voicemail")
        player = page.locator(f"#msg-{msg.id} audio")
        player.wait_for()
        page.wait_for_function("a => a.readyState >= 1", arg=player.element_handle())
        duration = player.evaluate("a => a.duration")
        assert 2.9 < duration < 3.1, duration
        player.evaluate("a => { a.muted = true; return a.play(); }")
        page.wait_for_function("a => a.currentTime > 0.5", arg=player.element_handle())
        assert not player.evaluate("a => a.error")
