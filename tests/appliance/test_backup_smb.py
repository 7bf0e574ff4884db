"""Scheduled backups to an SMB share: Debian's smbd in a namespace, configured here in a temporary folder
(its own smb.conf and passdb, nothing system-wide), as the destination: upload, rotation, restore from
it, and the wrong password, an unknown share and an unreachable server told in plain words; a NAS serving SMB
on another port than 445."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from appliance import backup
from appliance.backupjobs import BackupJobs, DestinationError
from tests.netns import Lab, needs_netns

PASS = "correct horse battery"
SMB_PASSWORD = "nas pass; 'quoted' $x"  # what a shell or the command line would mangle
needs_samba = pytest.mark.skipif(not shutil.which("smbd") or not shutil.which("smbclient"),
                                 reason="needs samba and smbclient (deps/debian-packages.txt)")


def _smbd(host, tmp: Path, port: int = 445) -> subprocess.Popen:
    for name in ("private", "lock", "state", "cache", "pid", "ncalrpc", "share/office/backups"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    config = tmp / "smb.conf"
    config.write_text(f"""[global]
interfaces = 192.0.2.2
bind interfaces only = yes
smb ports = {port}
disable netbios = yes
server role = standalone server
passdb backend = tdbsam:{tmp}/private/passdb.tdb
private dir = {tmp}/private
lock directory = {tmp}/lock
state directory = {tmp}/state
cache directory = {tmp}/cache
pid directory = {tmp}/pid
ncalrpc dir = {tmp}/ncalrpc
log file = {tmp}/log.%m
map to guest = never
load printers = no
printcap name = /dev/null
disable spoolss = yes
[Backups]
path = {tmp}/share
read only = no
valid users = root
""")
    subprocess.run(["smbpasswd", "-c", str(config), "-s", "-a", "root"], input=f"{SMB_PASSWORD}\n{SMB_PASSWORD}\n",
                   check=True, capture_output=True, text=True, timeout=30)
    proc = host.popen(["smbd", "--foreground", "--debug-stdout", "-s", str(config)])
    for _ in range(100):
        if host.run("ss", "-ltn", check=False).stdout.count(f"192.0.2.2:{port} "):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(proc.communicate(timeout=5)[0])


def _configure(engine, **destination):
    def mutate(doc):
        doc["backups"] = {"enabled": True, "passphrase": PASS, "keep": 2,
                          "destination": {"kind": "smb", "host": "192.0.2.2", "share": "Backups",
                                          "path": "office/backups", "user": "root",
                                          "password_secret": SMB_PASSWORD, **destination}}
    engine.update("admin", "scheduled backups", mutate)


@pytest.mark.netns
@needs_netns
@needs_samba
def test_smb_share_in_a_namespace_holds_rotated_backups_restores_and_refuses_clearly(ctx, engine, tmp_path):
    store = tmp_path / "share" / "office" / "backups"
    with Lab() as lab:
        box, nas = lab.host("box"), lab.host("nas")
        lab.link(box, "192.0.2.1/24", nas, "192.0.2.2/24")
        smbd = _smbd(nas, tmp_path)
        try:
            jobs = BackupJobs(ctx, engine, engine.current_config)
            _configure(engine)
            with box.enter():
                runs = []
                for _ in range(3):
                    runs.append(jobs.run())
                    time.sleep(1.05)  # names carry the second
                listing = jobs.listing()
                found = jobs.check()  # the test button: writes and removes a file, counts the backups
            assert all(r["last_error"] is None for r in runs), runs
            names = [r["last_name"] for r in runs]
            assert sorted(p.name for p in store.iterdir()) == sorted(names[1:]) == sorted(listing)
            assert found == 2
            manifest, document = backup.read_backup(store / names[-1], PASS)
            assert manifest["encrypted"] and document["backups"]["destination"]["share"] == "Backups"

            with box.enter():
                staged = jobs.stage(names[-1])
            assert staged["created"] == manifest["created"] and (ctx.data_dir / backup.PENDING).exists()
            _, restored = backup.read_backup(ctx.data_dir / backup.PENDING, PASS)
            assert restored["backups"]["destination"]["path"] == "office/backups"

            for change, reason in (({"password_secret": "wrong"}, "refused the user name or password"),
                                   ({"share": "Nope"}, "has no share named Nope"),
                                   ({"path": "office/gone"}, "the folder office/gone does not exist"),
                                   ({"host": "198.51.100.9"}, "cannot be reached")):
                _configure(engine, **change)
                with box.enter():
                    state = jobs.run()
                    if "password_secret" in change:  # the test button says the same
                        with pytest.raises(DestinationError, match=reason):
                            jobs.check()
                assert reason in state["last_error"], (change, state["last_error"])
            assert sorted(p.name for p in store.iterdir()) == sorted(names[1:])  # nothing touched
        finally:
            _stop(smbd)


def _stop(smbd: subprocess.Popen) -> None:
    smbd.terminate()
    try:
        smbd.wait(timeout=10)
    except subprocess.TimeoutExpired:
        smbd.kill()
        smbd.wait(timeout=10)


@pytest.mark.netns
@needs_netns
@needs_samba
def test_a_share_on_another_port_than_445(ctx, engine, tmp_path):
    """The NAS's smbd listens on 4450 only: with the destination's SMB port set to it the backup is written,
    listed, tested and restored; left at its default of 445 the server cannot be reached, and the message
    names the port."""
    store = tmp_path / "share" / "office" / "backups"
    with Lab() as lab:
        box, nas = lab.host("box"), lab.host("nas")
        lab.link(box, "192.0.2.1/24", nas, "192.0.2.2/24")
        smbd = _smbd(nas, tmp_path, port=4450)
        try:
            assert "192.0.2.2:445 " not in nas.run("ss", "-ltn", check=False).stdout
            jobs = BackupJobs(ctx, engine, engine.current_config)
            _configure(engine)
            assert engine.current_config().backups.destination.smb_port == 445  # the default
            with box.enter():
                refused = jobs.run()
            assert "cannot be reached" in refused["last_error"] and not list(store.iterdir())
            _configure(engine, smb_port=4450)
            with box.enter():
                state = jobs.run()
                assert jobs.listing() == [state["last_name"]] and jobs.check() == 1
                staged = jobs.stage(state["last_name"])
            assert state["last_error"] is None, state
            assert [p.name for p in store.iterdir()] == [state["last_name"]]
            manifest, _ = backup.read_backup(store / state["last_name"], PASS)
            assert staged["created"] == manifest["created"]
            _configure(engine, smb_port=4451)
            with box.enter():
                assert "port 4451" in jobs.run()["last_error"]
        finally:
            _stop(smbd)
