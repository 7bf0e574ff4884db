"""The one configuration: system, network and users here; each service contributes its own section.

A service declares `Config` (a pydantic model with defaults) and the root model gets a field named
after the service. Secret fields end in `_secret`, `_password`, `_hash` or are named `psk`: they are
masked in `config show`, diffs and the history page.
"""
from __future__ import annotations

import ipaddress
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from appliance.users import User

SCHEMA_VERSION = 1
SECRET_SUFFIXES = ("_secret", "_password", "_hash")
SECRET_NAMES = {"psk", "password", "secret"}
MASK = "********"


class Section(BaseModel):
    """Base for every configuration section: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SystemConfig(Section):
    company_name: str = Field(default="My Company", min_length=1, max_length=100)
    hostname: str = Field(default="officebox", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    domain: str = Field(default="office.lan", pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$", description="LAN DNS domain")
    mail_domain: str = Field(default="example.com", pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")
    timezone: str = Field(default="Europe/Paris", pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
    language: Literal["en", "fr", "de", "es", "it", "nl"] = "en"
    initialized: bool = Field(default=False, description="the first-boot wizard has been completed")
    admin_port: int = Field(default=443, ge=1, le=65535)
    lab_admin_port: int = Field(default=8443, ge=1024, le=65535)


class Interface(Section):
    interface: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    address: ipaddress.IPv4Interface


class VoiceVlan(Section):
    enabled: bool = False
    vlan_id: int = Field(default=100, ge=1, le=4094)
    address: ipaddress.IPv4Interface = ipaddress.IPv4Interface("192.168.2.1/24")


class Wan(Section):
    interface: str = Field(default="wan0", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    mode: Literal["dhcp", "static", "none"] = "dhcp"
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: list[ipaddress.IPv4Address] = Field(default_factory=list, description="upstream resolvers")

    @model_validator(mode="after")
    def _static_needs_address(self) -> "Wan":
        if self.mode == "static" and (self.address is None or self.gateway is None):
            raise ValueError("a static WAN needs an address and a gateway")
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


class CoreConfig(Section):
    schema_version: int = SCHEMA_VERSION
    system: SystemConfig = SystemConfig()
    network: NetworkConfig = NetworkConfig()
    users: list[User] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_people(self) -> "CoreConfig":
        for attr, label in (("login", "login"), ("extension", "extension number"), ("email", "e-mail address")):
            seen: set[str] = set()
            for user in self.users:
                value = getattr(user, attr)
                if value is None:
                    continue
                if value in seen:
                    raise ValueError(f"{label} {value!r} is used by more than one user")
                seen.add(value)
        if self.system.initialized and not any(u.role == "admin" and u.enabled for u in self.users):
            raise ValueError("at least one enabled admin user is required")
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


def parse(document: dict | str | bytes) -> CoreConfig:
    model = config_model()
    if isinstance(document, (str, bytes)):
        return model.model_validate_json(document)
    return model.model_validate(document)


def to_document(config: BaseModel) -> dict:
    return config.model_dump(mode="json")


def is_secret_key(key: str) -> bool:
    return key in SECRET_NAMES or key.endswith(SECRET_SUFFIXES)


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value
