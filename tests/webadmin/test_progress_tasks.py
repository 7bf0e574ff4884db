"""Long actions run in the background and followed on a page that reloads itself (no script): a restore
(uploaded or from the backup destination), a whole-system update (.raucb, checked by the real RAUC), a
rollback to a revision and a service restart each show their steps while running, then a clear result
(the error in plain words when it fails) and a way back; a task's page is for the admin who started it;
the task store stays bounded in count and age."""
from __future__ import annotations

import asyncio
import io
import threading
import time

import pytest

from appliance import backup, firmware
from tests import rauclab
from tests.webadmin.helpers import csrf_of, post
from tests.webadmin.tasks import REFRESH_TAG, follow
from tests.webadmin.test_history import second_admin
from tests.webadmin.test_system import serving
from tests.webadmin.test_users import create
from webadmin import progress


def running_page(client, response) -> str:
    """The page of the task `response` redirects to, while it cannot end (the test holds it)."""
    assert response.status_code == 302 and "/system/tasks/" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and REFRESH_TAG in body and 'id="task-running"' in body, body[-1500:]
    return body


def send_backup(client, data: bytes, name="box.obbackup", **fields):
    token = csrf_of(client, "/system/")
    return client.post("/system/restore", data={"csrf_token": token, "backup": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def test_a_restore_shows_its_steps_then_restarts_or_says_why_it_was_refused(app, admin_client, runtime, tmp_path):
    from webadmin.blueprints import system

    saved = post(admin_client, "/system/backup", {}, form_path="/system/").get_data()
    stopped = serving(runtime)
    with system._RESTORING:  # held: the restore cannot end before its page was seen running
        started = send_backup(admin_client, saved)
        page = running_page(admin_client, started)
        assert "box.obbackup" in page and 'id="task-steps"' in page
        assert 'aria-current="step"' in page and "Checking the backup and its configuration" in page
        assert "to come" in page and not runtime.restart_requested
        bert = second_admin(app, admin_client)  # another admin: not their task
        assert bert.get(started.headers["Location"]).status_code == 404
    done = follow(admin_client, started)
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and 'id="task-done"' in body and "restarting to restore it" in body
    assert body.count(">done<") == 2 and 'content="20;url=/"' in body  # then on to the dashboard
    assert (runtime.ctx.data_dir / backup.PENDING).exists() and stopped()
    assert not list(runtime.ctx.data_dir.glob(".upload-*"))


def test_a_restore_of_a_damaged_backup_ends_with_the_error_and_nothing_changed(admin_client, runtime):
    saved = post(admin_client, "/system/backup", {}, form_path="/system/").get_data()
    done = follow(admin_client, send_backup(admin_client, saved[: len(saved) // 2], name="half.obbackup"))
    body = done.get_data(as_text=True)
    assert done.status_code == 400 and 'id="task-failed"' in body and "Backup refused, nothing was changed:" in body
    assert ">failed<" in body and "not done" in body and 'href="/system/"' in body
    assert not (runtime.ctx.data_dir / backup.PENDING).exists() and not runtime.restart_requested
    assert not list(runtime.ctx.data_dir.glob(".upload-*"))


def test_a_restore_from_the_destination_fetches_checks_and_restarts(admin_client, runtime, tmp_path):
    from tests.webadmin.test_backups import _form

    folder = tmp_path / "usb"
    folder.mkdir()
    assert post(admin_client, "/backups/", _form(folder)).status_code == 302
    runtime.backups.run()
    name = runtime.backups.status()["last_name"]
    stopped = serving(runtime)
    done = follow(admin_client, post(admin_client, "/backups/restore", {"name": name}, form_path="/backups/"))
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and "restarting to restore it" in body
    assert "Fetching the backup from its destination" in body and body.count(">done<") == 3
    assert 'href="/backups/"' in body and stopped()
    (folder / name).write_bytes(b"not a backup any more")
    runtime.restart_requested = False
    refused = follow(admin_client, post(admin_client, "/backups/restore", {"name": name}, form_path="/backups/"))
    assert refused.status_code == 400 and "Backup refused, nothing was changed:" in refused.get_data(as_text=True)


@pytest.fixture
def rauc_lab(tmp_path, monkeypatch):
    """A system.conf of RAUC trusting a lab CA of its own (images/os/signing.py), as the OS image's, and a
    small signed update; the web admin's whole-system updates use that configuration."""
    bundle, conf = rauclab.rauc_lab(tmp_path, monkeypatch)
    monkeypatch.setattr(firmware, "RAUC_CONFIG", conf)
    return bundle


def update(client, data: bytes, name="officebox-9.8.7.raucb"):
    token = csrf_of(client, "/system/")
    return client.post("/system/firmware", data={"csrf_token": token, "bundle": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_a_tampered_system_update_ends_with_rauc_s_refusal(admin_client, runtime, rauc_lab):
    from webadmin.blueprints import system

    data = bytearray(rauc_lab.read_bytes())
    data[len(data) // 3] ^= 0xFF
    with system._INSTALLING:
        started = update(admin_client, bytes(data))
        page = running_page(admin_client, started)
        assert "Checking the update" in page and "Writing it into the other root slot" in page
    done = follow(admin_client, started)
    body = done.get_data(as_text=True)
    assert done.status_code == 400 and 'id="task-failed"' in body
    assert "System update refused, nothing was written:" in body and "signature verification failed" in body
    assert ">failed<" in body and 'href="/system/"' in body
    assert not list(runtime.ctx.data_dir.rglob(".upload-*"))


def test_a_signed_system_update_is_checked_then_written_or_says_why_not(admin_client, runtime, rauc_lab):
    """The signature checks out (the first step is done); writing the slot is RAUC's (here without its
    service or a real slot it may refuse): either way the page ends with that outcome in words."""
    done = follow(admin_client, update(admin_client, rauc_lab.read_bytes()), seconds=120)
    body = done.get_data(as_text=True)
    assert 'id="task-steps"' in body
    assert body.index("Checking the update") < body.index(">done<")  # the signature step passed
    if done.status_code == 200:
        assert "System update 9.8.7 installed into the other root slot" in body
    else:
        assert "System update refused, nothing was written:" in body and ">failed<" in body
    assert not list(runtime.ctx.data_dir.rglob(".upload-*"))


def test_a_rollback_runs_in_the_background_and_says_when_the_configuration_changed_meanwhile(admin_client,
                                                                                           runtime):
    setup_id = runtime.store.current_id()
    create(admin_client)
    before = runtime.store.current_id()
    with runtime.engine._lock:  # the engine busy: the rollback waits for it, its page says it runs
        started = post(admin_client, f"/history/{setup_id}/rollback", {"base_revision": str(before)},
                       form_path=f"/history/{setup_id}")
        page = running_page(admin_client, started)
        assert f"Applying revision #{setup_id} again" in page and "in progress" in page
        assert runtime.store.current_id() == before
        create(admin_client, login="bert", extension="209", email="bert@acme.example")  # meanwhile, another change
    done = follow(admin_client, started)
    body = done.get_data(as_text=True)
    assert done.status_code == 400 and "Nothing was rolled back: the configuration was changed meanwhile" in body
    assert f'href="/history/{setup_id}"' in body and runtime.config.user("bert") is not None
    again = follow(admin_client, post(admin_client, f"/history/{setup_id}/rollback", {},
                                      form_path=f"/history/{setup_id}"))
    new = runtime.store.current_id()
    assert again.status_code == 200 and f"new revision #{new} is applied" in again.get_data(as_text=True)
    assert runtime.config.user("bert") is None and runtime.config.user("anna") is None


def test_a_service_restart_that_cannot_happen_ends_with_the_error(admin_client, runtime):
    """The DNS service under a supervisor on its loop thread, but not started: its restart is refused, and
    the page says why in the supervisor's words."""
    from appliance.supervisor import Supervisor

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    supervisor = runtime.supervisor = Supervisor(runtime.ctx, {"dns": runtime.services["dns"]})
    supervisor.loop = loop
    try:
        started = post(admin_client, "/services/dns/restart", {}, form_path="/services/dns/restart")
        done = follow(admin_client, started)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        runtime.supervisor = None
    body = done.get_data(as_text=True)
    assert done.status_code == 400 and 'id="task-failed"' in body
    assert "did not restart: dns is stopped, not running" in body and 'href="/#service-dns"' in body
    assert "Stopping DNS" in body or "Stopping" in body


def test_the_task_store_is_bounded_in_count_and_age(app, monkeypatch):
    with app.app_context():
        store = progress.Tasks()
        ids = [store.start("admin", "firmware", lambda: {}) for _ in range(progress.KEEP + 5)]
        for _ in range(200):
            if all(store.get(i, "admin") is None or store.get(i, "admin")["state"] == "done" for i in ids):
                break
            time.sleep(0.01)
        assert len(store) == progress.KEEP and store.get(ids[0], "admin") is None
        assert store.get(ids[-1], "admin")["state"] == "done" and store.get(ids[-1], "other") is None
        monkeypatch.setattr(progress, "AGE", 0)
        time.sleep(0.01)
        assert store.get(ids[-1], "admin") is None and len(store) == 0
