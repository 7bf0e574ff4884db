"""The one configuration: system, network and users here; each service contributes its own section.

A service declares `Config` (a pydantic model with defaults) and the root model gets a field named
after the service. Secret fields end in `_secret`, `_password`, `_hash` or are named `psk`: they are
masked in `config show`, diffs and the history page. Free text that reaches a rendered file or a wire
protocol is `SafeText` (appliance/text.py).

Evolution: `parse` migrates a document written by an older schema (appliance/migrations.py says when a
step is needed) and keeps what a newer firmware wrote and this one does not know as opaque data that
`to_document` writes back (appliance/opaque.py). Input stays strict: the engine accepts no unknown key
but those the stored configuration already holds.
"""
from __future__ import annotations

import ipaddress
import json
from functools import cache
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from appliance import migration_steps, migrations, opaque  # noqa: F401 (the steps register themselves)
from appliance.text import SafeText
from appliance.users import EMAIL_PATTERN, User

SCHEMA_VERSION = 8
SECRET_SUFFIXES = ("_secret", "_password", "_hash")
SECRET_NAMES = {"psk", "password", "secret"}
MASK = "********"


class Section(BaseModel):
    """Base for every configuration section: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SystemConfig(Section):
    company_name: SafeText = Field(default="My Company", min_length=1, max_length=100)
    hostname: str = Field(default="officebox", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    domain: str = Field(default="office.lan", pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$", description="LAN DNS domain")
    mail_domain: str = Field(default="example.com", pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")
    timezone: str = Field(default="Europe/Paris", pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
    language: Literal["en", "fr", "zh_TW"] = Field(default="en", description="the box default language")
    initialized: bool = Field(default=False, description="the first-boot wizard has been completed")
    admin_port: int = Field(default=443, ge=1, le=65535)
    lab_admin_port: int = Field(default=8443, ge=1024, le=65535)
    admin_email: str = Field(default="", max_length=254, pattern=f"^$|{EMAIL_PATTERN}",
                             description="where the box sends its notifications (empty: none by e-mail)")


def field_errors(title: str, problems: list[tuple[tuple[str | int, ...], str]]) -> ValidationError:
    """A ValidationError with each message at its own field path (for checks across fields)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("value_error", message.replace("{", "{{").replace("}", "}}")),
                         loc=loc, input=None)
        for loc, message in problems])


def host_interface(value: Any) -> Any:
    """The box's own address on a LAN: written with its prefix, /8 to /30, a host address of its subnet."""
    example = "enter the box address with its prefix, like 192.168.1.1/24"
    if isinstance(value, str) and "/" not in value:
        raise ValueError(example)
    try:
        iface = ipaddress.IPv4Interface(value)
    except (ValueError, TypeError):
        raise ValueError(example) from None
    net = iface.network
    if not 8 <= net.prefixlen <= 30:
        raise ValueError("the prefix must be between /8 and /30")
    if iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(f"{iface.ip} is not a host address of {net}; use e.g. {next(net.hosts())}/{net.prefixlen}")
    return iface


class Interface(Section):
    interface: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    address: ipaddress.IPv4Interface

    _host = field_validator("address", mode="before")(classmethod(lambda cls, v: host_interface(v)))


class VoiceVlan(Section):
    enabled: bool = False
    vlan_id: int = Field(default=100, ge=1, le=4094)
    address: ipaddress.IPv4Interface = ipaddress.IPv4Interface("192.168.2.1/24")


PPPOE_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no control characters (the pppd options file is line-based)
PPPOE_NAME = r"^[A-Za-z0-9_.@/ -]*$"  # a service or access concentrator name


