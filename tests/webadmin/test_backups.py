"""The scheduled-backups page: settings saved as one revision with field errors for what is missing, the
passphrase never shown back, "back up now" writing to a folder, and a restore from the destination staged."""
from __future__ import annotations

import time

from appliance import backup
from tests.webadmin.helpers import post
from tests.webadmin.tasks import follow
from tests.webadmin.test_system import serving

PASS = "correct horse battery"


def _form(folder, **changes):
    return {"enabled": "on", "frequency": "daily", "weekday": "0", "hour": "2", "keep": "3", "kind": "directory",
            "directory": str(folder), "host": "", "port": "22", "user": "", "path": "", "host_key": "",
            "passphrase": PASS, "passphrase2": PASS, **changes}


def test_missing_destination_and_passphrase_are_field_errors_and_nothing_is_saved(admin_client, runtime):
    before = runtime.store.current().id
    page = post(admin_client, "/backups/", _form("", passphrase="", passphrase2=""))
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert 'id="e-directory"' in text and 'id="e-passphrase"' in text
    assert runtime.store.current().id == before
    sftp = post(admin_client, "/backups/", _form("", kind="sftp", host="backup.example.com"))
    text = sftp.get_data(as_text=True)
    assert sftp.status_code == 400 and 'id="e-user"' in text and 'id="e-host_key"' in text
    assert "ssh-ed25519 " in text  # the box's own key is shown for the server's authorized_keys
    bad = post(admin_client, "/backups/", _form("/tmp", keep="500"))
    assert bad.status_code == 400 and 'id="e-keep"' in bad.get_data(as_text=True)


def test_saved_settings_hide_the_passphrase_and_back_up_now_writes_a_backup(admin_client, runtime, tmp_path):
    folder = tmp_path / "usb"
    folder.mkdir()
    saved = post(admin_client, "/backups/", _form(folder))
    assert saved.status_code == 302, saved.get_data(as_text=True)
    settings = runtime.config.backups
    assert settings.enabled and settings.passphrase == PASS and settings.destination.directory == str(folder)
    page = admin_client.get("/backups/").get_data(as_text=True)
    assert PASS not in page and "leave empty to keep it" in page
    again = post(admin_client, "/backups/", _form(folder, keep="5", passphrase="", passphrase2=""))
    assert again.status_code == 302 and runtime.config.backups.passphrase == PASS  # kept

    assert post(admin_client, "/backups/run", {}, form_path="/backups/").status_code == 302
    for _ in range(200):
        state = runtime.backups.status()
        if state.get("last_success") and not state["running"]:
            break
        time.sleep(0.05)
    assert state.get("last_name") and (folder / state["last_name"]).exists(), state
    listed = admin_client.get("/backups/").get_data(as_text=True)
    assert state["last_name"] in listed and 'id="last-success"' in listed

    refused = post(admin_client, "/backups/restore", {"name": "../../etc/passwd"}, form_path="/backups/")
    assert refused.status_code == 400 and not (runtime.ctx.data_dir / backup.PENDING).exists()
    stopped = serving(runtime)
    staged = follow(admin_client, post(admin_client, "/backups/restore", {"name": state["last_name"]},
                                       form_path="/backups/"))
    assert staged.status_code == 200 and "restarting to restore it" in staged.get_data(as_text=True)
    assert (runtime.ctx.data_dir / backup.PENDING).exists() and stopped()


def test_back_up_now_shows_its_progress_then_a_clear_result(admin_client, runtime, tmp_path):
    """"Back up now" lands on a page that reloads itself while the backup is made (no script needed) and then
    says what came of it: the backup's name and size, or why it failed."""
    folder = tmp_path / "usb"
    folder.mkdir()
    assert post(admin_client, "/backups/", _form(folder)).status_code == 302
    jobs = runtime.backups
    assert jobs._running.acquire(timeout=5)  # a backup is being made: the one asked for waits behind it
    try:
        started = post(admin_client, "/backups/run", {}, form_path="/backups/")
        assert started.status_code == 302 and "/backups/running?since=" in started.headers["Location"]
        page = admin_client.get(started.headers["Location"]).get_data(as_text=True)
        assert '<meta http-equiv="refresh" content="2">' in page and 'id="backup-running"' in page
    finally:
        jobs._running.release()
    state = jobs.run()
    done = admin_client.get(started.headers["Location"]).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in done and 'id="backup-done"' in done and state["last_name"] in done
    folder.rename(tmp_path / "unplugged")  # the disk is gone: the next one fails
    failed_at = post(admin_client, "/backups/run", {}, form_path="/backups/").headers["Location"]
    for _ in range(200):
        page = admin_client.get(failed_at).get_data(as_text=True)
        if 'http-equiv="refresh"' not in page:
            break
        time.sleep(0.05)
    assert 'id="backup-failed"' in page and "is the disk plugged in and mounted?" in page, page


def test_the_last_backup_is_dated_in_the_box_zone_and_the_user_locale(admin_client, runtime, monkeypatch):
    """The box is set to Berlin; the machine's own zone (here America/Bogota) must not show through."""
    from datetime import UTC, datetime

    from babel.dates import format_datetime

    when = 1796171633.0
    runtime.backups._save(last_attempt=when, last_success=when, last_name="officebox-x.obbackup", last_size=4096)
    expected = format_datetime(datetime.fromtimestamp(when, UTC), "medium", tzinfo="Europe/Berlin", locale="en")
    monkeypatch.setenv("TZ", "America/Bogota")
    time.tzset()
    try:
        for path in ("/backups/", "/backups/running?since=0"):
            page = admin_client.get(path).get_data(as_text=True)
            assert expected in page, (path, expected)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_restore_from_the_destination_asks_once_clearly(admin_client, runtime, tmp_path):
    """The listing's button opens a page that says what the restore replaces and restarts; only its button
    restores. A name that is not one of the box's backups is 404."""
    folder = tmp_path / "usb"
    folder.mkdir()
    assert post(admin_client, "/backups/", _form(folder)).status_code == 302
    name = runtime.backups.run()["last_name"]
    listing = admin_client.get("/backups/").get_data(as_text=True)
    assert f'href="/backups/restore/{name}"' in listing and 'action="/backups/restore"' not in listing
    ask = admin_client.get(f"/backups/restore/{name}")
    page = ask.get_data(as_text=True)
    assert ask.status_code == 200 and name in page and "restarts" in page
    assert 'action="/backups/restore"' in page and f'name="name" value="{name}"' in page
    assert not (runtime.ctx.data_dir / backup.PENDING).exists()
    assert admin_client.get("/backups/restore/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert admin_client.get("/backups/restore/other.obbackup").status_code == 404
