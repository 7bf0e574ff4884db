"""The WAN's DHCP lease on the appliance's event bus: how DNS (its upstream resolvers) learns it from the
network service, which runs the udhcpc client, whatever process each runs in.

    bus = wan_lease_bus(ctx)
    unsubscribe = bus.subscribe(callback)   # callback(interface, lease), lease a WanLease or None (gone)
    lease = bus.get("wan0")                  # the current lease of that interface, or None

The network service publishes the lease when it appears or changes (the udhcpc hook rewrote its lease
file) and clears it when the lease goes (deconfig), the WAN is no longer DHCP or the service stops. On the
bus this is the retained topic `network.wan`, keyed by interface, its data a plain dict (it crosses process
boundaries like every bus event). Callbacks follow appliance.bus rules (quick, never raising).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.bus import Bus, Event, appliance_bus

TOPIC = "network.wan"


@dataclass(frozen=True)
class WanLease:
    interface: str
    address: str  # "ip/prefix" as udhcpc gives it ("203.0.113.5/255.255.255.0" or "/24")
    router: str  # "" when the server sent none
    dns: tuple[str, ...]  # the resolvers offered, in order
    server: str = ""
    lease: str = ""  # seconds, as the server sent it

    def to_data(self) -> dict:
        return {"interface": self.interface, "address": self.address, "router": self.router,
                "dns": list(self.dns), "server": self.server, "lease": self.lease}

    @classmethod
    def from_data(cls, key: str, data: dict) -> WanLease:
        dns = data.get("dns") or []
        if isinstance(dns, str):
            dns = dns.split()
        return cls(str(data.get("interface") or key), str(data.get("address", "")), str(data.get("router", "")),
                   tuple(str(d) for d in dns), str(data.get("server", "")), str(data.get("lease", "")))

    @classmethod
    def from_lease_file(cls, record: dict) -> WanLease:
        """From the JSON the udhcpc hook writes (appliance/network.py DHCP_SCRIPT)."""
        return cls(str(record.get("interface", "")), str(record.get("address", "")), str(record.get("gateway", "")),
                   tuple(str(record.get("dns", "")).split()), str(record.get("server", "")),
                   str(record.get("lease", "")))


Callback = Callable[[str, "WanLease | None"], None]


class WanLeaseBus:
    """A typed view of the bus's network.wan topic."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def publish(self, lease: WanLease) -> None:
        self.bus.publish(TOPIC, lease.interface, lease.to_data(), retain=True)

    def clear(self, interface: str) -> None:
        self.bus.publish(TOPIC, interface, None, retain=True)

    def interfaces(self) -> list[str]:
        return sorted(self.bus.retained(TOPIC))

    def get(self, interface: str) -> WanLease | None:
        data = self.bus.retained(TOPIC).get(interface)
        return WanLease.from_data(interface, data) if data is not None else None

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        def on_event(event: Event) -> None:
            if event.topic == TOPIC:
                callback(event.key, WanLease.from_data(event.key, event.data) if event.data is not None else None)
        return self.bus.subscribe(TOPIC, on_event)


def wan_lease_bus(ctx) -> WanLeaseBus:
    return WanLeaseBus(appliance_bus(ctx))