class Wan(Section):
    interface: str = Field(default="wan0", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    mode: Literal["dhcp", "static", "pppoe", "none"] = "dhcp"
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: list[ipaddress.IPv4Address] = Field(default_factory=list, description="upstream resolvers")
    pppoe_user: str = Field(default="", max_length=128, pattern=PPPOE_TEXT,
                            description="PPPoE: the user name the provider gave (often name@provider)")
    pppoe_password: str = Field(default="", max_length=128, pattern=PPPOE_TEXT,
                                description="PPPoE: the password the provider gave (written to a 0600 file "
                                            "for pppd, never on its command line)")
    pppoe_service: str = Field(default="", max_length=64, pattern=PPPOE_NAME,
                               description="PPPoE: the service name to ask for (empty: any)")
    pppoe_ac_name: str = Field(default="", max_length=64, pattern=PPPOE_NAME,
                               description="PPPoE: the access concentrator to use (empty: the first to answer)")
    mtu: int = Field(default=1492, ge=576, le=1500, description="PPPoE: the link's MTU (1492 on most DSL lines)")

    @model_validator(mode="after")
    def _static_needs_address(self) -> "Wan":
        if self.mode == "static" and (self.address is None or self.gateway is None):
            raise ValueError("a static WAN needs an address and a gateway")
        if self.mode == "pppoe":
            problems: list[tuple[tuple[str | int, ...], str]] = []
            if not self.pppoe_user:
                problems.append((("pppoe_user",), "a PPPoE WAN needs the user name the provider gave"))
            if not self.pppoe_password:
                problems.append((("pppoe_password",), "a PPPoE WAN needs the password the provider gave"))
            if problems:
                raise field_errors("Wan", problems)
        if self.gateway and self.address and self.gateway not in self.address.network:
            raise ValueError("the WAN gateway must be inside the WAN subnet")
        return self


class Route(Section):
    destination: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


class NetworkConfig(Section):
    lan: Interface = Interface(interface="lan0", address=ipaddress.IPv4Interface("192.168.1.1/24"))
    voice: VoiceVlan = VoiceVlan()
    wan: Wan = Wan()
    routes: list[Route] = Field(default_factory=list)

    def lan_networks(self) -> list[ipaddress.IPv4Network]:
        nets = [self.lan.address.network]
        if self.voice.enabled:
            nets.append(self.voice.address.network)
        return nets


class BackupDestination(Section):
    kind: Literal["directory", "sftp", "smb"] = Field(default="directory", description="a folder on the box (a "
                                                      "USB disk's mount point), an SFTP server or an SMB share")
    directory: str = Field(default="", max_length=200, pattern=r"^$|^/[A-Za-z0-9._/-]*$")
    host: str = Field(default="", max_length=253, pattern=r"^$|^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
                      description="the SFTP server or the SMB server (the NAS)")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="", max_length=64, pattern=r"^$|^[A-Za-z_][A-Za-z0-9_.-]*$")
    path: str = Field(default="", max_length=200, pattern=r"^$|^[A-Za-z0-9._/-]+$",
                      description="folder on the server (SFTP: relative to the user's home, or absolute; "
                                  "SMB: inside the share)")
    host_key: str = Field(default="", max_length=2000,
                          pattern=r"^$|^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+=*$",
                          description="the server's public host key, checked at every connection")
    share: str = Field(default="", max_length=80, pattern=r"^$|^[A-Za-z0-9_][A-Za-z0-9 _.$-]*$",
                       description="SMB: the share's name on the server")
    domain: str = Field(default="", max_length=64, pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9.-]*$",
                        description="SMB: the user's domain or workgroup (empty: the server's own)")
    smb_port: int = Field(default=445, ge=1, le=65535, description="SMB: the server's port (445 unless the NAS "
                          "serves another)")
    password_secret: str = Field(default="", max_length=200, pattern=r"^[^\r\n]*$",
                                 description="SMB: the user's password (written to a 0600 file for smbclient)")


class ScheduledBackups(Section):
    """Backups the box makes by itself (appliance/backupjobs.py): encrypted, rotated, to one destination."""
    enabled: bool = False
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: int = Field(default=0, ge=0, le=6, description="for weekly backups: 0 Monday ... 6 Sunday")
    hour: int = Field(default=2, ge=0, le=23, description="the hour of the day, in the box's time zone")
    keep: int = Field(default=7, ge=1, le=100, description="backups kept at the destination; older ones are removed")
    passphrase: str = Field(default="", max_length=200, description="every scheduled backup is encrypted with it")
    destination: BackupDestination = BackupDestination()

    @model_validator(mode="after")
    def _complete(self) -> "ScheduledBackups":
        if not self.enabled:
            return self
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if len(self.passphrase) < 8:
            problems.append((("passphrase",), "scheduled backups are encrypted: a passphrase of 8 characters or more"))
        dest = self.destination
        if dest.kind == "directory" and not dest.directory:
            problems.append((("destination", "directory"), "the folder to write the backups to"))
        if dest.kind == "sftp":
            for name, what in (("host", "the SFTP server"), ("user", "the user to sign in as"),
                               ("host_key", "the server's host key (fetch it, then compare its fingerprint)")):
                if not getattr(dest, name):
                    problems.append((("destination", name), what))
        if dest.kind == "smb":
            for name, what in (("host", "the SMB server (the NAS's name or address)"), ("share", "the share's name"),
                               ("user", "the user to sign in as"), ("password_secret", "the user's password")):
                if not getattr(dest, name):
                    problems.append((("destination", name), what))
        if problems:
            raise field_errors("ScheduledBackups", problems)
        return self


