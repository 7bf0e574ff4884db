"""The recordings folder: names, retention and the disk limit (blocking: call it in a thread)."""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("officebox.pbx.recording")
NAME = re.compile(r"^[0-9]{8}-[0-9]{6}-[A-Za-z0-9]{1,16}\.wav$")
MB = 1024 * 1024


class RecordingStore:
    MIN_ROOM = MB  # a recording does not start with less room than this under the disk limit

    def __init__(self, root: Path, cdr) -> None:
        self.root = Path(root)
        self.cdr = cdr

    def path(self, name: str) -> Path:
        """The file of a recording name; ValueError for anything but a recording's name."""
        if not NAME.fullmatch(name or ""):
            raise ValueError(f"{name!r} is no recording name")
        return self.root / name

    def files(self) -> list[tuple[float, int, Path]]:
        """(modified, bytes, path) of every recording, oldest first."""
        found = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if NAME.fullmatch(entry.name):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return sorted(found)

    def sweep(self, retention_days: int, max_disk_mb: int, keep_free: int = 0, busy: frozenset = frozenset()) -> int:
        """Delete recordings older than the retention and the oldest beyond the disk limit (less
        `keep_free` bytes), but those being written (`busy` names); their CDR rows say why. Returns
        the bytes the rest take."""
        files = self.files()
        limit = time.time() - retention_days * 86400
        old = [f for f in files if f[0] < limit and f[2].name not in busy]
        rest = [f for f in files if f not in old]
        self._remove([p for _m, _s, p in old], "retention")
        used = sum(size for _m, size, _p in rest)
        over = []
        for _m, size, path in [f for f in rest if f[2].name not in busy]:
            if used <= max_disk_mb * MB - keep_free:
                break
            over.append(path)
            used -= size
        self._remove(over, "disk_limit")
        return used

    def room(self, retention_days: int, max_disk_mb: int, busy: frozenset = frozenset()) -> int:
        """Bytes a new recording may take (the oldest are deleted to keep MIN_ROOM free)."""
        self.root.mkdir(mode=0o750, parents=True, exist_ok=True)
        used = self.sweep(retention_days, max_disk_mb, self.MIN_ROOM, busy)
        return max(0, max_disk_mb * MB - used)

    def _remove(self, paths: list[Path], reason: str) -> None:
        gone = []
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                log.exception("cannot delete the recording %s", path.name)
                continue
            gone.append(path.name)
        if gone:
            log.info("%d recordings deleted (%s)", len(gone), reason)
            self.cdr.mark_removed(gone, reason)
