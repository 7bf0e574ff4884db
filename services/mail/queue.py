"""The outbound queue on disk: msg/<id>.eml (the message) + state/<id>.json (envelope and retry state).

Both are written tmp + fsync + rename. A message exists for the queue once its state file exists; the
SMTP client got its 250 only after that, so a message file without a state file is an interrupted
enqueue and is removed at start. Delivered: the state file is removed first, then the message file.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.fsutil import atomic_write, fsync_dir

ID_PATTERN = re.compile(r"^[0-9A-Za-z]{8,40}$")


@dataclass
class QueueEntry:
    id: str
    sender: str
    recipients: list[str]
    created: float
    size: int = 0
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    failed: list[list[str]] = field(default_factory=list)  # [recipient, reason] already bounced


class MailQueue:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.msg_dir = self.root / "msg"
        self.state_dir = self.root / "state"
        for folder in (self.msg_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def enqueue(self, sender: str, recipients: list[str], data: bytes) -> QueueEntry:
        now = time.time()
        entry = QueueEntry(id=f"{int(now * 1000):x}{secrets.token_hex(5)}".upper(), sender=sender,
                           recipients=list(recipients), created=now, size=len(data))
        atomic_write(self.msg_dir / f"{entry.id}.eml", data, mode=0o600)
        self.save(entry)
        return entry

    def save(self, entry: QueueEntry) -> None:
        atomic_write(self.state_dir / f"{entry.id}.json", json.dumps(asdict(entry)), mode=0o600)

    def get(self, qid: str) -> QueueEntry | None:
        if not ID_PATTERN.match(qid):
            return None
        try:
            return QueueEntry(**json.loads((self.state_dir / f"{qid}.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def entries(self) -> list[QueueEntry]:
        found = []
        for path in self.state_dir.glob("*.json"):
            entry = self.get(path.stem)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.created)

    def content(self, qid: str) -> bytes:
        return (self.msg_dir / f"{qid}.eml").read_bytes()

    def finish(self, qid: str) -> None:
        """Forget a message (delivered, bounced or deleted): state first, so a crash leaves no ghost."""
        try:
            (self.state_dir / f"{qid}.json").unlink()
            fsync_dir(self.state_dir)
        except FileNotFoundError:
            pass
        try:
            (self.msg_dir / f"{qid}.eml").unlink()
        except FileNotFoundError:
            pass

    def recover(self) -> int:
        """After a crash: drop half-written temporaries and messages whose enqueue never completed."""
        removed = 0
        for folder in (self.msg_dir, self.state_dir):
            for path in folder.iterdir():
                if path.name.startswith("."):
                    path.unlink(missing_ok=True)
        for path in self.msg_dir.glob("*.eml"):
            if not (self.state_dir / f"{path.stem}.json").exists():
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.state_dir.glob("*.json"):
            if not (self.msg_dir / f"{path.stem}.eml").exists():
                os.unlink(path)  # cannot be sent: the message itself is gone
                removed += 1
        return removed
