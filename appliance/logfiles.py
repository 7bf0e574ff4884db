"""The box's log files: log/<service>/*.log (each service process, each daemon it runs) and
log/core/appliance.log (this process). They are kept bounded: a file over LIMIT bytes is copied to
<name>.1 (replacing the previous one) and truncated in place, which the writers, who append (O_APPEND),
continue without noticing. `keep_bounded` runs from the runtime's loop in a worker thread.

The web admin's log viewer reads them through `files` and `tail`, which never read more than READ_LIMIT
bytes of a file however large it is.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.context import Context

log = logging.getLogger("officebox.logfiles")
LIMIT = 8 * 1024 * 1024
READ_LIMIT = 1024 * 1024
CHECK_INTERVAL = 60.0
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}\.log(\.1)?$")
SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


@dataclass(frozen=True)
class LogFile:
    service: str
    name: str
    size: int
    modified: float


def files(ctx: Context) -> list[LogFile]:
    root = ctx.data_dir / "log"
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or not SERVICE.match(folder.name):
            continue
        for path in sorted(folder.iterdir()):
            if NAME.match(path.name) and path.is_file() and not path.is_symlink():
                st = path.stat()
                found.append(LogFile(folder.name, path.name, st.st_size, st.st_mtime))
    return found


def path_of(ctx: Context, service: str, name: str) -> Path:
    """The file's path; ValueError for anything that is not one of the listed log files."""
    if not SERVICE.match(service) or not NAME.match(name):
        raise ValueError("not a log file of this box")
    path = ctx.data_dir / "log" / service / name
    if not path.is_file() or path.is_symlink():
        raise ValueError("not a log file of this box")
    return path


def tail(path: Path, lines: int = 200, contains: str = "") -> list[str]:
    """The last `lines` lines (of the last READ_LIMIT bytes) that contain `contains` (any case)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - READ_LIMIT))
        data = f.read(READ_LIMIT)
    text = data.decode("utf-8", "replace").splitlines()
    if size > READ_LIMIT and text:
        text = text[1:]  # a cut first line
    needle = contains.lower()
    chosen = [line for line in text if needle in line.lower()] if needle else text
    return chosen[-lines:]


def keep_bounded(ctx: Context, limit: int = LIMIT) -> list[str]:
    """Rotate every log file over `limit` bytes; returns the ones rotated."""
    rotated = []
    for entry in files(ctx):
        if entry.name.endswith(".1") or entry.size <= limit:
            continue
        path = ctx.data_dir / "log" / entry.service / entry.name
        try:
            shutil.copyfile(path, path.with_name(entry.name + ".1"))
            os.truncate(path, 0)
        except OSError as exc:
            log.warning("log %s could not be rotated: %s", path, exc)
            continue
        rotated.append(f"{entry.service}/{entry.name}")
    return rotated


async def keep_bounded_forever(ctx: Context, interval: float = CHECK_INTERVAL) -> None:
    while True:
        try:
            await asyncio.to_thread(keep_bounded, ctx)
        except Exception:
            log.exception("log rotation failed")
        await asyncio.sleep(interval)


def attach_appliance_log(ctx: Context) -> logging.Handler:
    """This process's log lines also go to log/core/appliance.log (0600); detach it with removeHandler."""
    path = ctx.log_dir("core") / "appliance.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler
