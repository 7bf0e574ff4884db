"""Follow the box certificate: when the runtime renews it (new names, new LAN address, near its end),
new SMTP handshakes get it at once and Dovecot reloads it, without a restart of the mail service.

The files are watched (their inode, size and time), not an event: the mail service may run in its own
process, and a renewal by any path (the runtime, a restore) changes the files."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("officebox.mail")
CHECK_SECONDS = 5.0


def stamp(paths: tuple[Path, Path]) -> tuple | None:
    try:
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (os.stat(p) for p in paths))
    except OSError:
        return None


async def watch(locate: Callable[[], tuple[Path, Path]], renewed: Callable[[tuple[Path, Path]], Awaitable[None]],
                seconds: float | None = None) -> None:
    """Call `renewed(paths)` whenever the certificate files `locate()` names change (until cancelled).
    A failed reload (e.g. caught between the key's and the certificate's write) is tried again."""
    paths = await asyncio.to_thread(locate)
    seen = await asyncio.to_thread(stamp, paths)
    while True:
        await asyncio.sleep(CHECK_SECONDS if seconds is None else seconds)
        try:
            paths = await asyncio.to_thread(locate)
            now = await asyncio.to_thread(stamp, paths)
            if now is not None and now != seen:
                await renewed(paths)
                seen = now
                log.info("mail: the renewed box certificate is in use")
        except Exception as exc:  # keep the certificate in use; try again at the next check
            log.warning("mail: cannot load the renewed box certificate yet: %s", exc)
