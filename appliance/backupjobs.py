"""Scheduled backups (configuration `backups`): the box makes an encrypted backup (appliance/backup.py)
daily or weekly at the set hour of its time zone, writes it to a folder (a USB disk's mount point), an
SFTP server or an SMB share (SmbDestination), keeps the newest `keep` there and removes older ones, and can
restore any of them.

A backup missed while the box was off is made at the next check. The outcome of the last run is kept in
state/core/backups.json (the dashboard's "last backup" card and the "backup failed" notification read it).

SFTP runs OpenSSH's `sftp` in batch mode with the box's own key (state/core/backup-ssh/, made on first use,
0600; its public half is shown to the admin to put in the server's authorized_keys) and the server's host
key from the configuration, checked strictly: a server whose key changed is refused. Every run is bounded
in time; everything here blocks, so the runtime calls it from a worker thread.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance import backup
from appliance.context import Context
from appliance.fsutil import atomic_write, fsync_dir

log = logging.getLogger("officebox.backupjobs")
CHECK_INTERVAL = 60.0
SFTP_TIMEOUT = 600.0
KEYSCAN_TIMEOUT = 10
NAME = re.compile(r"^officebox-[a-z0-9-]+-\d{8}-\d{6}\.obbackup$")
MAX_LISTED = 500
PROBE = ".officebox-write-test"  # the test button writes and removes it


class DestinationError(Exception):
    """The destination cannot be reached or refused an operation (the message says why, plainly)."""


def backup_name(hostname: str, when: float) -> str:
    return f"officebox-{hostname}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(when))}.obbackup"


def latest_slot(settings, now: datetime) -> datetime:
    """The most recent scheduled time at or before `now` (aware, in the box's zone)."""
    slot = now.replace(hour=settings.hour, minute=0, second=0, microsecond=0)
    if slot > now:
        slot -= timedelta(days=1)
    if settings.frequency == "weekly":
        slot -= timedelta(days=(slot.weekday() - settings.weekday) % 7)
    return slot


def box_zone(config) -> ZoneInfo:
    try:
        return ZoneInfo(config.system.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# -- destinations -----------------------------------------------------------------------------------
class DirectoryDestination:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _ready(self) -> Path:
        if not self.folder.is_dir():
            raise DestinationError(f"the folder {self.folder} does not exist (is the disk plugged in and mounted?)")
        return self.folder

    def put(self, local: Path, name: str) -> None:
        folder = self._ready()
        part = folder / f".{name}.part"
        try:
            with open(local, "rb") as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, folder / name)
            fsync_dir(folder)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise DestinationError(f"writing to {folder} failed: {exc.strerror or exc}") from None

    def names(self) -> list[str]:
        return sorted(p.name for p in self._ready().iterdir() if NAME.match(p.name))[-MAX_LISTED:]

    def delete(self, name: str) -> None:
        (self._ready() / _checked(name, probe=True)).unlink(missing_ok=True)

    def get(self, name: str, local: Path) -> None:
        try:
            shutil.copyfile(self._ready() / _checked(name), local)
        except OSError as exc:
            raise DestinationError(f"reading {name} failed: {exc.strerror or exc}") from None


class SftpDestination:
    def __init__(self, dest, key: Path) -> None:
        self.dest, self.key = dest, key

    def _remote(self, name: str = "") -> str:
        folder = self.dest.path.rstrip("/")
        return f"{folder}/{name}" if folder else name or "."

    def _run(self, commands: list[str], timeout: float = SFTP_TIMEOUT) -> str:
        with tempfile.TemporaryDirectory(prefix="officebox-sftp-") as tmp:
            known = Path(tmp) / "known_hosts"
            host = self.dest.host if self.dest.port == 22 else f"[{self.dest.host}]:{self.dest.port}"
            known.write_text(f"{host} {self.dest.host_key}\n")
            argv = ["sftp", "-b", "-", "-F", "/dev/null", "-i", str(self.key), "-P", str(self.dest.port),
                    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
                    "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
                    f"{self.dest.user}@{self.dest.host}"]
            try:
                done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True,
                                      timeout=timeout)
            except subprocess.TimeoutExpired:
                raise DestinationError(f"the SFTP server did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            raise DestinationError(_sftp_reason(done.stderr))
        return done.stdout

    def put(self, local: Path, name: str) -> None:
        part = self._remote(f".{name}.part")
        self._run([f'-rm "{part}"', f'put "{local}" "{part}"', f'rename "{part}" "{self._remote(name)}"'])

    def names(self) -> list[str]:
        out = self._run([f'ls -1 "{self._remote()}"'], timeout=60)
        found = {line.strip().rsplit("/", 1)[-1] for line in out.splitlines()}
        return sorted(n for n in found if NAME.match(n))[-MAX_LISTED:]

    def delete(self, name: str) -> None:
        self._run([f'rm "{self._remote(_checked(name, probe=True))}"'], timeout=60)

    def get(self, name: str, local: Path) -> None:
        self._run([f'get "{self._remote(_checked(name))}" "{local}"'])


class SmbDestination:
    """An SMB share (a NAS, a Windows share) through Debian's `smbclient`, its commands given with -c; the
    user, password and domain go in a 0600 credentials file in a private temporary directory, never on the
    command line, and no system-wide smb.conf is read."""

    def __init__(self, dest) -> None:
        self.dest = dest

    def _run(self, commands: list[str], timeout: float = SFTP_TIMEOUT) -> str:
        with tempfile.TemporaryDirectory(prefix="officebox-smb-") as tmp:
            conf = Path(tmp) / "smb.conf"
            conf.write_text("[global]\n  client min protocol = SMB2\n")
            creds = Path(tmp) / "credentials"
            fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"username = {self.dest.user}\npassword = {self.dest.password_secret}\n")
                if self.dest.domain:
                    f.write(f"domain = {self.dest.domain}\n")
            folder = self.dest.path.strip("/")
            script = ([f'cd "{folder}"'] if folder else []) + commands
            argv = ["smbclient", f"//{self.dest.host}/{self.dest.share}", "-s", str(conf), "-A", str(creds),
                    "-p", str(self.dest.smb_port), "-t", "30", "-c", "; ".join(script)]
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                      env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp})
            except subprocess.TimeoutExpired:
                raise DestinationError(f"the SMB server did not finish within {timeout:.0f} s") from None
        output = done.stdout + done.stderr
        if done.returncode != 0 or "NT_STATUS_" in output:
            raise DestinationError(_smb_reason(output, self.dest))
        return done.stdout

    def put(self, local: Path, name: str) -> None:
        part = f".{name}.part"
        self._run([f'put "{local}" "{part}"', f'rename "{part}" "{name}" -f'])

    def names(self) -> list[str]:
        out = self._run(["ls"], timeout=60)
        found = {line.split()[0] for line in out.splitlines() if line.strip()}
        return sorted(n for n in found if NAME.match(n))[-MAX_LISTED:]

    def delete(self, name: str) -> None:
        self._run([f'del "{_checked(name, probe=True)}"'], timeout=60)

    def get(self, name: str, local: Path) -> None:
        self._run([f'get "{_checked(name)}" "{local}"'])


