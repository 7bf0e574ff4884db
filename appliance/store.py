"""The validated configuration store: every change a numbered revision in SQLite (WAL).

A revision row is written `pending` before anything is touched and marked `applied` (and made current)
in a single transaction once every service took it; a failed or interrupted apply leaves the previous
revision current, so the box always comes back on the old or the new revision, never a mix.

Compare-and-swap: begin() and commit() take the revision the change was built on (`base`) and refuse
with ChangedMeanwhile when another writer (another process, another admin) made a different revision
current in between: no write ever silently replaces one it did not see.
"""
from __future__ import annotations

import difflib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from appliance import schema
from appliance.service import ApplyError

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    author TEXT NOT NULL,
    summary TEXT NOT NULL,
    document TEXT NOT NULL,
    diff TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'failed')),
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Revision:
    id: int
    created: float
    author: str
    summary: str
    document: dict
    diff: str
    state: str
    error: str = ""

    @property
    def config(self) -> schema.CoreConfig:
        return schema.parse(self.document)


def document_text(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def diff_documents(old: dict | None, new: dict, old_label: str = "before", new_label: str = "after") -> str:
    """A unified diff of two documents with secrets masked."""
    old_lines = document_text(schema.mask_secrets(old)).splitlines() if old is not None else []
    new_lines = document_text(schema.mask_secrets(new)).splitlines()
    return "\n".join(difflib.unified_diff(old_lines, new_lines, old_label, new_label, lineterm="", n=2))


UNCHECKED = -1  # begin/commit without a base: the caller does not compare-and-swap


class ChangedMeanwhile(ApplyError):
    """The configuration changed after the change was built: `base` -> `current`, with `diff` (masked)."""

    def __init__(self, base: int | None, current: Revision | None, diff: str, paths: list[str] = ()) -> None:
        self.base, self.current, self.diff, self.paths = base, current, diff, list(paths)
        who = f"revision #{current.id} by {current.author} ({current.summary})" if current else "another change"
        where = f" (both changed {', '.join(self.paths)})" if self.paths else ""
        super().__init__(f"the configuration was changed meanwhile: {who}{where}; nothing was saved. "
                         f"Here is the difference since revision #{base}:\n{diff or '(no difference)'}")


class ConfigStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        new = not self.path.exists()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        if new:
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA_SQL)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ------------------------------------------------------------------------------
    def current_id(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='current'").fetchone()
        return int(row[0]) if row else None

    def current(self) -> Revision | None:
        rev_id = self.current_id()
        return self.revision(rev_id) if rev_id is not None else None

    def revision(self, rev_id: int) -> Revision | None:
        row = self._db.execute(
            "SELECT id, created, author, summary, document, diff, state, error FROM revisions WHERE id=?",
            (rev_id,),
        ).fetchone()
        return self._row(row) if row else None

    def history(self, limit: int = 100, offset: int = 0) -> list[Revision]:
        rows = self._db.execute(
            "SELECT id, created, author, summary, document, diff, state, error FROM revisions "
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [self._row(r) for r in rows]

    def pending(self) -> list[Revision]:
        rows = self._db.execute(
            "SELECT id, created, author, summary, document, diff, state, error FROM revisions "
            "WHERE state='pending' ORDER BY id"
        ).fetchall()
        return [self._row(r) for r in rows]

    @staticmethod
    def _row(row: tuple) -> Revision:
        return Revision(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])

    # -- writing ------------------------------------------------------------------------------
    def changed_meanwhile(self, base: int | None, paths: list[str] = ()) -> ChangedMeanwhile:
        """The error for a change built on `base` while another revision is current now."""
        old, current = (self.revision(base) if base is not None else None), self.current()
        diff = diff_documents(old.document if old else None, current.document if current else {},
                              f"#{base}" if old else "empty", f"#{current.id}" if current else "empty")
        return ChangedMeanwhile(base, current, diff, paths)

    def _check_base(self, base: int | None) -> None:
        if base != UNCHECKED and self.current_id() != base:
            raise self.changed_meanwhile(base)

    def begin(self, document: dict, author: str, summary: str, base: int | None = UNCHECKED) -> Revision:
        """Record a candidate revision as pending (durable before any file is touched); with `base`,
        only if that revision (None: none yet) is still the current one."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._check_base(base)
                current = self.current()
                diff = diff_documents(current.document if current else None, document,
                                      f"#{current.id}" if current else "empty", "new")
                cur = self._db.execute(
                    "INSERT INTO revisions (created, author, summary, document, diff, state) "
                    "VALUES (?, ?, ?, ?, ?, 'pending')",
                    (time.time(), author, summary, json.dumps(document, sort_keys=True), diff),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self.revision(cur.lastrowid)

    def commit(self, rev_id: int, base: int | None = UNCHECKED) -> None:
        """Make `rev_id` applied and current; with `base`, only if that is still the current one."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._check_base(base)
                self._db.execute("UPDATE revisions SET state='applied' WHERE id=?", (rev_id,))
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('current', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(rev_id),),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def fail(self, rev_id: int, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE revisions SET state='failed', error=? WHERE id=?", (error[:4000], rev_id))

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default