class CoreConfig(Section):
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, description="kept as written by a newer firmware")
    system: SystemConfig = SystemConfig()
    network: NetworkConfig = NetworkConfig()
    backups: ScheduledBackups = ScheduledBackups()
    users: list[User] = Field(default_factory=list)
    _opaque: dict = PrivateAttr(default_factory=dict)  # what a newer firmware wrote (appliance/opaque.py)

    @model_validator(mode="after")
    def _unique_people(self) -> "CoreConfig":
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for attr, label in (("login", "login"), ("extension", "extension number"), ("email", "e-mail address")):
            where: dict[str, list[int]] = {}
            for index, user in enumerate(self.users):
                if getattr(user, attr) is not None:
                    where.setdefault(getattr(user, attr), []).append(index)
            for value, indexes in where.items():
                if len(indexes) > 1:
                    problems += [(("users", i, attr), f"{label} {value!r} is already used by another user")
                                 for i in indexes]
        if self.system.initialized and not any(u.role == "admin" and u.enabled for u in self.users):
            problems.append((("users",), "at least one enabled admin user is required"))
        if problems:
            raise field_errors("Config", problems)
        return self

    def user(self, login: str) -> User | None:
        return next((u for u in self.users if u.login == login), None)

    def user_by_extension(self, extension: str) -> User | None:
        return next((u for u in self.users if u.extension == extension), None)


@cache
def config_model() -> type[CoreConfig]:
    """The root model: the core sections plus one field per discovered service."""
    from services import discover

    fields: dict[str, Any] = {}
    for name, service_cls in discover().items():
        fields[name] = (service_cls.Config, Field(default_factory=service_cls.Config))
    return create_model("Config", __base__=CoreConfig, **fields)


def parse(document: dict | str | bytes, allow_unknown: frozenset | None = None) -> CoreConfig:
    """Validate a document, migrated first if an older schema wrote it. Keys this firmware does not
    know (a newer firmware wrote them) are kept aside (config._opaque) for to_document. `allow_unknown`
    (for input): only those unknown keys (see unknown_fields) are accepted, any other one is an error."""
    model = config_model()
    if isinstance(document, (str, bytes)):
        document = json.loads(document)
    if not isinstance(document, dict):
        return model.model_validate(document)  # refused with pydantic's own message
    try:
        document, _ = migrations.migrate(document, SCHEMA_VERSION)
    except migrations.MigrationError as exc:
        raise field_errors("Config", [(("schema_version",), str(exc))]) from None
    known, extras = opaque.split(document, model)
    if allow_unknown is not None:
        unknown = list(opaque.unknown_keys(extras))
        if any(pattern not in allow_unknown for _, pattern in unknown):  # refused with pydantic's messages
            model.model_validate(opaque.without(document, [p for p, pattern in unknown if pattern in allow_unknown]))
    config = model.model_validate(known)
    if extras:
        config._opaque = opaque.anchor(extras, config.model_dump(mode="json"), model)
    return config


def unknown_fields(document: dict) -> frozenset:
    """The keys of a stored `document` this firmware does not know, as patterns for parse(allow_unknown)."""
    return frozenset(pattern for _, pattern in opaque.unknown_keys(opaque.split(document, config_model())[1]))


def to_document(config: BaseModel) -> dict:
    document = config.model_dump(mode="json")
    extras = getattr(config, "_opaque", None)
    return opaque.merge(document, extras, type(config)) if extras else document


def is_secret_key(key: str) -> bool:
    return key in SECRET_NAMES or key.endswith(SECRET_SUFFIXES)


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value
