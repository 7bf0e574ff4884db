"""The `dhcp` configuration section: pools, reservations, lease times and options."""
from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from appliance.macaddr import normalize_mac
from appliance.schema import Section
from appliance.service import ServiceConfig
from appliance.text import SafeText

HOSTNAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"




class Pool(Section):
    network: str = Field(default="lan", pattern=r"^(lan|voice)$", description="lan or voice (the voice VLAN)")
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address
    lease_time: int | None = Field(default=None, ge=60, le=31_536_000, description="seconds; default: section's")

    @model_validator(mode="after")
    def _ordered(self) -> "Pool":
        if int(self.end) < int(self.start):
            raise ValueError("the pool ends before it starts")
        return self


class Reservation(Section):
    mac: str
    ip: ipaddress.IPv4Address
    hostname: str | None = Field(default=None, pattern=HOSTNAME_PATTERN)

    _mac = field_validator("mac", mode="before")(classmethod(lambda cls, v: normalize_mac(v)))


class VendorRule(Section):
    """Clients whose vendor class (option 60) contains `match` get phone provisioning options."""

    match: SafeText = Field(min_length=1, max_length=64)
    provisioning_url: SafeText = Field(default="", max_length=200, description="option 66; empty: the box's server")
    vendor_options_hex: str = Field(default="", pattern=r"^([0-9a-fA-F]{2})*$", description="option 43, raw")


DEFAULT_VENDORS = [VendorRule(match=m) for m in ("yealink", "snom", "grandstream", "gigaset")]


class DhcpConfig(ServiceConfig):
    lease_time: int = Field(default=86400, ge=60, le=31_536_000, description="seconds")
    pools: list[Pool] = Field(default_factory=list,
                              description="a network without pools serves .100-.199 (a /24) or its upper half")
    reservations: list[Reservation] = Field(default_factory=list)
    dns_servers: list[ipaddress.IPv4Address] = Field(default_factory=list, description="empty: the box")
    ntp_servers: list[ipaddress.IPv4Address] = Field(default_factory=list,
                                                     description="empty: the box when its NTP service is on")
    routers: list[ipaddress.IPv4Address] = Field(default_factory=list, description="empty: the box")
    provisioning_url: SafeText = Field(default="", max_length=200, description="option 66 for phones; empty: auto")
    vendor_rules: list[VendorRule] = Field(default_factory=lambda: list(DEFAULT_VENDORS))
    conflict_probe: bool = Field(default=True, description="ping an address before offering it")
    probe_timeout: float = Field(default=0.5, ge=0.05, le=3.0)
    quarantine: int = Field(default=3600, ge=60, le=604800, description="seconds a declined address rests")
    offer_hold: int = Field(default=10, ge=2, le=120,
                            description="seconds an offered address waits for the client's REQUEST")
    client_messages_per_minute: int = Field(default=60, ge=6, le=60000,
                                            description="per client (MAC); more are dropped")
    port_messages_per_minute: int = Field(default=300, ge=6, le=600000,
                                          description="per switch port (relay agent option 82); more are dropped")
    lab_interface: str = Field(default="", pattern=r"^([A-Za-z0-9_.-]{1,15})?$",
                               description="lab mode: serve the LAN pool on this interface (empty: off)")

    @field_validator("reservations")
    @classmethod
    def _unique(cls, value: list[Reservation]) -> list[Reservation]:
        macs, ips = set(), set()
        for r in value:
            if r.mac in macs:
                raise ValueError(f"MAC {r.mac} is reserved twice")
            if r.ip in ips:
                raise ValueError(f"address {r.ip} is reserved twice")
            macs.add(r.mac)
            ips.add(r.ip)
        return value
