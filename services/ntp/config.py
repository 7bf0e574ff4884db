"""The `ntp` configuration section: the upstream time sources the box follows on the WAN side."""
from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from appliance.service import ServiceConfig

LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST = re.compile(rf"^({LABEL}\.)*{LABEL}$")


def clean_hosts(values: list[str]) -> list[str]:
    """Host names or IPv4 addresses, lower case, each once; anything else is refused."""
    out: list[str] = []
    for value in values:
        value = str(value).strip().lower().rstrip(".")
        try:
            value = str(ipaddress.IPv4Address(value))
        except ValueError:
            if len(value) > 253 or not HOST.match(value):
                raise ValueError(f"{value!r} is not a host name or IPv4 address") from None
        if value not in out:
            out.append(value)
    return out


class NtpConfig(ServiceConfig):
    """The box serves time to its LAN networks (and the voice VLAN); DHCP advertises it (option 42)
    while this is enabled. Without a reachable source it serves its own clock (stratum 10)."""

    pools: list[str] = Field(default_factory=lambda: ["2.debian.pool.ntp.org"], max_length=4,
                             description="NTP pool names (several servers each)")
    servers: list[str] = Field(default_factory=list, max_length=8, description="single NTP servers, name or IPv4")
    lab_port: int = Field(default=10123, ge=1024, le=65535, description="lab mode: on 127.0.0.1, no upstream")

    _hosts = field_validator("pools", "servers")(classmethod(lambda cls, v: clean_hosts(v)))
