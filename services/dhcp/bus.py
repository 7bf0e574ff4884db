"""In-process lease notifications: how other services (DNS) learn DHCP client names without files.

One bus per appliance (keyed by the Context's data directory), shared by the services running on
the supervisor's loop:

    bus = lease_bus(ctx)
    unsubscribe = bus.subscribe(callback)   # callback(event, lease), event "bound" or "gone"
    for lease in bus.active(): ...          # the current bound leases, to seed a late subscriber

The DHCP service publishes "bound" when a lease is acknowledged (or loaded at start) and "gone"
when it is released, declined, expires or the service stops. Callbacks run synchronously on the
publisher's thread; they must be quick and must not raise (an exception is logged and ignored).
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("officebox.dhcp.bus")


@dataclass(frozen=True)
class LeaseInfo:
    ip: ipaddress.IPv4Address
    mac: str
    hostname: str  # "" when the client sent none
    expires: float  # UNIX time
    network: str  # "lan" or "voice"


Callback = Callable[[str, LeaseInfo], None]


class LeaseBus:
    def __init__(self) -> None:
        self._subscribers: list[Callback] = []
        self._active: dict[ipaddress.IPv4Address, LeaseInfo] = {}

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def active(self) -> list[LeaseInfo]:
        return list(self._active.values())

    def publish(self, event: str, lease: LeaseInfo) -> None:
        if event == "bound":
            self._active[lease.ip] = lease
        elif event == "gone":
            self._active.pop(lease.ip, None)
        else:
            raise ValueError(f"unknown lease event {event!r}")
        for callback in list(self._subscribers):
            try:
                callback(event, lease)
            except Exception:
                log.exception("lease subscriber %r failed", callback)


_buses: dict[Path, LeaseBus] = {}


def lease_bus(ctx) -> LeaseBus:
    return _buses.setdefault(Path(ctx.data_dir), LeaseBus())
