"""The `dns` configuration section: local records, upstream resolvers, cache, who may recurse."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.schema import Section
from appliance.service import ServiceConfig
from appliance.text import SafeText

NAME_PATTERN = r"^(@|[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?)$"


def parse_upstream(value: str) -> tuple[str, int]:
    """'192.0.2.53' or '192.0.2.53:5300' -> (address, port)."""
    host, _, port = str(value).partition(":")
    ipaddress.IPv4Address(host)
    number = int(port) if port else 53
    if not 1 <= number <= 65535:
        raise ValueError("port out of range")
    return host, number


class Record(Section):
    name: str = Field(pattern=NAME_PATTERN, description="relative to the LAN domain, '@' for the domain, or a "
                                                         "full name ending with '.'")
    type: Literal["A", "AAAA", "CNAME", "MX", "TXT", "SRV"] = "A"
    value: SafeText = Field(min_length=1, max_length=255)
    ttl: int = Field(default=300, ge=0, le=604800)

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, value: str) -> str:
        return str(value).strip().lower()

    @model_validator(mode="after")
    def _value_fits_type(self) -> "Record":
        value = self.value.strip()
        try:
            if self.type == "A":
                ipaddress.IPv4Address(value)
            elif self.type == "AAAA":
                ipaddress.IPv6Address(value)
            elif self.type == "CNAME" and not re.fullmatch(NAME_PATTERN, value.lower()):
                raise ValueError
            elif self.type == "MX" and not re.fullmatch(r"\d{1,5} +\S+", value):
                raise ValueError
            elif self.type == "SRV" and not re.fullmatch(r"\d{1,5} +\d{1,5} +\d{1,5} +\S+", value):
                raise ValueError
        except ValueError:
            examples = {"A": "192.168.1.10", "AAAA": "2001:db8::10", "CNAME": "server", "MX": "10 mail",
                        "SRV": "10 5 5060 pbx", "TXT": "text"}
            raise ValueError(f"{value!r} is not a valid {self.type} value (e.g. {examples[self.type]})") from None
        return self


class DnsConfig(ServiceConfig):
    upstreams: list[str] = Field(default_factory=list, description="ip or ip:port; empty: the WAN's resolvers")
    records: list[Record] = Field(default_factory=list)
    local_ttl: int = Field(default=60, ge=0, le=86400, description="TTL of the box's and DHCP clients' names")
    cache_size: int = Field(default=20000, ge=0, le=1_000_000)
    max_cache_ttl: int = Field(default=86400, ge=0, le=604800)
    negative_ttl: int = Field(default=300, ge=0, le=86400, description="upper bound for cached NXDOMAIN/NODATA")
    allowed_networks: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="besides the LAN networks and loopback (e.g. the VPN pool)")
    port: int = Field(default=53, ge=1, le=65535)
    lab_port: int = Field(default=5353, ge=0, le=65535, description="lab mode, on 127.0.0.1 (0: any free port)")

    @field_validator("upstreams")
    @classmethod
    def _upstreams(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                parse_upstream(item)
            except ValueError:
                raise ValueError(f"{item!r} is not an IPv4 address (optionally :port)") from None
        return value
