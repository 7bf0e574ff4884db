"""The `firewall` configuration section: zone policies, rules, port forwards, PBX fallbacks, confirm."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.schema import Section
from appliance.service import ServiceConfig

NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$"
IFNAME = r"^[A-Za-z0-9_.-]{1,15}\*?$"  # a trailing * matches every interface with that prefix
PORTS = re.compile(r"^\d{1,5}(-\d{1,5})?$")
Zone = Literal["lan", "voice", "vpn", "wan"]
InsideZone = Literal["lan", "voice", "vpn"]


def parse_ports(text: str) -> list[tuple[int, int]]:
    """'80,443,8000-8100' -> [(80, 80), (443, 443), (8000, 8100)]; raises ValueError."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not PORTS.match(part):
            raise ValueError(f"{part!r} is not a port or a port range like 8000-8100")
        low, _, high = part.partition("-")
        lo, hi = int(low), int(high or low)
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"{part!r}: ports go from 1 to 65535, low to high")
        ranges.append((lo, hi))
    return ranges


class ZonePolicy(Section):
    """What an inside zone may do; anything not allowed is dropped."""

    box: bool = Field(default=True, description="may use the box's services (DNS, DHCP, proxy, PBX, admin)")
    internet: bool = Field(default=True, description="may open connections to the Internet (shared access)")
    reach: list[InsideZone] = Field(default_factory=list, description="other inside zones it may reach")


class Rule(Section):
    """A filter rule, evaluated in order before the zone policies; the first match wins."""

    name: str = Field(pattern=NAME)
    enabled: bool = True
    action: Literal["accept", "drop", "reject"] = "accept"
    source_zone: Zone | Literal["any"] = "any"
    destination: Zone | Literal["box", "any"] = "box"
    protocol: Literal["any", "tcp", "udp", "icmp"] = "tcp"
    sources: list[ipaddress.IPv4Network] = Field(default_factory=list, description="empty: any source")
    destinations: list[ipaddress.IPv4Network] = Field(default_factory=list, description="empty: any")
    ports: str = Field(default="", max_length=200, description="destination ports: 80,443,8000-8100")

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value:
            parse_ports(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        if self.ports and self.protocol not in ("tcp", "udp"):
            raise ValueError("ports need the tcp or udp protocol")
        if self.destination == "box" and self.destinations:
            raise ValueError("a rule to the box cannot have destination networks")
        return self


class PortForward(Section):
    """Connections to the WAN address on `wan_port` go to a LAN server (DNAT + forward accept)."""

    name: str = Field(pattern=NAME)
    enabled: bool = True
    protocol: Literal["tcp", "udp"] = "tcp"
    wan_port: int = Field(ge=1, le=65535)
    to_address: ipaddress.IPv4Address
    to_port: int | None = Field(default=None, ge=1, le=65535, description="empty: same as the WAN port")
    sources: list[ipaddress.IPv4Network] = Field(default_factory=list, description="empty: anyone")


class FirewallConfig(ServiceConfig):
    lan: ZonePolicy = ZonePolicy(reach=["voice", "vpn"])
    voice: ZonePolicy = ZonePolicy(internet=True, reach=[])
    vpn: ZonePolicy = ZonePolicy(reach=["lan"])
    vpn_interfaces: list[str] = Field(default_factory=list, description="VPN tunnel interfaces, e.g. wg0, ppp*")
    vpn_networks: list[ipaddress.IPv4Network] = Field(default_factory=list, description="IPsec client pools")
    masquerade: bool = Field(default=True, description="share the WAN address with the inside zones (NAT)")
    rules: list[Rule] = Field(default_factory=list)
    port_forwards: list[PortForward] = Field(default_factory=list)
    admin_from_wan: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="remote administration: sources allowed to reach the admin port")
    anti_lockout: bool = Field(default=True, description="the admin port always stays open from the LAN")
    ping_from_wan: bool = False
    new_connections_per_second: int = Field(default=50, ge=1, le=100000,
                                            description="new connections to the box per source (then dropped)")
    burst: int = Field(default=100, ge=1, le=100000)
    sip_peers: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="SIP providers allowed in from the WAN (besides PBX trunks)")
    confirm_timeout: int = Field(default=60, ge=1, le=3600, description="seconds to confirm a risky change")
    confirm_all_changes: bool = Field(default=False, description="every firewall change needs confirming")

    @field_validator("vpn_interfaces")
    @classmethod
    def _ifnames(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(IFNAME, name):
                raise ValueError(f"{name!r} is not an interface name")
        return value

    @model_validator(mode="after")
    def _checks(self) -> "FirewallConfig":
        seen = set()
        for fwd in self.port_forwards:
            key = (fwd.protocol, fwd.wan_port)
            if fwd.enabled and key in seen:
                raise ValueError(f"two port forwards use {fwd.protocol} port {fwd.wan_port}")
            seen.add(key)
        return self
