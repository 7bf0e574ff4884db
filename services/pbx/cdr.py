"""Call detail records in SQLite: one row per call (answered, missed, busy, failed, transferred...)."""
from __future__ import annotations

import csv
import io
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

log = logging.getLogger("officebox.pbx.cdr")
DISPOSITIONS = ("answered", "missed", "busy", "failed", "transferred", "rejected")
COLUMNS = ("id", "call_id", "direction", "caller", "caller_name", "dialled", "callee", "trunk", "start",
           "answer", "end", "duration", "billsec", "disposition", "status", "transferred_to", "rtp_a", "rtp_b",
           "end_reason", "cost", "recording", "recording_removed")
# columns a store from before them lacks: added, its rows stay with the column empty
ADDED = {"end_reason": "TEXT DEFAULT ''", "cost": "REAL", "recording": "TEXT DEFAULT ''",
         "recording_removed": "TEXT DEFAULT ''"}
_NAMES = [c for c in COLUMNS if c != "id"]


@dataclass
class CallRecord:
    call_id: str
    direction: str  # internal, inbound, outbound
    caller: str
    caller_name: str = ""
    dialled: str = ""
    callee: str = ""  # who finally answered (or was tried last)
    trunk: str = ""
    start: float = field(default_factory=time.time)
    answer: float | None = None
    end: float | None = None
    disposition: str = "failed"
    status: int = 0  # final SIP status seen by the caller
    transferred_to: str = ""
    rtp_a: str = ""  # "packets/lost" received from the caller side
    rtp_b: str = ""
    end_reason: str = ""  # why the box ended the call itself (rtp_timeout, media_engine_restart); empty otherwise
    recording: str = ""  # the call's recording (file name under recordings/, services/pbx/recording)
    recording_removed: str = ""  # why that file is gone: retention, disk_limit; empty while it is kept


_FIELDS = tuple(f.name for f in fields(CallRecord))
BATCH_SECONDS = 0.5  # rows wait at most this long to be written with the next ones
RETRY_SECONDS = 5.0  # the store could not be opened (locked, disk error): the writer tries again


