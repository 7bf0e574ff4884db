"""Backup and restore: one file (a gzip'd tar), optionally encrypted with a passphrase, with a versioned
manifest and a checksum per member.

The backup holds the current configuration (secrets included: the file is written 0600), the
certificates and every service's state (leases, call records, mailboxes...). Both ways stream: a file is
read or written in bounded pieces, so a box with gigabytes of mail backs up and restores in bounded
memory. The manifest comes last (its checksums are computed while the members stream); backups of format
1 had it first and are still read. A restore is refused, before anything is touched, if the file is
corrupt, tampered with, encrypted with another passphrase or from a newer format or schema; a restore
whose configuration then fails to apply puts the previous state back, so the box is exactly as it was.
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

from appliance import cryptstream, schema
from appliance.apply import ApplyEngine, ConfigError
from appliance.context import Context
from appliance.fsutil import fsync_dir

FORMAT = "officebox-backup"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CONFIG = "config.json"
INCLUDED_DIRS = ("state", "certs")
PIECE = 1024 * 1024
MAX_SMALL_MEMBER = 64 * 1024 * 1024  # the manifest and the configuration are read into memory


class BackupError(Exception):
    """A backup cannot be made or restored; the message is meant for the admin."""


class _Hashing:
    """Reads exactly `size` bytes of `src`, hashing them; a file that shrank meanwhile is an error."""

    def __init__(self, src, size: int, name: str) -> None:
        self.src, self.left, self.name, self.sha = src, size, name, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.src.read(n)
        if len(data) < n:
            raise BackupError(f"{self.name} changed while it was being backed up; try again")
        self.left -= len(data)
        self.sha.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, src, size: int, mtime: int) -> str:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    reader = _Hashing(src, size, name)
    tar.addfile(info, reader)
    return reader.sha.hexdigest()


def _state_files(ctx: Context):
    for folder in INCLUDED_DIRS:
        root = ctx.data_dir / folder
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(ctx.data_dir).as_posix(), path


def create_backup(ctx: Context, engine: ApplyEngine, target: Path, passphrase: str | None = None) -> dict:
    rev = engine.store.current()
    if rev is None:
        raise BackupError("nothing to back up: no configuration has been applied yet")
    created = time.time()
    config = json.dumps(rev.document, indent=1, sort_keys=True).encode()
    files: dict[str, str] = {}
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".backup-")
    os.fchmod(fd, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = cryptstream.EncryptWriter(raw, passphrase) if passphrase else raw
            with tarfile.open(fileobj=out, mode="w|gz") as tar:

                files[CONFIG] = _add(tar, CONFIG, io.BytesIO(config), len(config), int(created))
                for name, path in _state_files(ctx):
                    try:
                        with open(path, "rb") as src:
                            files[name] = _add(tar, name, src, os.fstat(src.fileno()).st_size, int(created))
                    except FileNotFoundError:
                        continue  # removed meanwhile (a delivered message moved, a lease file rotated)
                manifest = {
                    "format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": schema.SCHEMA_VERSION,
                    "created": created, "revision": rev.id, "hostname": rev.config.system.hostname,
                    "encrypted": bool(passphrase), "files": files,
                }
                data = json.dumps(manifest, indent=1).encode()
                _add(tar, MANIFEST, io.BytesIO(data), len(data), int(created))
            if out is not raw:
                out.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def is_encrypted(source: Path) -> bool:
    with open(source, "rb") as f:
        return cryptstream.is_encrypted(f.read(len(cryptstream.MAGIC)))


class _Tee:
    """A reader that copies what it reads into `copy` (the checked plaintext of a staged restore)."""

    def __init__(self, src, copy) -> None:
        self.src, self.copy = src, copy

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.copy.write(data)
        return data


def _read(source: Path, passphrase: str | None, staging: Path | None = None, copy=None) -> tuple[dict, dict]:
    """Stream a backup once, checking everything; members go under `staging` when given. Returns the
    manifest and the configuration document. BackupError with a clear reason otherwise."""
    try:
        raw = open(source, "rb")
    except OSError as exc:
        raise BackupError(f"the backup cannot be read: {exc}") from None
    with raw:
        stream = raw
        if cryptstream.is_encrypted(raw.read(len(cryptstream.MAGIC))):
            if not passphrase:
                raise BackupError("this backup is encrypted: give its passphrase")
            raw.seek(0)
            try:
                stream = cryptstream.DecryptReader(raw, passphrase)
            except cryptstream.DecryptError as exc:
                raise BackupError(f"the backup cannot be decrypted: {exc}") from None
        else:
            raw.seek(0)
        if copy is not None:
            stream = _Tee(stream, copy)
        try:
            return _walk(stream, staging)
        except cryptstream.DecryptError as exc:
            raise BackupError(f"the backup cannot be decrypted: {exc}") from None
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError, ValueError) as exc:
            raise BackupError(f"the file is not a readable OfficeBox backup (corrupt or truncated): {exc}") from None


def _walk(stream, staging: Path | None) -> tuple[dict, dict]:
    sums: dict[str, str] = {}
    small: dict[str, bytes] = {}
    with tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for info in tar:
            name = PurePosixPath(info.name)
            if not info.isfile() or name.is_absolute() or ".." in name.parts or info.name in sums:
                raise BackupError(f"the backup contains an unexpected entry: {info.name}")
            if info.name in (MANIFEST, CONFIG) and info.size > MAX_SMALL_MEMBER:
                raise BackupError(f"the backup's {info.name} is too large")
            src, sha = tar.extractfile(info), hashlib.sha256()
            out = None
            if staging is not None and info.name not in (MANIFEST, CONFIG):
                path = staging / info.name
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                out = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
            keep = bytearray() if info.name in (MANIFEST, CONFIG) else None
            try:
                while piece := src.read(PIECE):
                    sha.update(piece)
                    if out is not None:
                        out.write(piece)
                    if keep is not None:
                        keep += piece
            finally:
                if out is not None:
                    out.close()
            sums[info.name] = sha.hexdigest()
            if keep is not None:
                small[info.name] = bytes(keep)
    try:
        manifest = json.loads(small.pop(MANIFEST))
        sums.pop(MANIFEST)
    except (KeyError, ValueError):
        raise BackupError("the file is not an OfficeBox backup (no valid manifest)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("the file is not an OfficeBox backup")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION or \
            int(manifest.get("schema_version", 0)) > schema.SCHEMA_VERSION:
        raise BackupError("this backup was made by a newer firmware; update the box first, then restore it")
    expected = manifest.get("files", {})
    if set(expected) != set(sums):
        raise BackupError("the backup is incomplete or has been altered (file list does not match)")
    for name, digest in sums.items():
        if digest != expected[name]:
            raise BackupError(f"the backup is corrupt or has been altered ({name} fails its checksum)")
    try:
        document = json.loads(small[CONFIG])
    except (KeyError, ValueError):
        raise BackupError("the backup has no valid configuration") from None
    return manifest, document


def read_backup(source: Path, passphrase: str | None = None) -> tuple[dict, dict]:
    """Read and verify a backup completely (nothing kept but the manifest and configuration)."""
    return _read(Path(source), passphrase)


def _validate(engine: ApplyEngine, document: dict) -> None:
    try:
        engine.validate(document)
    except (ValueError, ConfigError) as exc:
        raise BackupError(f"the backup's configuration is not valid here: {exc}") from None


def restore_backup(ctx: Context, engine: ApplyEngine, source: Path, author: str,
                   passphrase: str | None = None) -> int:
    """Restore state files and the saved configuration as a new revision, both or neither (appliance
    stopped). The state is unpacked beside the live one, swapped in, and swapped back if the apply fails."""
    staging = Path(tempfile.mkdtemp(dir=ctx.data_dir, prefix=".restore-"))
    swapped: list[str] = []
    try:
        manifest, document = _read(Path(source), passphrase, staging)
        _validate(engine, document)
        for folder in INCLUDED_DIRS:
            live, new, old = ctx.data_dir / folder, staging / folder, staging / f"{folder}.old"
            new.mkdir(exist_ok=True, mode=0o700)
            if live.exists():
                os.replace(live, old)
            os.replace(new, live)
            swapped.append(folder)
        fsync_dir(ctx.data_dir)
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest["created"]))
        rev = engine.apply(document, author, f"restore of the backup made {created}")
        swapped.clear()
        return rev.id
    finally:
        for folder in reversed(swapped):  # the apply failed: the previous state comes back
            live, old = ctx.data_dir / folder, staging / f"{folder}.old"
            os.replace(live, staging / f"{folder}.failed")
            if old.exists():
                os.replace(old, live)
        if swapped:
            fsync_dir(ctx.data_dir)
        shutil.rmtree(staging, ignore_errors=True)


PENDING = "restore-pending.obbackup"  # checked (and decrypted) and waiting for the next start
FAILED = "restore-failed.obbackup"


def stage_restore(ctx: Context, engine: ApplyEngine, source: Path, passphrase: str | None = None) -> dict:
    """Check a backup completely and keep it for the next start, which restores it (running box). An
    encrypted backup is kept decrypted (0600, inside the data it restores), so no passphrase is stored."""
    tmp = ctx.data_dir / f".{PENDING}.new"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as copy:
            manifest, document = _read(Path(source), passphrase, copy=copy)
            _validate(engine, document)
            copy.flush()
            os.fsync(copy.fileno())
        os.replace(tmp, ctx.data_dir / PENDING)
    finally:
        tmp.unlink(missing_ok=True)
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
