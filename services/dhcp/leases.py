"""The lease table: in memory for speed, saved as one JSON file with atomic_write (group commit)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import time
from collections.abc import Callable
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
    client_id: str = ""  # option 61, hex; "" when the client sent none

    @property
    def key(self) -> str:
        """Who the lease belongs to (RFC 2131 4.2): the client identifier if any, else the MAC."""
        return client_key(self.client_id, self.mac)

    def active(self, now: float) -> bool:
        return self.state in ("bound", "offered") and self.expires > now


def client_key(client_id: str, mac: str) -> str:
    return f"id:{client_id}" if client_id else mac


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
        self._changes += 1

    def forget(self, ip: IP) -> None:
        lease = self.by_ip.pop(ip, None)
        if lease is not None:
            self._changes += 1
            if self._by_client.get((lease.network, lease.key)) == ip:
                del self._by_client[(lease.network, lease.key)]
            self.on_vacant(ip, lease.network, False)

    def free(self, ip: IP) -> Lease | None:
        lease = self.by_ip.get(ip)
        if lease is not None and lease.state != "free":
            lease.state = "free"
            self._changes += 1
            self.on_vacant(ip, lease.network, True)
            return lease
        return None

    def quarantine(self, ip: IP, until: float) -> None:
        self.quarantined[ip] = until
        lease = self.by_ip.pop(ip, None)
        if lease is not None and self._by_client.get((lease.network, lease.key)) == ip:
            del self._by_client[(lease.network, lease.key)]
        self._changes += 1

    def end_quarantines(self, now: float) -> list[IP]:
        """Addresses whose rest is over (the caller hands them back to their pools)."""
        over = [ip for ip, until in self.quarantined.items() if until <= now]
        for ip in over:
            del self.quarantined[ip]
            self._changes += 1
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
                              state=str(item.get("state", "bound")), client_id=str(item.get("client_id", "")))
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
                 f'"expires":{x.expires:.1f},"state":"{x.state}","client_id":{dumps(x.client_id)}}}'
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
