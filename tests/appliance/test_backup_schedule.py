"""Scheduled backups: when they are due, rotation at a folder destination, and a real OpenSSH server in a
namespace as the SFTP destination (upload, rotation, host key pinning, restore from it), with the failure
told by the notifier."""
from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance import backup
from appliance.backupjobs import BackupJobs, fetch_host_key, fingerprint, latest_slot
from appliance.notify import Notifier
from appliance.schema import ScheduledBackups
from tests.netns import Lab, needs_netns

PASS = "correct horse battery"


def _configure(engine, **backups):
    def mutate(doc):
        doc["backups"] = {"enabled": True, "passphrase": PASS, **backups}
    engine.update("admin", "scheduled backups", mutate)


def test_the_latest_slot_follows_the_schedule_in_the_box_zone():
    paris = ZoneInfo("Europe/Paris")
    daily = ScheduledBackups(hour=2)
    assert latest_slot(daily, datetime(2026, 12, 1, 1, 59, tzinfo=paris)) == datetime(2026, 11, 30, 2, tzinfo=paris)
    assert latest_slot(daily, datetime(2026, 12, 1, 2, 0, tzinfo=paris)) == datetime(2026, 12, 1, 2, tzinfo=paris)
    weekly = ScheduledBackups(frequency="weekly", weekday=6, hour=23)  # Sundays 23:00
    assert latest_slot(weekly, datetime(2026, 12, 1, 12, tzinfo=paris)) == datetime(2026, 11, 29, 23, tzinfo=paris)
    assert latest_slot(weekly, datetime(2026, 12, 6, 23, 30, tzinfo=paris)) == datetime(2026, 12, 6, 23, tzinfo=paris)


def test_enabled_backups_need_a_passphrase_and_a_destination():
    with pytest.raises(ValueError) as err:
        ScheduledBackups(enabled=True, destination={"kind": "sftp", "host": "backup.example.com"})
    text = str(err.value)
    assert "passphrase" in text and "user" in text and "host_key" in text


def test_folder_destination_rotates_and_a_missed_backup_is_made_once(ctx, engine, tmp_path):
    folder = tmp_path / "usb"
    folder.mkdir()
    _configure(engine, keep=2, destination={"kind": "directory", "directory": str(folder)})
    jobs = BackupJobs(ctx, engine, engine.current_config)
    assert jobs.due()  # never made: the last slot was missed
    names = []
    for _ in range(3):
        state = jobs.run()
        assert state["last_error"] is None, state
        names.append(state["last_name"])
        time.sleep(1.05)  # names carry the second
    assert not jobs.due()
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(names[1:])  # the oldest was removed, no partial file left
    manifest, document = backup.read_backup(folder / names[-1], PASS)
    assert manifest["encrypted"] and document["backups"]["destination"]["directory"] == str(folder)
    with pytest.raises(backup.BackupError):
        backup.read_backup(folder / names[-1], "wrong passphrase")


def test_an_unplugged_disk_fails_clearly_and_the_admin_is_told(ctx, engine, tmp_path):
    _configure(engine, destination={"kind": "directory", "directory": str(tmp_path / "not-mounted")})
    jobs = BackupJobs(ctx, engine, engine.current_config)
    state = jobs.run()
    assert "does not exist" in state["last_error"] and not state.get("last_success")
    notifier = Notifier(ctx, engine.current_config, lambda name: None, lambda: None, backups=jobs)
    events = notifier.check()
    assert [e["state"] for e in events if e["key"] == "backup"] == ["started"]
    assert "The scheduled backup failed: the folder" in events[0]["message"]
    (tmp_path / "not-mounted").mkdir()
    assert jobs.run()["last_error"] is None
    assert [e["state"] for e in notifier.check() if e["key"] == "backup"] == ["cleared"]


def _sshd(host, tmp: Path, authorized: str) -> subprocess.Popen:
    key = tmp / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    (tmp / "authorized_keys").write_text(authorized + "\n")
    config = tmp / "sshd_config"
    config.write_text(f"""ListenAddress 192.0.2.2
Port 22
HostKey {key}
AuthorizedKeysFile {tmp}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {tmp}/sshd.pid
Subsystem sftp internal-sftp
MaxStartups 4
""")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = host.popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
    for _ in range(100):
        if host.run("ss", "-ltn", check=False).stdout.count("192.0.2.2:22"):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(proc.communicate(timeout=5)[0])


@pytest.mark.slow
@pytest.mark.netns
@needs_netns
def test_sftp_server_in_a_namespace_holds_rotated_backups_and_restores(ctx, engine, tmp_path):
    server_dir = tmp_path / "srv"
    server_dir.mkdir()
    store = server_dir / "backups"
    store.mkdir()
    with Lab() as lab:
        box, server = lab.host("box"), lab.host("sftp")
        lab.link(box, "192.0.2.1/24", server, "192.0.2.2/24")
        jobs = BackupJobs(ctx, engine, engine.current_config)
        sshd = _sshd(server, server_dir, jobs.public_key())
        try:
            with box.enter():
                host_key = fetch_host_key("192.0.2.2", 22)
            assert host_key == (server_dir / "host_ed25519.pub").read_text().split(" ")[0] + " " + \
                (server_dir / "host_ed25519.pub").read_text().split(" ")[1]
            assert fingerprint(host_key).startswith("SHA256:")
            dest = {"kind": "sftp", "host": "192.0.2.2", "user": "root", "path": str(store), "host_key": host_key}
            _configure(engine, keep=1, destination=dest)
            with box.enter():
                first = jobs.run()
                time.sleep(1.05)
                second = jobs.run()
                listing = jobs.listing()
            assert first["last_error"] is None and second["last_error"] is None, (first, second)
            assert sorted(p.name for p in store.iterdir()) == [second["last_name"]] == listing
            manifest, _ = backup.read_backup(store / second["last_name"], PASS)
            assert manifest["encrypted"]

            with box.enter():
                staged = jobs.stage(second["last_name"])
            assert staged["created"] == manifest["created"] and (ctx.data_dir / backup.PENDING).exists()

            other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                                   check=True, timeout=30)
            assert other.returncode == 0
            forged = (tmp_path / "other.pub").read_text().split()
            _configure(engine, keep=1, destination={**dest, "host_key": f"{forged[0]} {forged[1]}"})
            with box.enter():
                refused = jobs.run()
            assert "host key verification failed" in refused["last_error"]
            assert sorted(p.name for p in store.iterdir()) == [second["last_name"]]  # nothing touched
        finally:
            sshd.kill()
            sshd.wait(timeout=10)
