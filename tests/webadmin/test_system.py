"""System page: backup download, firmware upload (signed, checked before install), rollback."""
from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time

import pytest

from appliance import backup, firmware
from tests.webadmin.helpers import csrf_of, post
from tests.webadmin.tasks import follow


@pytest.fixture
def release_key(runtime, tmp_path):
    """A signing key the box trusts (as the release key would be)."""
    key = tmp_path / "release.key"
    public = firmware.new_signing_key(key)
    trust = runtime.ctx.data_dir / "trusted-keys"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "release.pub").write_text(public.read_text())
    return key


def bundle(tmp_path, key, version: str, payload_bytes: int = 100) -> bytes:
    source = tmp_path / f"payload-{version}"
    source.write_bytes(os.urandom(payload_bytes))
    target = tmp_path / f"officebox-{version}.obfw"
    firmware.build_bundle({"appliance/data.bin": source}, version, key, target)
    return target.read_bytes()


def tamper(data: bytes) -> bytes:
    """The same bundle with one byte of its payload changed (manifest and signature kept)."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            members[info.name] = bytearray(tar.extractfile(info).read())
    members["payload.tar.gz"][len(members["payload.tar.gz"]) // 2] ^= 0xFF
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(bytes(content)))
    return out.getvalue()


def upload(client, data: bytes, name: str = "fw.obfw", **fields):
    token = csrf_of(client, "/system/")
    return client.post("/system/firmware", data={"csrf_token": token, "bundle": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def install(client, data: bytes, **fields):
    """Upload a firmware, then follow its progress page (it reloads itself while the install runs) to its end."""
    resp = upload(client, data, **fields)
    assert resp.status_code == 302 and "/system/tasks/" in resp.headers["Location"], resp.get_data(as_text=True)[-500:]
    for _ in range(300):  # bounded: 30 s
        page = client.get(resp.headers["Location"])
        if 'http-equiv="refresh"' not in page.get_data(as_text=True):
            return page
        assert page.status_code == 200 and 'id="task-running"' in page.get_data(as_text=True)
        time.sleep(0.1)
    raise AssertionError("the firmware install did not end")


def test_backup_download_is_a_valid_backup_and_leaves_nothing_behind(admin_client, runtime, tmp_path):
    resp = post(admin_client, "/system/backup", {}, form_path="/system/")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert ".obbackup" in resp.headers["Content-Disposition"]
    saved = tmp_path / "download.obbackup"
    saved.write_bytes(resp.get_data())
    manifest, document = backup.read_backup(saved)
    assert manifest["revision"] == runtime.store.current_id() and "system" in document
    assert not list(runtime.ctx.data_dir.glob(".download-*"))


def test_firmware_upload_install_refusals_and_rollback(admin_client, runtime, tmp_path, release_key):
    assert upload(admin_client, b"", name="").status_code == 400
    first = bundle(tmp_path, release_key, "9.9.9", payload_bytes=3 * 1024 * 1024)  # over the 2 MB form limit
    resp = install(admin_client, first)
    assert resp.status_code == 200 and 'id="task-done"' in resp.get_data(as_text=True)
    assert "Firmware 9.9.9 installed" in resp.get_data(as_text=True)
    page = admin_client.get("/system/").get_data(as_text=True)
    assert 'id="fw-running">9.9.9<' in page

    refused = install(admin_client, tamper(bundle(tmp_path, release_key, "9.9.10")))
    assert refused.status_code == 400 and "checksum mismatch" in refused.get_data(as_text=True)
    older = install(admin_client, bundle(tmp_path, release_key, "9.9.1"))
    assert older.status_code == 400 and "downgrade" in older.get_data(as_text=True)
    stranger = tmp_path / "stranger.key"
    firmware.new_signing_key(stranger)
    unsigned = install(admin_client, bundle(tmp_path, stranger, "9.9.11"))
    assert unsigned.status_code == 400 and "not signed by a trusted key" in unsigned.get_data(as_text=True)
    garbage = install(admin_client, b"not a firmware at all")
    assert garbage.status_code == 400 and "not a readable OfficeBox firmware" in garbage.get_data(as_text=True)
    assert 'id="fw-running">9.9.9<' in admin_client.get("/system/").get_data(as_text=True)

    assert 'id="task-done"' in install(admin_client, bundle(tmp_path, release_key, "9.9.12")).get_data(as_text=True)
    page = admin_client.get("/system/").get_data(as_text=True)
    assert 'id="fw-running">9.9.12<' in page and 'id="fw-previous">9.9.9<' in page
    assert post(admin_client, "/system/firmware/rollback", {}, form_path="/system/").status_code == 302
    assert 'id="fw-running">9.9.9<' in admin_client.get("/system/").get_data(as_text=True)
    assert not list((runtime.ctx.data_dir / "firmware").glob(".upload-*"))


def test_large_uploads_only_for_the_firmware_form_and_only_for_admins(admin_client, client):
    big = b"x" * (3 * 1024 * 1024)
    token = csrf_of(admin_client, "/users/")
    assert admin_client.post("/users/new", data={"csrf_token": token, "file": (io.BytesIO(big), "f")},
                             content_type="multipart/form-data").status_code == 413
    anonymous = client.post("/system/firmware", data={"bundle": (io.BytesIO(big), "f.obfw")},
                            content_type="multipart/form-data")
    assert anonymous.status_code == 413


def serving(runtime):
    """Give the runtime the loop and stop event `serve` would; returns a check that a stop was asked."""
    loop = asyncio.new_event_loop()
    runtime._loop, runtime._stop = loop, asyncio.Event()

    def stopped() -> bool:
        try:
            loop.run_until_complete(asyncio.wait_for(runtime._stop.wait(), 10))
            return runtime.restart_requested
        finally:
            loop.close()
    return stopped


def test_restart_button_stops_the_appliance_to_start_again(admin_client, runtime):
    stopped = serving(runtime)
    resp = post(admin_client, "/system/restart", {}, form_path="/system/")
    assert resp.status_code == 200 and "The box is restarting." in resp.get_data(as_text=True)
    assert stopped()


def test_restore_upload_is_checked_then_restored_by_a_restart(admin_client, runtime, tmp_path):
    saved = tmp_path / "saved.obbackup"
    saved.write_bytes(post(admin_client, "/system/backup", {}, form_path="/system/").get_data())
    stopped = serving(runtime)

    def send(data: bytes, name="box.obbackup"):
        token = csrf_of(admin_client, "/system/")
        return admin_client.post("/system/restore", data={"csrf_token": token, "backup": (io.BytesIO(data), name)},
                                 content_type="multipart/form-data")

    assert send(b"", name="").status_code == 400
    broken = follow(admin_client, send(saved.read_bytes()[:-100]))
    assert broken.status_code == 400 and "nothing was changed" in broken.get_data(as_text=True)
    assert not (runtime.ctx.data_dir / backup.PENDING).exists() and not runtime.restart_requested
    resp = follow(admin_client, send(saved.read_bytes()))
    assert resp.status_code == 200 and "restarting to restore it" in resp.get_data(as_text=True)
    assert (runtime.ctx.data_dir / backup.PENDING).exists() and stopped()
    assert not list(runtime.ctx.data_dir.glob(".upload-*"))


def test_encrypted_backup_download_and_restore(admin_client, runtime, tmp_path):
    differ = post(admin_client, "/system/backup", {"passphrase": "pass phrase 1", "passphrase2": "other"},
                  form_path="/system/")
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    short = post(admin_client, "/system/backup", {"passphrase": "short", "passphrase2": "short"}, form_path="/system/")
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    resp = post(admin_client, "/system/backup", {"passphrase": "pass phrase 1", "passphrase2": "pass phrase 1"},
                form_path="/system/")
    assert resp.status_code == 200 and backup.cryptstream.is_encrypted(resp.get_data())
    stopped = serving(runtime)

    def send(passphrase: str):
        token = csrf_of(admin_client, "/system/")
        return admin_client.post("/system/restore", content_type="multipart/form-data",
                                 data={"csrf_token": token, "passphrase": passphrase,
                                       "backup": (io.BytesIO(resp.get_data()), "box.obbackup")})
    refused = follow(admin_client, send("wrong phrase"))
    assert refused.status_code == 400 and "wrong passphrase" in refused.get_data(as_text=True)
    assert not (runtime.ctx.data_dir / backup.PENDING).exists()
    assert follow(admin_client, send("pass phrase 1")).status_code == 200
    assert (runtime.ctx.data_dir / backup.PENDING).exists()
    assert stopped()


def test_a_whole_system_update_off_the_os_image_is_refused_clearly(admin_client, runtime, tmp_path):
    """The System page takes .raucb files only where RAUC runs (the OS image): here it says so."""
    page = admin_client.get("/system/").get_data(as_text=True)
    assert ".raucb" not in page  # no control for what this box cannot do
    resp = upload(admin_client, b"hsqs not really a bundle", name="officebox-0.2.0.raucb")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "System update refused, nothing was written" in body
    assert "need the OfficeBox OS image" in body and not list(runtime.ctx.data_dir.rglob(".upload-*"))


def test_a_firmware_install_shows_its_progress_then_its_result_to_its_admin_only(admin_client, app, runtime,
                                                                                 tmp_path, release_key):
    from webadmin.blueprints import system

    with system._INSTALLING:  # an install that takes a while: held until the page was seen running
        resp = upload(admin_client, bundle(tmp_path, release_key, "9.9.20"))
        assert resp.status_code == 302
        running = admin_client.get(resp.headers["Location"])
        page = running.get_data(as_text=True)
        assert running.status_code == 200 and running.headers["Cache-Control"] == "no-store"
        assert '<meta http-equiv="refresh" content="2">' in page and 'id="task-running"' in page
        assert 'id="fw-running">9.9.20<' not in admin_client.get("/system/").get_data(as_text=True)
        other = app.test_client()  # signed in as the same admin elsewhere: the same owner
        assert other.get(resp.headers["Location"]).status_code == 302  # not signed in: to the login page
    for _ in range(300):
        done = admin_client.get(resp.headers["Location"])
        if 'id="task-running"' not in done.get_data(as_text=True):
            break
        time.sleep(0.1)
    assert done.status_code == 200 and 'http-equiv="refresh"' not in done.get_data(as_text=True)
    assert 'id="task-done"' in done.get_data(as_text=True) and "9.9.20" in done.get_data(as_text=True)
    assert admin_client.get("/system/tasks/no-such-task").status_code == 404
    assert not list((runtime.ctx.data_dir / "firmware").glob(".upload-*"))
