"""Usage statistics from Squid's access.log (native format), read incrementally into SQLite.

The read offset (and the file's inode, to notice a new file) is stored in the same transaction as the
counters, so every line is counted once even across crashes. Only complete lines are read.
Counters are per hour (UTC epoch hour), client and domain: requests, bytes, cache hits, misses, denied;
and per hour and signed-in login (proxy sign-in): requests, bytes, denied.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    hour INTEGER NOT NULL, client TEXT NOT NULL, domain TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0, hit_bytes INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0, denied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, client, domain)
);
CREATE TABLE IF NOT EXISTS user_usage (
    hour INTEGER NOT NULL, login TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, denied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, login)
);
CREATE TABLE IF NOT EXISTS log_state (path TEXT PRIMARY KEY, inode INTEGER NOT NULL, offset INTEGER NOT NULL);
"""
CHUNK = 4 * 1024 * 1024
HIT_CODES = ("HIT", "REFRESH_UNMODIFIED")


def host_of(url: str, connect: bool) -> str:
    """The host name of an absolute URL ('http://user@Host:8080/x' -> 'host') or a CONNECT target."""
    if not connect:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return ""
        url = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if url.startswith("["):
        return url[1:].split("]", 1)[0]
    return url.rsplit(":", 1)[0] if url.count(":") == 1 else url


def login_of(line: str) -> str | None:
    """The signed-in login of a native access.log line (8th field), None when nobody signed in."""
    fields = line.split(None, 8)
    login = fields[7] if len(fields) > 7 else "-"
    return None if login == "-" else login[:64].lower()