SMB_PORT = 445  # the schema's default
SMB_REASONS = (  # smbclient's NT_STATUS codes, in plain words
    (("NT_STATUS_LOGON_FAILURE", "NT_STATUS_WRONG_PASSWORD", "NT_STATUS_NO_SUCH_USER"),
     "the server refused the user name or password"),
    (("NT_STATUS_ACCOUNT_DISABLED", "NT_STATUS_ACCOUNT_LOCKED_OUT", "NT_STATUS_PASSWORD_EXPIRED"),
     "the server refused the user: its account is disabled, locked or its password expired"),
    (("NT_STATUS_BAD_NETWORK_NAME",), "the server has no share named {share}"),
    (("NT_STATUS_OBJECT_PATH_NOT_FOUND", "NT_STATUS_OBJECT_NAME_NOT_FOUND", "NT_STATUS_NOT_A_DIRECTORY"),
     "the folder {path} does not exist in the share {share}"),
    (("NT_STATUS_ACCESS_DENIED",), "the user may not write to this share or folder (access denied)"),
    (("NT_STATUS_DISK_FULL",), "the share is full"),
    (("NT_STATUS_CONNECTION_REFUSED", "NT_STATUS_HOST_UNREACHABLE", "NT_STATUS_NETWORK_UNREACHABLE",
      "NT_STATUS_IO_TIMEOUT", "NT_STATUS_CONNECTION_RESET", "NT_STATUS_CONNECTION_DISCONNECTED",
      "NT_STATUS_NOT_FOUND", "NT_STATUS_UNSUCCESSFUL", "NT_STATUS_INVALID_NETWORK_RESPONSE"),
     "the SMB server {host}{port} cannot be reached (is it on, and its address and port right?)"),
)


