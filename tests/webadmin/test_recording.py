"""Recordings in the web admin: admins play and download them from the call records page, staff only
those of their own calls (another's: 404), a read-only admin hears none (core.secret); the settings and
the manager/secretary pairs are saved as configuration. The audio comes through the PBX's client."""
from __future__ import annotations

import math
import struct
import wave

from services.pbx.cdr import CallRecord, CdrStore
from tests.webadmin.helpers import post, sign_in
from tests.webadmin.test_account import signed_in, staff  # noqa: F401 (the staff fixture)
from tests.webadmin.test_readonly import _readonly_client
from webadmin import create_app

MINE, THEIRS, GONE = "20261201-100000-c201.wav", "20261201-110000-c203.wav", "20261201-090000-cold.wav"


def _wav(path, hz: int) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<hh", int(5000 * math.sin(2 * math.pi * hz * n / 8000)), 0)
                               for n in range(8000)))
    return path.read_bytes()


def _seed(runtime) -> dict[str, bytes]:
    pbx = runtime.services["pbx"]
    folder = pbx.ctx.state_dir("pbx") / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    store = CdrStore(pbx.cdr_path)
    store.add(CallRecord(call_id="c201", direction="internal", caller="201", dialled="202", callee="202",
                         disposition="answered", recording=MINE))
    store.add(CallRecord(call_id="c203", direction="internal", caller="203", dialled="202", callee="202",
                         disposition="answered", recording=THEIRS))
    store.add(CallRecord(call_id="cold", direction="internal", caller="201", dialled="203", callee="203",
                         disposition="answered", recording=GONE, recording_removed="retention"))
    store.flush()
    return {MINE: _wav(folder / MINE, 600), THEIRS: _wav(folder / THEIRS, 1000)}


def _url(name: str) -> str:
    return f"/pbx/recording/{name[:-4]}.wav"


def test_admins_play_and_download_recordings_from_the_call_records(staff):  # noqa: F811
    files = _seed(staff)
    app = create_app(staff)
    app.config["TESTING"] = True
    admin = app.test_client()
    assert sign_in(admin).status_code == 302
    page = admin.get("/pbx/cdr").get_data(as_text=True)
    assert f'<audio controls preload="none" src="{_url(MINE)}">' in page
    assert f'href="{_url(THEIRS)}?download=1"' in page
    assert "deleted (retention)" in page and _url(GONE) not in page
    played = admin.get(_url(MINE))
    assert played.status_code == 200 and played.mimetype == "audio/wav" and played.data == files[MINE]
    download = admin.get(_url(THEIRS) + "?download=1")
    assert download.data == files[THEIRS] and download.headers["Content-Disposition"].startswith("attachment")
    assert admin.get(_url(GONE)).status_code == 404
    assert admin.get("/pbx/recording/..%2Fcdr.sqlite.wav").status_code == 404


def test_staff_hear_only_their_own_calls(staff):  # noqa: F811
    files = _seed(staff)
    alice = signed_in(staff, "alice")
    assert 'href="/account/recordings/"' in alice.get("/account/").get_data(as_text=True)
    mine = alice.get("/account/recordings/").get_data(as_text=True)
    assert f"/account/recordings/{MINE[:-4]}.wav" in mine and THEIRS[:-4] not in mine
    assert alice.get(f"/account/recordings/{MINE[:-4]}.wav").data == files[MINE]
    assert alice.get(f"/account/recordings/{THEIRS[:-4]}.wav").status_code == 404  # carol's call with bob
    assert alice.get(_url(MINE)).status_code == 403  # the admins' route
    bob = signed_in(staff, "bob")  # bob took part in both
    assert bob.get(f"/account/recordings/{THEIRS[:-4]}.wav").data == files[THEIRS]
    dan = signed_in(staff, "dan")  # no extension
    assert dan.get(f"/account/recordings/{MINE[:-4]}.wav").status_code == 404
    assert "no extension" in dan.get("/account/recordings/").get_data(as_text=True)


def test_a_read_only_admin_sees_the_records_but_hears_no_recording(admin_client, app, runtime):
    _seed(runtime)
    reader = _readonly_client(admin_client, app)
    page = reader.get("/pbx/cdr").get_data(as_text=True)
    assert "<audio" not in page and _url(MINE) not in page
    assert reader.get(_url(MINE)).status_code == 403
    assert reader.get("/pbx/recording/").status_code == 200
    assert post(reader, "/pbx/recording/", {"retention_days": "1"}).status_code == 403
    assert runtime.config.pbx.recording.retention_days == 90


def test_recording_settings_and_secretaries_are_saved(staff):  # noqa: F811
    runtime = staff
    admin_client = create_app(runtime).test_client()
    assert sign_in(admin_client).status_code == 302
    answer = post(admin_client, "/pbx/recording/", {"extensions": "201, 202", "groups": "", "trunks": "",
                                                    "on_demand": "on", "notice": "prompt", "retention_days": "30",
                                                    "max_disk_mb": "500"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    rec = runtime.config.pbx.recording
    assert (rec.extensions, rec.notice, rec.retention_days, rec.max_disk_mb) == (["201", "202"], "prompt", 30, 500)
    bad = post(admin_client, "/pbx/recording/", {"extensions": "2x", "notice": "tone", "retention_days": "0",
                                                 "max_disk_mb": "500"})
    assert bad.status_code == 400 and runtime.config.pbx.recording.retention_days == 30
    assert post(admin_client, "/pbx/recording/secretaries", {"manager": "201", "secretary": "202", "screening": "on",
                                                            "bypass": "203, 0611223344"},
                form_path="/pbx/recording/").status_code == 302
    refused = post(admin_client, "/pbx/recording/secretaries", {"manager": "209", "secretary": "202"},
                   form_path="/pbx/recording/")
    assert refused.status_code == 400 and "209 is not an extension" in refused.get_data(as_text=True)
    [pair] = runtime.config.pbx.secretaries
    assert (pair.manager, pair.secretary, pair.screening, pair.bypass) == ("201", "202", True, ["203", "0611223344"])
    assert "0611223344" in admin_client.get("/pbx/recording/").get_data(as_text=True)
    assert post(admin_client, "/pbx/recording/secretaries/0/delete", {},
                form_path="/pbx/recording/").status_code == 302
    assert runtime.config.pbx.secretaries == []
