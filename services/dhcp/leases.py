"""The lease table: in memory for speed; on disk as a snapshot (leases.json, atomic rewrite) and a
journal of changes since (leases.journal, appended and fsynced per group commit), so a commit costs
what changed, not the table's size."""
from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.fsutil import atomic_write, fsync_dir, write_synced
from services.dhcp.packet import client_key

log = logging.getLogger("officebox.dhcp")
IP = ipaddress.IPv4Address
JOURNAL_MIN = 1000  # journal lines kept before the snapshot is rewritten (or the table's size, if larger)


@dataclass
class Lease:
    ip: IP
    mac: str
    network: str
    hostname: str = ""
    expires: float = 0.0  # UNIX time
    state: str = "bound"  # bound | offered | free (free keeps the last owner so it gets it back)
    client_id: str = ""  # option 61, hex; "" when the client sent none

    @property
    def key(self) -> str:
        """Who the lease belongs to (RFC 2131 4.2): the client identifier if any, else the MAC."""
        return client_key(self.client_id, self.mac)

    def active(self, now: float) -> bool:
        return self.state in ("bound", "offered") and self.expires > now


class LeaseTable:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_ip: dict[IP, Lease] = {}
        self._by_client: dict[tuple[str, str], IP] = {}  # (network, key) -> address of its newest record
        # called with (ip, network, used) when an address becomes free: used if its record stays
        self.on_vacant: Callable[[IP, str, bool], None] = lambda ip, network, used: None
        self.quarantined: dict[IP, float] = {}  # address -> until (UNIX time)
        self._changes = 0
        self._saved = 0
        self._dirty: dict[IP, None] = {}  # addresses changed since the last commit, in order
        self._journal_lines = 0
        self._lock = asyncio.Lock()
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhcp-leases")

    # -- queries ----------------------------------------------------------------------------------
    def for_client(self, network: str, key: str) -> Lease | None:
        ip = self._by_client.get((network, key))
        lease = self.by_ip.get(ip) if ip is not None else None
        return lease if lease is not None and lease.key == key else None

    def holder(self, ip: IP, now: float) -> str | None:
        """The client (Lease.key) that may use `ip` right now (None: free)."""
        lease = self.by_ip.get(ip)
        return lease.key if lease and lease.active(now) else None

    def is_quarantined(self, ip: IP, now: float) -> bool:
        until = self.quarantined.get(ip)
        return until is not None and until > now

    def bound(self, now: float) -> list[Lease]:
        leases = list(self.by_ip.values())  # one C-level copy: safe against the loop thread (web admin)
        return sorted((x for x in leases if x.state == "bound" and x.expires > now), key=lambda x: x.ip)

    # -- changes --------------------------------------------------------------------------------
    def put(self, lease: Lease) -> None:
        key = (lease.network, lease.key)
        old = self._by_client.get(key)
        if old is not None and old != lease.ip and getattr(self.by_ip.get(old), "key", None) == lease.key:
            self.forget(old)
        self.by_ip[lease.ip] = lease
        self._by_client[key] = lease.ip
        self._touch(lease.ip)

    def _touch(self, ip: IP) -> None:
        self._changes += 1
        self._dirty[ip] = None

    def forget(self, ip: IP) -> None:
        lease = self.by_ip.pop(ip, None)
        if lease is not None:
            self._touch(ip)
            if self._by_client.get((lease.network, lease.key)) == ip:
                del self._by_client[(lease.network, lease.key)]
            self.on_vacant(ip, lease.network, False)

    def free(self, ip: IP) -> Lease | None:
        lease = self.by_ip.get(ip)
        if lease is not None and lease.state != "free":
            lease.state = "free"
            self._touch(ip)
            self.on_vacant(ip, lease.network, True)
            return lease
        return None

    def quarantine(self, ip: IP, until: float) -> None:
        self.quarantined[ip] = until
        lease = self.by_ip.pop(ip, None)
        if lease is not None and self._by_client.get((lease.network, lease.key)) == ip:
            del self._by_client[(lease.network, lease.key)]
        self._touch(ip)

    def end_quarantines(self, now: float) -> list[IP]:
        """Addresses whose rest is over (the caller hands them back to their pools)."""
        over = [ip for ip, until in self.quarantined.items() if until <= now]
        for ip in over:
            del self.quarantined[ip]
            self._touch(ip)
        return over

    def expire(self, now: float) -> list[Lease]:
        gone = [item for item in self.by_ip.values() if item.state != "free" and item.expires <= now]
        for lease in gone:
            if lease.state == "offered":
                self.forget(lease.ip)
            else:
                self.free(lease.ip)
        return gone

    # -- persistence ----------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        return self.path.with_suffix(".journal")

    def load(self) -> None:
        """The snapshot (leases.json), then the journal's records on top, in order."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            log.error("lease file %s is unreadable (%s); starting empty", self.path, exc)
            data = {}
        for item in data.get("leases", []):
            self._load_lease(item)
        for ip, until in data.get("quarantined", {}).items():
            try:
                self.quarantined[IP(ip)] = float(until)
            except ValueError:
                pass
        try:
            journal = self.journal_path.read_text().splitlines()
        except FileNotFoundError:
            journal = []
        except (OSError, UnicodeDecodeError) as exc:
            log.error("lease journal %s is unreadable (%s); using the snapshot only", self.journal_path, exc)
            journal = []
        for line in journal:
            try:
                record = json.loads(line)
                ip = IP(record["ip"])
            except (ValueError, KeyError, TypeError):
                log.warning("skipping a bad lease journal line %r (cut off by a crash?)", line[:200])
                continue
            self._apply(ip, record)
        self._journal_lines = len(journal)
        self._dirty.clear()
        self._saved = self._changes

    def _load_lease(self, item) -> None:
        try:
            lease = Lease(ip=IP(item["ip"]), mac=str(item["mac"]), network=str(item["network"]),
                          hostname=str(item.get("hostname", "")), expires=float(item["expires"]),
                          state=str(item.get("state", "bound")), client_id=str(item.get("client_id", "")))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping a bad lease record %r: %s", item, exc)
            return
        if lease.state in ("bound", "free"):
            self.put(lease)

    def _apply(self, ip: IP, record: dict) -> None:
        """One journal record: the address's whole state (its lease or none, its rest or none)."""
        lease = record.get("lease")
        if lease is None:
            self.by_ip.pop(ip, None)
        elif isinstance(lease, dict):
            self._load_lease(lease)
        until = record.get("quarantined")
        if isinstance(until, (int, float)):
            self.quarantined[ip] = float(until)
        else:
            self.quarantined.pop(ip, None)

    @staticmethod
    def _lease_json(x: Lease) -> str:
        dumps = json.dumps
        return (f'{{"ip":"{x.ip}","mac":{dumps(x.mac)},"network":{dumps(x.network)},"hostname":{dumps(x.hostname)},'
                f'"expires":{x.expires:.1f},"state":"{x.state}","client_id":{dumps(x.client_id)}}}')

    def _record(self, ip: IP) -> str:
        lease = self.by_ip.get(ip)
        saved = self._lease_json(lease) if lease is not None and lease.state in ("bound", "free") else "null"
        until = self.quarantined.get(ip)
        return f'{{"ip":"{ip}","lease":{saved},"quarantined":{"null" if until is None else f"{until:.1f}"}}}'

    def _document(self) -> bytes:
        """The snapshot: one JSON document, one lease per line."""
        lines = [self._lease_json(x) for x in list(self.by_ip.values()) if x.state in ("bound", "free")]
        quarantined = json.dumps({str(ip): until for ip, until in self.quarantined.items()})
        return (f'{{"version":1,"saved":{time.time():.1f},"quarantined":{quarantined},"leases":[\n'
                + ",\n".join(lines) + "\n]}\n").encode()

    def _compact(self, document: bytes) -> None:
        atomic_write(self.path, document, mode=0o600)  # everything is in the snapshot: the journal may go
        truncate_synced(self.journal_path)

    def save_now(self) -> None:
        self._compact(self._document())
        self._dirty.clear()
        self._journal_lines = 0
        self._saved = self._changes

    async def commit(self, compact: bool = False) -> None:
        """Return once every change made before the call is on disk; concurrent callers share writes.
        Changes are appended to the journal (one line per changed address, fsynced); once it holds
        more lines than the table has leases (or `compact`), the snapshot is rewritten instead."""
        target = self._changes
        async with self._lock:
            if self._saved >= target and not compact:
                return
            changes, batch = self._changes, list(self._dirty)
            self._dirty.clear()
            loop = asyncio.get_running_loop()
            rewrite = compact or self._journal_lines + len(batch) > max(JOURNAL_MIN, len(self.by_ip))
            try:
                # one writer thread: a write whose waiter was cancelled still ends before the next begins
                if rewrite:
                    await asyncio.shield(loop.run_in_executor(self._writer, self._compact, self._document()))
                    self._journal_lines = 0
                else:
                    lines = "".join(self._record(ip) + "\n" for ip in batch).encode()
                    await asyncio.shield(loop.run_in_executor(self._writer, append_synced, self.journal_path, lines))
                    self._journal_lines += len(batch)
            except BaseException:
                self._dirty.update(dict.fromkeys(batch))  # written next time
                raise
            self._saved = changes


def append_synced(path: Path, data: bytes) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        write_synced(fd, data)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def truncate_synced(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.ftruncate(fd, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
