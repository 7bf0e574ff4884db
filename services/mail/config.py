"""The mail section of the configuration: domains, aliases and lists, smarthost, ports, limits."""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from appliance.schema import Section
from appliance.service import ServiceConfig
from appliance.text import SafeText

DOMAIN_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}$"
LOCAL_PART_PATTERN = r"^[a-z0-9][a-z0-9._+-]{0,63}$"
LOGIN = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]
MEGABYTES = Annotated[int, Field(ge=0, le=10_000_000)]
TARGET_PATTERN = r"^([a-z][a-z0-9._-]{1,31}|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})$"

class Alias(Section):
    """`name`@<every local domain> delivers to each target: a login, or any address (local or not).

    One target makes an alias; several make a distribution list."""

    name: str = Field(pattern=LOCAL_PART_PATTERN, description="local part, e.g. sales")
    targets: list[str] = Field(min_length=1, max_length=500)
    description: SafeText = Field(default="", max_length=200)

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:

        cleaned = []
        for target in value:
            target = target.strip()
            if not re.match(TARGET_PATTERN, target):
                raise ValueError(f"{target!r} is neither a login nor an e-mail address")
            if target not in cleaned:
                cleaned.append(target)
        return cleaned

class Smarthost(Section):
    """The carrier's relay every outbound message goes through. Empty host: no outbound mail."""

    host: str = Field(default="", pattern=r"^([A-Za-z0-9.-]{1,253})?$")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: SafeText = Field(default="", max_length=200)
    password: SafeText = Field(default="", max_length=200)
    verify_certificate: bool = True

class MailConfig(ServiceConfig):
    extra_domains: list[str] = Field(default_factory=list, description="domains received besides system.mail_domain")
    aliases: list[Alias] = Field(default_factory=list)
    max_message_size: int = Field(default=25 * 1024 * 1024, ge=10_000, le=200 * 1024 * 1024)
    relay_from_lan: bool = Field(default=False, description="every LAN client may send out without logging in")
    relay_networks: list[ipaddress.IPv4Network] = Field(default_factory=list, description="e.g. the VPN pool")
    relay_devices: list[ipaddress.IPv4Address] = Field(
        default_factory=list, max_length=200,
        description="printers, scanners... that may send to other domains without logging in")
    max_connections: int = Field(default=100, ge=1, le=10_000, description="per listener (SMTP, IMAP...)")
    max_connections_per_ip: int = Field(default=20, ge=1, le=10_000, description="per listener and address")
    auth_failures_per_ip: int = Field(default=10, ge=1, le=100, description="then that address waits")
    auth_failures_per_login: int = Field(default=20, ge=1, le=100, description="then that login waits")
    auth_block_seconds: int = Field(default=600, ge=1, le=86400, description="window of the two counts above")
    quota_mb: int = Field(default=2048, ge=0, le=10_000_000, description="mailbox size per user in MB; 0: no limit")
    user_quota_mb: dict[LOGIN, MEGABYTES] = Field(default_factory=dict, max_length=10_000,
                                          description="login -> quota in MB for users who differ from quota_mb")
    smarthost: Smarthost = Smarthost()
    retry_initial_seconds: int = Field(default=300, ge=1, le=86400)
    retry_max_seconds: int = Field(default=3600, ge=1, le=86400)
    queue_lifetime_seconds: int = Field(default=5 * 86400, ge=1, le=30 * 86400, description="then bounce")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    submission_port: int = Field(default=587, ge=1, le=65535)
    smtps_port: int = Field(default=465, ge=1, le=65535)
    pop3_port: int = Field(default=110, ge=1, le=65535)
    pop3s_port: int = Field(default=995, ge=1, le=65535)
    imap_port: int = Field(default=143, ge=1, le=65535)
    imaps_port: int = Field(default=993, ge=1, le=65535)
    managesieve_port: int = Field(default=4190, ge=1, le=65535)
    # lab mode (127.0.0.1); for SMTP, 0 lets the system pick a free port (tests)
    lab_smtp_port: int = Field(default=2525, ge=0, le=65535)
    lab_submission_port: int = Field(default=2587, ge=0, le=65535)
    lab_smtps_port: int = Field(default=2465, ge=0, le=65535)
    lab_pop3_port: int = Field(default=2110, ge=0, le=65535)
    lab_pop3s_port: int = Field(default=2995, ge=0, le=65535)
    lab_imap_port: int = Field(default=2143, ge=0, le=65535)
    lab_imaps_port: int = Field(default=2993, ge=0, le=65535)
    lab_managesieve_port: int = Field(default=24190, ge=0, le=65535)

    @field_validator("extra_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:

        cleaned: list[str] = []
        for domain in value:
            domain = domain.strip().lower()
            if not re.match(DOMAIN_PATTERN, domain):
                raise ValueError(f"{domain!r} is not a valid domain name")
            if domain not in cleaned:
                cleaned.append(domain)
        return cleaned

    def port(self, lab: bool, kind: str) -> int:
        return getattr(self, f"lab_{kind}_port" if lab else f"{kind}_port")