def _smb_reason(output: str, dest) -> str:
    for codes, text in SMB_REASONS:
        if any(code in output for code in codes):
            port = f" (port {dest.smb_port})" if dest.smb_port != SMB_PORT else ""
            return text.format(host=dest.host, port=port, share=dest.share, path=dest.path or "/")
    status = re.search(r"NT_STATUS_[A-Z_]+", output)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "SMB failed: " + (status.group(0) if status else lines[-1][:300] if lines else "no reason given")


def _checked(name: str, probe: bool = False) -> str:
    if not NAME.match(name) and not (probe and name == PROBE):
        raise DestinationError(f"{name!r} is not the name of one of this box's backups")
    return name


def _sftp_reason(stderr: str) -> str:
    text = stderr.strip()
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return "the server's host key is not the one configured (host key verification failed)"
    if "Permission denied" in text:
        return "the server refused the box's key (is it in the user's authorized_keys?)"
    if "Connection refused" in text or "Connection timed out" in text or "No route to host" in text:
        return "the SFTP server cannot be reached: " + text.splitlines()[-1][:200]
    return "SFTP failed: " + (text.splitlines()[-1][:300] if text else "no reason given")


def fetch_host_key(host: str, port: int) -> str:
    """The server's ed25519 (else ECDSA, else RSA) host key line, for the admin to confirm by fingerprint."""
    try:
        done = subprocess.run(["ssh-keyscan", "-T", str(KEYSCAN_TIMEOUT), "-p", str(port),
                               "-t", "ed25519,ecdsa,rsa", host], capture_output=True, text=True,
                              timeout=KEYSCAN_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        raise DestinationError(f"{host} did not answer within {KEYSCAN_TIMEOUT} s") from None
    keys = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            keys[parts[1]] = f"{parts[1]} {parts[2]}"
    for kind in ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"):
        if kind in keys:
            return keys[kind]
    raise DestinationError(f"no SSH server answered at {host} port {port}")


def fingerprint(key_line: str) -> str:
    """SHA256:... as `ssh-keygen -l` prints it (what the server's admin compares)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pub") as f:
        f.write(key_line + "\n")
        f.flush()
        done = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f.name], capture_output=True, text=True,
                              timeout=10)
    if done.returncode != 0:
        raise DestinationError("not an SSH public key")
    return done.stdout.split()[1]


# -- the scheduler ----------------------------------------------------------------------------------
class BackupJobs:
    """`config`: a callable giving the current configuration; `engine`: the apply engine."""

    def __init__(self, ctx: Context, engine, config) -> None:
        self.ctx, self.engine, self.config = ctx, engine, config
        self.state_path = ctx.state_dir("core") / "backups.json"
        self.key_path = ctx.state_dir("core") / "backup-ssh" / "id_ed25519"
        self._running = threading.Lock()

    # state
    def status(self) -> dict:
        """{"last_attempt", "last_success", "last_error", "last_name", "last_size", "running"} (times: epoch)."""
        try:
            state = json.loads(self.state_path.read_text())
            state = state if isinstance(state, dict) else {}
        except (FileNotFoundError, ValueError):
            state = {}
        return {**state, "running": self._running.locked()}

    def _save(self, **changes) -> None:
        state = {k: v for k, v in self.status().items() if k != "running"}
        state.update(changes)
        atomic_write(self.state_path, json.dumps(state).encode(), mode=0o600)

    def public_key(self) -> str:
        """The box's SSH public key (made on first use) for the server's authorized_keys."""
        if not self.key_path.exists():
            self.key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            config = self.config()
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            f"officebox-backup@{config.system.hostname}", "-f", str(self.key_path)],
                           check=True, capture_output=True, timeout=30)
            os.chmod(self.key_path, 0o600)
        return self.key_path.with_suffix(".pub").read_text().strip()

    def destination(self, settings=None):
        settings = settings or self.config().backups
        dest = settings.destination
        if dest.kind == "sftp":
            self.public_key()
            return SftpDestination(dest, self.key_path)
        if dest.kind == "smb":
            return SmbDestination(dest)
        return DirectoryDestination(dest.directory)

    # runs
    def due(self, now: float | None = None) -> bool:
        config = self.config()
        settings = config.backups
        if not settings.enabled:
            return False
        zone = box_zone(config)
        slot = latest_slot(settings, datetime.fromtimestamp(now or time.time(), zone))
        return float(self.status().get("last_attempt") or 0) < slot.timestamp()

    def run(self) -> dict:
        """Make one backup now, send it, rotate; returns the new status (never raises for a failed run)."""
        if not self._running.acquire(blocking=False):
            return self.status()
        try:
            return self._run()
        finally:
            self._running.release()

    def _run(self) -> dict:
        config = self.config()
        settings = config.backups
        started = time.time()
        self._save(last_attempt=started)
        name = backup_name(config.system.hostname, started)
        fd, tmp = tempfile.mkstemp(dir=self.ctx.data_dir, prefix=".scheduled-")
        os.close(fd)
        try:
            backup.create_backup(self.ctx, self.engine, Path(tmp), settings.passphrase or None)
            size = os.path.getsize(tmp)
            dest = self.destination(settings)
            dest.put(Path(tmp), name)
            removed = self._rotate(dest, settings.keep, config.system.hostname)
        except (backup.BackupError, DestinationError, OSError, subprocess.SubprocessError) as exc:
            log.error("scheduled backup failed: %s", exc)
            self._save(last_error=str(exc) or exc.__class__.__name__, last_error_time=time.time())
            return self.status()
        finally:
            Path(tmp).unlink(missing_ok=True)
        log.info("scheduled backup %s written (%d bytes), %d old removed", name, size, len(removed))
        self._save(last_success=time.time(), last_name=name, last_size=size, last_error=None)
        return self.status()

    @staticmethod
    def _rotate(dest, keep: int, hostname: str) -> list[str]:
        mine = [n for n in dest.names() if n.startswith(f"officebox-{hostname}-")]
        old = mine[:-keep] if len(mine) > keep else []
        for name in old:
            dest.delete(name)
        return old

    def check(self) -> int:
        """The test button: sign in, write a small file and remove it, list; the number of this box's
        backups found there. Raises DestinationError saying what failed."""
        config = self.config()
        dest = self.destination(config.backups)
        with tempfile.NamedTemporaryFile(dir=self.ctx.data_dir, prefix=".probe-") as probe:
            probe.write(b"written by an OfficeBox to test its backup destination; safe to remove\n")
            probe.flush()
            dest.put(Path(probe.name), PROBE)
        dest.delete(PROBE)
        return sum(n.startswith(f"officebox-{config.system.hostname}-") for n in dest.names())

    def listing(self) -> list[str]:
        """The box's backups at the destination, newest first."""
        return sorted(self.destination().names(), reverse=True)

    def stage(self, name: str) -> dict:
        """Fetch one backup from the destination and stage it for restore at the next start."""
        fd, tmp = tempfile.mkstemp(dir=self.ctx.data_dir, prefix=".fetched-")
        os.close(fd)
        try:
            self.destination().get(_checked(name), Path(tmp))
            passphrase = self.config().backups.passphrase or None
            return backup.stage_restore(self.ctx, self.engine, Path(tmp), passphrase)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def problems(self) -> dict[str, tuple[str, dict]]:
        """For the notifier: the last scheduled run failed (cleared by the next good one, or switching off)."""
        state = self.status()
        if self.config().backups.enabled and state.get("last_error"):
            return {"backup": ("backup", {"error": str(state["last_error"])[:300]})}
        return {}

    async def serve(self, interval: float = CHECK_INTERVAL) -> None:
        """The runtime's task: check every `interval` s (in a worker thread) and run when due."""
        import asyncio

        while True:
            try:
                if await asyncio.to_thread(self.due):
                    await asyncio.to_thread(self.run)
            except Exception:
                log.exception("scheduled backup check failed")
            await asyncio.sleep(interval)
