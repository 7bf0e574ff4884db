"""The `proxy` configuration section: Squid ports, cache, access rules per group of users, block lists."""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from appliance.schema import Section
from appliance.service import ServiceConfig

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DOMAIN = re.compile(r"^(\*\.|\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def clean_domains(values: list[str]) -> list[str]:
    out = []
    for value in values:
        value = value.strip().lower().removeprefix("*.").lstrip(".")
        if not value:
            continue
        if len(value) > 253 or not DOMAIN.match(value):
            raise ValueError(f"{value!r} is not a domain name")
        if value not in out:
            out.append(value)
    return out


def clean_patterns(values: list[str]) -> list[str]:
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if any(c in value for c in "\n\r\t ") or len(value) > 300:
            raise ValueError(f"{value!r}: a URL pattern is one regular expression without spaces")
        if '"' in value or "#" in value:  # Squid reads "..." as a file name; URLs never carry a #fragment
            raise ValueError(f"{value!r}: a URL pattern cannot contain \" or #")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
        out.append(value)
    return out


Domains = Annotated[list[str], AfterValidator(clean_domains)]
UrlPatterns = Annotated[list[str], AfterValidator(clean_patterns)]


class TimeWindow(Section):
    days: list[Day] = Field(default_factory=lambda: list(DAYS[:5]), min_length=1)
    start: str = Field(default="08:00", pattern=HHMM)
    end: str = Field(default="18:00", pattern=HHMM)

    @model_validator(mode="after")
    def _order(self) -> "TimeWindow":
        if self.start >= self.end:
            raise ValueError("the window must end after it starts (same day)")
        return self


class AccessGroup(Section):
    """A group of users, recognised by source address or by the login they signed in with (first
    matching group wins)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    sources: list[ipaddress.IPv4Network] = Field(default_factory=list, description="client networks or addresses")
    users: list[str] = Field(default_factory=list, description="logins (needs sign-in)")
    web_access: bool = Field(default=True, description="False: no web access at all for this group")
    blocked_domains: Domains = Field(default_factory=list, description="also blocks their subdomains")
    blocked_patterns: UrlPatterns = Field(default_factory=list, description="regular expressions on the URL")
    allowed_hours: list[TimeWindow] = Field(default_factory=list, description="empty: at any time")

    @field_validator("users")
    @classmethod
    def _logins(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(u.strip().lower() for u in value if u.strip()))

    @model_validator(mode="after")
    def _members(self) -> "AccessGroup":
        if not self.sources and not self.users:
            raise ValueError(f"group {self.name}: give its members (addresses or logins)")
        return self


class HostEntry(Section):
    name: str = Field(pattern=r"^[a-z0-9.-]{1,253}$")
    address: ipaddress.IPv4Address


class ProxyConfig(ServiceConfig):
    port: int = Field(default=3128, ge=1, le=65535, description="explicit proxy port")
    intercept_port: int = Field(default=3129, ge=1, le=65535, description="transparent mode: port 80 lands here")
    lab_port: int = Field(default=13128, ge=1024, le=65535)
    lab_intercept_port: int = Field(default=13129, ge=1024, le=65535)
    transparent: bool = Field(default=False, description="redirect the LAN's web traffic (port 80) to the proxy")
    sign_in: bool = Field(default=False, description="explicit proxy: staff sign in with their OfficeBox login")
    sign_in_password: Literal["proxy", "login"] = Field(
        default="proxy", description="proxy: a separate proxy password per user (Basic auth sends it in clear "
                                     "on the LAN, so never the main one); login: the user's main password")
    extra_networks: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="allowed clients besides the LAN and voice networks (e.g. VPN pools)")
    blocked_domains: Domains = Field(default_factory=list, description="blocked for everyone")
    blocked_patterns: UrlPatterns = Field(default_factory=list, description="URL regular expressions, for everyone")
    allowed_hours: list[TimeWindow] = Field(default_factory=list, description="everyone not in a group; empty: always")
    groups: list[AccessGroup] = Field(default_factory=list)
    cache_mb: int = Field(default=2000, ge=0, le=1_000_000, description="disk cache; 0: memory only")
    memory_cache_mb: int = Field(default=64, ge=1, le=65536)
    max_object_mb: int = Field(default=64, ge=1, le=65536)
    dns_servers: list[ipaddress.IPv4Address] = Field(
        default_factory=list, description="empty: the WAN's DNS servers, else the system resolver")
    hosts: list[HostEntry] = Field(default_factory=list, description="names the proxy resolves itself")
    ftp: bool = Field(default=True, description="ftp:// URLs through the proxy")
    keep_days: int = Field(default=90, ge=1, le=3650, description="usage statistics kept this long")

    @model_validator(mode="after")
    def _checks(self) -> "ProxyConfig":
        if self.port == self.intercept_port or self.lab_port == self.lab_intercept_port:
            raise ValueError("the explicit and the intercept port must differ")
        names = [g.name for g in self.groups]
        if len(names) != len(set(names)):
            raise ValueError("two groups have the same name")
        if not self.sign_in and any(g.users for g in self.groups):
            raise ValueError("groups of users by login need sign-in switched on")
        return self