class CdrStore:
    """Rows are written by one background thread in batches (a commit costs an fsync: never on the
    signalling loop), at most every BATCH_SECONDS: a busy writer thread would take the GIL from the
    signalling loop for every few rows. Queries first have everything handed over written.

    Nothing here touches SQLite on the caller's thread but query()/csv() (web admin threads): the
    PBX builds the store and add()s on its event loop, so the file is opened and its table made by the
    writer thread (or the first query), never by the constructor."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._hurry = threading.Event()  # a reader waits: write now
        self._ready = False
        self._preparing = threading.Lock()  # not self._lock: add() takes that one on the event loop
        self.rate: Callable[[dict], float | None] | None = None  # a row -> its cost (accounting.rater)

    def _prepare(self) -> None:
        """Create the table (and migrate a store from before) once; off the event loop."""
        with self._preparing:
            if self._ready:
                return
            self._create()
            self._ready = True

    def _create(self) -> None:
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("""CREATE TABLE IF NOT EXISTS cdr (
                id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT, direction TEXT, caller TEXT,
                caller_name TEXT, dialled TEXT, callee TEXT, trunk TEXT, start REAL, answer REAL, "end" REAL,
                duration REAL, billsec REAL, disposition TEXT, status INTEGER, transferred_to TEXT,
                rtp_a TEXT, rtp_b TEXT, end_reason TEXT DEFAULT '', cost REAL)""")
            present = {row[1] for row in db.execute("PRAGMA table_info(cdr)")}
            for column, kind in ADDED.items():
                if column not in present:  # a store from before it: its rows stay, the column empty
                    db.execute(f"ALTER TABLE cdr ADD COLUMN {column} {kind}")
            db.execute("CREATE INDEX IF NOT EXISTS cdr_start ON cdr(start)")
        self.path.chmod(0o600)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def add(self, rec: CallRecord) -> None:
        end = rec.end or time.time()
        row = {name: getattr(rec, name) for name in _FIELDS}  # asdict() without its deep copies: flat fields
        row["end"] = end
        row["duration"] = round(end - rec.start, 3)
        row["billsec"] = round(end - rec.answer, 3) if rec.answer else 0.0
        row["cost"] = self._cost(row)
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="pbx-cdr", daemon=True)
                self._writer.start()
        self._queue.put([row[n] for n in _NAMES])

    def _cost(self, row: dict) -> float | None:
        try:
            return self.rate(row) if self.rate else None
        except Exception:  # a record is never lost for its price
            log.exception("could not rate call %s", row.get("call_id"))
            return None

    def _write_loop(self) -> None:
        while True:  # the records wait in the queue meanwhile
            try:
                self._prepare()
                break
            except sqlite3.Error:
                log.exception("the call record store cannot be opened; retrying in %.0f s", RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
        db = self._connect()
        db.execute("PRAGMA synchronous=NORMAL")
        sql = (f"INSERT INTO cdr ({', '.join(chr(34) + n + chr(34) for n in _NAMES)}) "
               f"VALUES ({', '.join('?' for _ in _NAMES)})")
        try:
            while True:
                try:
                    batch = [self._queue.get(timeout=30)]
                except queue.Empty:
                    return  # idle: the thread ends, add() starts a new one when needed
                self._hurry.wait(BATCH_SECONDS)
                self._hurry.clear()
                while len(batch) < 5000:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    with db:
                        db.executemany(sql, batch)
                except sqlite3.Error:
                    log.exception("could not write %d call records", len(batch))
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            db.close()

    def flush(self) -> None:
        """Wait until every record handed to add() is in the database."""
        self._hurry.set()
        self._queue.join()

    def query(self, since: float | None = None, until: float | None = None, party: str | None = None,
              disposition: str | None = None, direction: str | None = None, trunk: str | None = None,
              limit: int = 100, offset: int = 0) -> list[dict]:
        where, args = [], []
        if since is not None:
            where.append("start >= ?")
            args.append(since)
        if until is not None:
            where.append("start < ?")
            args.append(until)
        if party:
            where.append("(caller = ? OR dialled = ? OR callee = ? OR transferred_to = ?)")
            args += [party] * 4
        for column, value in (("disposition", disposition), ("direction", direction), ("trunk", trunk)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        self._prepare()
        self.flush()
        sql = "SELECT * FROM cdr" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY start DESC, id DESC LIMIT ? OFFSET ?"
        args += [max(0, min(int(limit), 100000)), max(0, int(offset))]
        with self._connect() as db:
            return [dict(r) for r in db.execute(sql, args)]

    def recording_rows(self, names: list[str]) -> list[dict]:
        """The rows whose recording is one of `names` (kept or removed)."""
        if not names:
            return []
        self._prepare()
        self.flush()
        with self._connect() as db:
            return [dict(r) for r in db.execute(
                f"SELECT * FROM cdr WHERE recording IN ({', '.join('?' for _ in names)})", names)]

    def recordings(self, party: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        """Rows with a recording still kept, newest first; `party`: only the calls it took part in."""
        where, args = ["recording != ''", "recording_removed = ''"], []
        if party:
            where.append("(caller = ? OR dialled = ? OR callee = ? OR transferred_to = ?)")
            args += [party] * 4
        self._prepare()
        self.flush()
        with self._connect() as db:
            return [dict(r) for r in db.execute(
                f"SELECT * FROM cdr WHERE {' AND '.join(where)} ORDER BY start DESC, id DESC LIMIT ? OFFSET ?",
                [*args, max(0, min(int(limit), 1000)), max(0, int(offset))])]

    def mark_removed(self, names: list[str], reason: str) -> None:
        """The recordings `names` were deleted (retention, disk_limit): their rows say so."""
        if not names:
            return
        self._prepare()
        self.flush()
        with self._connect() as db:
            db.executemany("UPDATE cdr SET recording_removed = ? WHERE recording = ?", [(reason, n) for n in names])

    def csv(self, **filters) -> str:
        filters.setdefault("limit", 100000)
        return csv_text(self.query(**filters))


def csv_text(rows: list[dict], header: bool = True) -> str:
    """Rows of CdrStore.query as CSV, the header row first if asked."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_safe(row[c]) if c == "caller_name" else row[c] for c in COLUMNS])
    return out.getvalue()


def _csv_safe(value):
    """Neutralise spreadsheet formulas in free text (caller names come from the outside)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
