"""DHCP leases on the appliance's event bus: how DNS (client names) and provisioning (which address a
phone's MAC holds) learn of them without importing the DHCP service.

    bus = lease_bus(ctx)
    unsubscribe = bus.subscribe(callback)   # callback(event, lease), event "bound" or "gone"
    for lease in bus.active(): ...          # the current bound leases, to seed a late subscriber

The DHCP service publishes "bound" when a lease is acknowledged (or loaded at start) and "gone" when it
is released, declined, expires or the service stops. On the bus this is the retained topic
`dhcp.lease`, keyed by address (so it stays as large as the pools), its data a plain dict: it crosses
process boundaries like every bus event. Callbacks follow appliance.bus rules (quick, never raising).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from appliance.bus import Bus, Event, appliance_bus

TOPIC = "dhcp.lease"


@dataclass(frozen=True)
class LeaseInfo:
    ip: ipaddress.IPv4Address
    mac: str
    hostname: str  # "" when the client sent none
    expires: float  # UNIX time
    network: str  # "lan" or "voice"

    def to_data(self, state: str) -> dict:
        return {"state": state, "mac": self.mac, "hostname": self.hostname, "expires": self.expires,
                "network": self.network}

    @classmethod
    def from_event(cls, key: str, data: dict) -> LeaseInfo:
        return cls(ipaddress.IPv4Address(key), str(data["mac"]), str(data.get("hostname", "")),
                   float(data.get("expires", 0)), str(data.get("network", "lan")))


Callback = Callable[[str, LeaseInfo], None]


class LeaseBus:
    """A typed view of the bus's dhcp.lease topic."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def publish(self, event: str, lease: LeaseInfo) -> None:
        if event not in ("bound", "gone"):
            raise ValueError(f"unknown lease event {event!r}")
        self.bus.publish(TOPIC, str(lease.ip), lease.to_data(event), retain=True)

    def active(self) -> list[LeaseInfo]:
        return [LeaseInfo.from_event(ip, data) for ip, data in self.bus.retained(TOPIC).items()
                if data.get("state") == "bound"]

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        def on_event(event: Event) -> None:
            if event.topic == TOPIC and event.data is not None:
                callback(str(event.data.get("state")), LeaseInfo.from_event(event.key, event.data))
        return self.bus.subscribe(TOPIC, on_event)


def lease_bus(ctx) -> LeaseBus:
    return LeaseBus(appliance_bus(ctx))
