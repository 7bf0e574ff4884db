"""The lease table: in memory for speed, saved as one JSON file with atomic_write (group commit)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.fsutil import atomic_write

log = logging.getLogger("officebox.dhcp")
IP = ipaddress.IPv4Address


@dataclass
class Lease:
    ip: IP
    mac: str
    network: str
    hostname: str = ""
    expires: float = 0.0  # UNIX time
    state: str = "bound"  # bound | offered | free (free keeps the last owner so it gets it back)

    def active(self, now: float) -> bool:
        return self.state in ("bound", "offered") and self.expires > now


class LeaseTable:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_ip: dict[IP, Lease] = {}
        self._by_mac: dict[tuple[str, str], IP] = {}  # (network, mac) -> address of its newest record
        self.quarantined: dict[IP, float] = {}  # address -> until (UNIX time)
        self._changes = 0
        self._saved = 0
        self._lock = asyncio.Lock()
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhcp-leases")

    # -- queries ----------------------------------------------------------------------------------
    def for_mac(self, network: str, mac: str) -> Lease | None:
        ip = self._by_mac.get((network, mac))
        lease = self.by_ip.get(ip) if ip is not None else None
        return lease if lease is not None and lease.mac == mac else None

    def holder(self, ip: IP, now: float) -> str | None:
        """The MAC that may use `ip` right now (None: free)."""
        lease = self.by_ip.get(ip)
        return lease.mac if lease and lease.active(now) else None

    def is_quarantined(self, ip: IP, now: float) -> bool:
        until = self.quarantined.get(ip)
        if until is not None and until <= now:
            del self.quarantined[ip]
            return False
        return until is not None

    def bound(self, now: float) -> list[Lease]:
        leases = list(self.by_ip.values())  # one C-level copy: safe against the loop thread (web admin)
        return sorted((x for x in leases if x.state == "bound" and x.expires > now), key=lambda x: x.ip)

    # -- changes --------------------------------------------------------------------------------
    def put(self, lease: Lease) -> None:
        key = (lease.network, lease.mac)
        old = self._by_mac.get(key)
        if old is not None and old != lease.ip and getattr(self.by_ip.get(old), "mac", None) == lease.mac:
            del self.by_ip[old]
        self.by_ip[lease.ip] = lease
        self._by_mac[key] = lease.ip
        self._changes += 1

    def forget(self, ip: IP) -> None:
        if self.by_ip.pop(ip, None) is not None:
            self._changes += 1

    def free(self, ip: IP) -> Lease | None:
        lease = self.by_ip.get(ip)
        if lease is not None and lease.state != "free":
            lease.state = "free"
            self._changes += 1
            return lease
        return None

    def quarantine(self, ip: IP, until: float) -> None:
        self.quarantined[ip] = until
        self.by_ip.pop(ip, None)
        self._changes += 1

    def expire(self, now: float) -> list[Lease]:
        gone = [item for item in self.by_ip.values() if item.state != "free" and item.expires <= now]
        for lease in gone:
            if lease.state == "offered":
                del self.by_ip[lease.ip]
            else:
                lease.state = "free"
                self._changes += 1
        return gone

    # -- persistence ----------------------------------------------------------------------------
    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("lease file %s is unreadable (%s); starting empty", self.path, exc)
            return
        for item in data.get("leases", []):
            try:
                lease = Lease(ip=IP(item["ip"]), mac=str(item["mac"]), network=str(item["network"]),
                              hostname=str(item.get("hostname", "")), expires=float(item["expires"]),
                              state=str(item.get("state", "bound")))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipping a bad lease record %r: %s", item, exc)
                continue
            if lease.state in ("bound", "free"):
                self.put(lease)
        for ip, until in data.get("quarantined", {}).items():
            try:
                self.quarantined[IP(ip)] = float(until)
            except ValueError:
                pass

    def _document(self) -> bytes:
        """The file: one JSON document, one lease per line (built by hand: this runs for every commit)."""
        dumps = json.dumps
        lines = [f'{{"ip":"{x.ip}","mac":{dumps(x.mac)},"network":{dumps(x.network)},"hostname":{dumps(x.hostname)},'
                 f'"expires":{x.expires:.1f},"state":"{x.state}"}}'
                 for x in list(self.by_ip.values()) if x.state in ("bound", "free")]
        quarantined = dumps({str(ip): until for ip, until in self.quarantined.items()})
        return (f'{{"version":1,"saved":{time.time():.1f},"quarantined":{quarantined},"leases":[\n'
                + ",\n".join(lines) + "\n]}\n").encode()

    def save_now(self) -> None:
        atomic_write(self.path, self._document(), mode=0o600)
        self._saved = self._changes

    async def commit(self) -> None:
        """Return once every change made before the call is on disk; concurrent callers share writes."""
        target = self._changes
        async with self._lock:
            if self._saved >= target:
                return
            changes, document = self._changes, self._document()
            # one writer thread: a write whose waiter was cancelled still ends before the next begins
            write = asyncio.get_running_loop().run_in_executor(self._writer, atomic_write, self.path, document, 0o600)
            await asyncio.shield(write)
            self._saved = changes