def parse_line(line: str) -> tuple[int, str, str, int, str] | None:
    """-> (hour, client, domain, bytes, kind) with kind hit|miss|denied; None if not a log line."""
    fields = line.split()
    if len(fields) < 7:
        return None
    try:
        stamp = float(fields[0])
        size = int(fields[4])
    except ValueError:
        return None
    code = fields[3].split("/")[0]
    method, url = fields[5], fields[6]
    domain = host_of(url, method == "CONNECT")
    kind = "denied" if "DENIED" in code else "hit" if any(h in code for h in HIT_CODES) else "miss"
    return int(stamp // 3600) * 3600, fields[2][:64], (domain or "-")[:253].lower(), max(size, 0), kind


class UsageStats:
    def __init__(self, db_path: Path, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self.skipped = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def collect(self, path: Path | None = None) -> int:
        """Count the lines added since the last call; returns how many were counted.

        The position is kept per inode: after a rotation, `collect(rotated_file)` reads the old file's
        tail, then `collect()` starts the new file from its beginning."""
        path = Path(path or self.log_path)
        with self._lock:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return 0
            try:
                st = os.fstat(fd)
                row = self._db.execute("SELECT inode, offset FROM log_state WHERE path=?",
                                       (str(self.log_path),)).fetchone()
                if row and row[0] != st.st_ino and path != self.log_path:
                    return 0  # a rotated file we already finished
                offset = row[1] if row and row[0] == st.st_ino and row[1] <= st.st_size else 0
                total = 0
                while offset < st.st_size:
                    data = os.pread(fd, CHUNK, offset)
                    end = data.rfind(b"\n")
                    if end < 0:
                        break  # an incomplete last line: next time
                    total += self._ingest(data[:end + 1].decode("utf-8", "replace"), st.st_ino, offset + end + 1)
                    offset += end + 1
                return total
            finally:
                os.close(fd)

    def _ingest(self, text: str, inode: int, new_offset: int) -> int:
        counts: dict[tuple[int, str, str], list[int]] = {}
        per_login: dict[tuple[int, str], list[int]] = {}
        for line in text.splitlines():
            parsed = parse_line(line)
            if parsed is None:
                self.skipped += 1
                continue
            hour, client, domain, size, kind = parsed
            login = login_of(line)
            if login is not None:
                u = per_login.setdefault((hour, login), [0, 0, 0])
                u[0] += 1
                u[1] += size
                u[2] += kind == "denied"
            c = counts.setdefault((hour, client, domain), [0, 0, 0, 0, 0, 0])
            c[0] += 1
            c[1] += size
            c[2] += kind == "hit"
            c[3] += size if kind == "hit" else 0
            c[4] += kind == "miss"
            c[5] += kind == "denied"
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (hour, client, domain) DO UPDATE SET "
                "requests=requests+excluded.requests, bytes=bytes+excluded.bytes, hits=hits+excluded.hits, "
                "hit_bytes=hit_bytes+excluded.hit_bytes, misses=misses+excluded.misses, denied=denied+excluded.denied",
                [(*key, *c) for key, c in counts.items()])
            db.executemany(
                "INSERT INTO user_usage VALUES (?,?,?,?,?) ON CONFLICT (hour, login) DO UPDATE SET "
                "requests=requests+excluded.requests, bytes=bytes+excluded.bytes, denied=denied+excluded.denied",
                [(*key, *u) for key, u in per_login.items()])
            db.execute("INSERT OR REPLACE INTO log_state VALUES (?,?,?)", (str(self.log_path), inode, new_offset))
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        return sum(c[0] for c in counts.values())

    def prune(self, keep_days: int) -> None:
        with self._lock:
            for table in ("usage", "user_usage"):
                self._db.execute(f"DELETE FROM {table} WHERE hour < ?", (time.time() - keep_days * 86400,))

    # -- queries for the web pages ----------------------------------------------------------------
    def _query(self, sql: str, args: tuple) -> list[dict]:
        with self._lock:
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def top_sites(self, since: float, limit: int = 10) -> list[dict]:
        return self._query("SELECT domain, SUM(requests) AS requests, SUM(bytes) AS bytes, SUM(denied) AS denied "
                           "FROM usage WHERE hour >= ? GROUP BY domain ORDER BY bytes DESC, requests DESC LIMIT ?",
                           (int(since) // 3600 * 3600, limit))

    def top_clients(self, since: float, limit: int = 10) -> list[dict]:
        return self._query("SELECT client, SUM(requests) AS requests, SUM(bytes) AS bytes, SUM(denied) AS denied "
                           "FROM usage WHERE hour >= ? GROUP BY client ORDER BY bytes DESC, requests DESC LIMIT ?",
                           (int(since) // 3600 * 3600, limit))

    def top_users(self, since: float, limit: int = 10) -> list[dict]:
        """Signed-in logins (proxy sign-in) by bytes."""
        return self._query("SELECT login, SUM(requests) AS requests, SUM(bytes) AS bytes, SUM(denied) AS denied "
                           "FROM user_usage WHERE hour >= ? GROUP BY login ORDER BY bytes DESC, requests DESC "
                           "LIMIT ?", (int(since) // 3600 * 3600, limit))

    def per_hour(self, since: float) -> list[dict]:
        return self._query("SELECT hour, SUM(requests) AS requests, SUM(bytes) AS bytes, SUM(hits) AS hits "
                           "FROM usage WHERE hour >= ? GROUP BY hour ORDER BY hour", (int(since) // 3600 * 3600,))

    def cache(self, since: float) -> dict:
        rows = self._query("SELECT COALESCE(SUM(hits),0) AS hits, COALESCE(SUM(misses),0) AS misses, "
                           "COALESCE(SUM(hit_bytes),0) AS hit_bytes, COALESCE(SUM(bytes),0) AS bytes, "
                           "COALESCE(SUM(denied),0) AS denied, COALESCE(SUM(requests),0) AS requests "
                           "FROM usage WHERE hour >= ?", (int(since) // 3600 * 3600,))
        row = rows[0]
        served = row["hits"] + row["misses"]
        row["hit_ratio"] = row["hits"] / served if served else 0.0
        row["byte_hit_ratio"] = row["hit_bytes"] / row["bytes"] if row["bytes"] else 0.0
        return row
