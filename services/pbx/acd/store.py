"""The call centre's records in SQLite (<state>/pbx/acd.sqlite, 0600): every agent state change with its
time, and one row per caller who entered a queue, written once when that caller's turn is over (so a
statistic is never counted twice). Writes go through one background thread (never on the PBX's loop);
reports read on the caller's thread after what was handed over is written."""
from __future__ import annotations

import datetime as dt
import logging
import queue
import sqlite3
import threading
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("officebox.pbx.acd")
OUTCOMES = ("answered", "abandoned", "timeout", "full", "no_agents", "callback", "callback_failed")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS agent_log (time REAL, agent TEXT, state TEXT, reason TEXT DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS agent_log_time ON agent_log(time)",
    """CREATE TABLE IF NOT EXISTS queue_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, caller TEXT,
       priority INTEGER, entered REAL, answered REAL, ended REAL, agent TEXT DEFAULT '', outcome TEXT,
       on_time INTEGER DEFAULT 0, callback INTEGER DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS queue_calls_entered ON queue_calls(entered)",
)
REPORT_KEYS = ("queue", "agent", "hour", "day")


@dataclass
class QueueCall:
    """A caller's turn in a queue, as it is written at its end."""
    queue: str
    caller: str
    priority: int
    entered: float
    answered: float | None = None
    ended: float | None = None
    agent: str = ""
    outcome: str = "abandoned"
    on_time: bool = False
    callback: bool = False


class AcdStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._made = False

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        if not self._made:
            with db:
                for statement in SCHEMA:
                    db.execute(statement)
            self.path.chmod(0o600)
            self._made = True
        return db

    def _put(self, sql: str, args: tuple) -> None:
        with self._start:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._write, name="pbx-acd-store", daemon=True)
                self._thread.start()
        self._jobs.put((sql, args))

    def _write(self) -> None:
        """Whatever waits is written in one transaction (one commit, not one per row)."""
        db = None
        try:
            while True:
                try:
                    jobs = [self._jobs.get(timeout=30)]
                except queue.Empty:
                    return
                while len(jobs) < 1000:
                    try:
                        jobs.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                try:
                    db = db or self._db()
                    with db:
                        for job in jobs:
                            db.execute(*job)
                except sqlite3.Error:
                    log.exception("could not write %d call centre records", len(jobs))
                finally:
                    for _ in jobs:
                        self._jobs.task_done()
        finally:
            if db is not None:
                db.close()

    def flush(self) -> None:
        self._jobs.join()

    # -- writing (from the PBX's loop: queued) -------------------------------------------------------
    def agent_state(self, when: float, agent: str, state: str, reason: str = "") -> None:
        self._put("INSERT INTO agent_log (time, agent, state, reason) VALUES (?, ?, ?, ?)",
                  (when, agent, state, reason))

    def queue_call(self, c: QueueCall) -> None:
        self._put("INSERT INTO queue_calls (queue, caller, priority, entered, answered, ended, agent, outcome, on_time,"
                  " callback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (c.queue, c.caller, c.priority, c.entered, c.answered, c.ended, c.agent, c.outcome, int(c.on_time),
                   int(c.callback)))

    # -- reading ---------------------------------------------------------------------------------------
    def agent_log(self, since: float, agent: str | None = None, limit: int = 500) -> list[dict]:
        self.flush()
        sql, args = "SELECT * FROM agent_log WHERE time >= ?", [since]
        if agent:
            sql += " AND agent = ?"
            args.append(agent)
        with self._db() as db:
            rows = db.execute(sql + " ORDER BY time DESC LIMIT ?", [*args, max(1, min(limit, 100000))])
            return [dict(r) for r in rows]

    def calls(self, since: float, until: float, queue_name: str | None = None) -> list[dict]:
        self.flush()
        sql, args = "SELECT * FROM queue_calls WHERE entered >= ? AND entered < ?", [since, until]
        if queue_name:
            sql += " AND queue = ?"
            args.append(queue_name)
        with self._db() as db:
            return [dict(r) for r in db.execute(sql + " ORDER BY entered LIMIT 200000", args)]


def report(rows: list[dict], by: str, timezone: str = "UTC") -> list[dict]:
    """Figures per queue, agent, hour or day of `rows` (AcdStore.calls): offered, answered, abandoned and
    their average wait, average speed of answer, average handling time, service level (% answered on time
    of those offered), longest wait, overflowed, callbacks made. Seconds are rounded to 0.1 s."""
    return [_figures(key, items) for key, items in _grouped(rows, by, timezone, "entered")]


def _grouped(rows: list[dict], by: str, timezone: str, start: str) -> list[tuple[str, list[dict]]]:
    if by not in REPORT_KEYS:
        raise ValueError(f"a report is by {', '.join(REPORT_KEYS)}")
    try:
        tz = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    groups: dict[str, list[dict]] = {}
    for row in rows:
        when = dt.datetime.fromtimestamp(row[start], tz)
        key = {"queue": row["queue"], "agent": row["agent"], "hour": when.strftime("%Y-%m-%d %H:00"),
               "day": when.strftime("%Y-%m-%d")}[by]
        groups.setdefault(key, []).append(row)
    return sorted(groups.items())


def chat_report(rows: list[dict], by: str, timezone: str = "UTC") -> list[dict]:
    """Chat figures per queue, agent, hour or day of `rows` (chat.py TranscriptStore.rows: closed chats):
    offered, answered (an agent accepted it), abandoned (the visitor left before an answer), average wait
    before the answer and average handling time (answer to close), seconds rounded to 0.1 s."""
    out = []
    for key, items in _grouped(rows, by, timezone, "started"):
        answered = [r for r in items if r["agent"]]
        timed = [r for r in answered if r["answered"] is not None]  # chats written before times were kept: none
        out.append({"key": key, "offered": len(items), "answered": len(answered),
                    "abandoned": sum(1 for r in items if not r["agent"] and r["closed_by"] == "visitor"),
                    "wait": _mean([r["answered"] - r["started"] for r in timed]),
                    "handle": _mean([r["ended"] - r["answered"] for r in timed if r["ended"]])})
    return out


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def _figures(key: str, rows: list[dict]) -> dict:
    answered = [r for r in rows if r["answered"] is not None]
    abandoned = [r for r in rows if r["outcome"] == "abandoned"]
    waits = [(r["answered"] or r["ended"] or r["entered"]) - r["entered"] for r in rows]
    talk = [r["ended"] - r["answered"] for r in answered if r["ended"]]

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 1) if values else 0.0
    return {"key": key, "offered": len(rows), "answered": len(answered), "abandoned": len(abandoned),
            "abandoned_wait": mean([r["ended"] - r["entered"] for r in abandoned if r["ended"]]),
            "asa": mean([r["answered"] - r["entered"] for r in answered]), "aht": mean(talk),
            "service_level": round(100.0 * sum(1 for r in rows if r["on_time"]) / len(rows), 1) if rows else 0.0,
            "longest_wait": round(max(waits), 1) if waits else 0.0,
            "overflowed": sum(1 for r in rows if r["outcome"] in ("timeout", "full", "no_agents")),
            "callbacks": sum(1 for r in rows if r["callback"] and r["outcome"] in ("callback", "callback_failed"))}
