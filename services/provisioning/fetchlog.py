"""Every provisioning request, answered or refused, in a small log: who asked, for what, what they got.

Kept in memory (the newest MAX_RECENT) and appended as JSON lines to fetches.jsonl (0600) in the
service's state folder, which is rotated to fetches.jsonl.1 past MAX_BYTES, so it stays bounded.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("officebox.provisioning")
MAX_RECENT = 500
MAX_BYTES = 512 * 1024


class FetchLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.recent: collections.deque[dict] = collections.deque(maxlen=MAX_RECENT)
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(errors="replace").splitlines()[-MAX_RECENT:]
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a power loss
            if isinstance(entry, dict):
                self.recent.append(entry)

    def record(self, client: str, path: str, status: int, transport: str, mac: str | None = None) -> None:
        entry = {"time": round(time.time(), 3), "client": client, "file": path[-120:], "status": status,
                 "transport": transport, "mac": mac}
        self.recent.append(entry)
        try:
            if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as out:
                out.write(json.dumps(entry) + "\n")
        except OSError as exc:
            log.warning("provisioning: cannot write the fetch log: %s", exc)

    def newest(self, count: int = 50) -> list[dict]:
        return list(reversed(self.recent))[:count]
