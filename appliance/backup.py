"""Backup and restore: one file (a gzip'd tar) with a versioned manifest and a checksum per member.

The backup holds the current configuration (secrets included: the file is written 0600), the
certificates and every service's state (leases, call records, mailboxes...). A restore is refused,
before anything is touched, if the file is corrupt, tampered with or from a newer format or schema.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

from appliance import schema
from appliance.apply import ApplyEngine, ConfigError
from appliance.context import Context
from appliance.fsutil import fsync_dir

FORMAT = "officebox-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INCLUDED_DIRS = ("state", "certs")


class BackupError(Exception):
    """A backup cannot be made or restored; the message is meant for the admin."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_backup(ctx: Context, engine: ApplyEngine, target: Path) -> dict:
    rev = engine.store.current()
    if rev is None:
        raise BackupError("nothing to back up: no configuration has been applied yet")
    members: dict[str, bytes] = {"config.json": json.dumps(rev.document, indent=1, sort_keys=True).encode()}
    for folder in INCLUDED_DIRS:
        root = ctx.data_dir / folder
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and not path.is_symlink():
                members[path.relative_to(ctx.data_dir).as_posix()] = path.read_bytes()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": schema.SCHEMA_VERSION,
        "created": time.time(), "revision": rev.id, "hostname": rev.config.system.hostname,
        "files": {name: _sha256(data) for name, data in members.items()},
    }
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".backup-")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(manifest["created"]), 0o600
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, target)
    return manifest


def read_backup(source: Path) -> tuple[dict, dict[str, bytes]]:
    """Read and verify a backup completely; raise BackupError with a clear reason."""
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            members: dict[str, bytes] = {}
            for info in tar:
                name = PurePosixPath(info.name)
                if not info.isfile() or name.is_absolute() or ".." in name.parts:
                    raise BackupError(f"the backup contains an unexpected entry: {info.name}")
                members[info.name] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"the file is not a readable OfficeBox backup (corrupt or truncated): {exc}") from None
    try:
        manifest = json.loads(members.pop(MANIFEST))
    except (KeyError, ValueError):
        raise BackupError("the file is not an OfficeBox backup (no valid manifest)") from None
    if manifest.get("format") != FORMAT:
        raise BackupError("the file is not an OfficeBox backup")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION or \
            int(manifest.get("schema_version", 0)) > schema.SCHEMA_VERSION:
        raise BackupError("this backup was made by a newer firmware; update the box first, then restore it")
    expected = manifest.get("files", {})
    if set(expected) != set(members):
        raise BackupError("the backup is incomplete or has been altered (file list does not match)")
    for name, data in members.items():
        if _sha256(data) != expected[name]:
            raise BackupError(f"the backup is corrupt or has been altered ({name} fails its checksum)")
    return manifest, members


def restore_backup(ctx: Context, engine: ApplyEngine, source: Path, author: str) -> int:
    """Restore state files, then apply the saved configuration as a new revision. Appliance stopped."""
    manifest, members = read_backup(Path(source))
    document = json.loads(members.pop("config.json"))
    engine.validate(document)  # refuse before touching anything
    staging = Path(tempfile.mkdtemp(dir=ctx.data_dir, prefix=".restore-"))
    try:
        for name, data in members.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_bytes(data)
            path.chmod(0o600)
        for folder in INCLUDED_DIRS:
            live, new, old = ctx.data_dir / folder, staging / folder, ctx.data_dir / f".{folder}.old"
            new.mkdir(exist_ok=True, mode=0o700)
            shutil.rmtree(old, ignore_errors=True)
            if live.exists():
                os.replace(live, old)
            os.replace(new, live)
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(ctx.data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest["created"]))
    rev = engine.apply(document, author, f"restore of the backup made {created}")
    return rev.id


PENDING = "restore-pending.obbackup"  # checked and waiting for the next start
FAILED = "restore-failed.obbackup"


def stage_restore(ctx: Context, engine: ApplyEngine, source: Path) -> dict:
    """Check a backup completely and keep it for the next start, which restores it (running box)."""
    manifest, members = read_backup(Path(source))
    try:
        engine.validate(json.loads(members["config.json"]))
    except (KeyError, ValueError, ConfigError) as exc:
        raise BackupError(f"the backup's configuration is not valid here: {exc}") from None
    tmp = ctx.data_dir / f".{PENDING}.new"
    with open(source, "rb") as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, ctx.data_dir / PENDING)
    fsync_dir(ctx.data_dir)
    return manifest


def restore_pending(ctx: Context, engine: ApplyEngine) -> int | None:
    """At start, before any service: restore a staged backup. A failure keeps the current state and
    sets the file aside as restore-failed.obbackup; the error is raised for the log."""
    pending = ctx.data_dir / PENDING
    if not pending.exists():
        return None
    try:
        return restore_backup(ctx, engine, pending, "restore")
    except Exception:
        os.replace(pending, ctx.data_dir / FAILED)
        raise
    finally:
        pending.unlink(missing_ok=True)
