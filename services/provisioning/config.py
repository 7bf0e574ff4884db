"""The `provisioning` section: phones (MAC, model, user or DECT handsets) and how they fetch."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.macaddr import normalize_mac
from appliance.schema import Section
from appliance.service import ServiceConfig
from appliance.text import SafeText
from appliance.users import LOGIN_PATTERN

Model = Literal["yealink", "snom", "grandstream", "yealink-w70b", "polycom"]
MODEL_TITLES = {"yealink": "Yealink T4x/T5x desk phone", "snom": "Snom D-series desk phone",
                "grandstream": "Grandstream GXP desk phone", "yealink-w70b": "Yealink W70B SIP-DECT base",
                "polycom": "Polycom VVX desk phone"}
DECT_MODELS = {"yealink-w70b"}
MAX_HANDSETS = 10


class Handset(Section):
    number: int = Field(ge=1, le=MAX_HANDSETS, description="handset slot on the base")
    user: str = Field(pattern=LOGIN_PATTERN)


class Phone(Section):
    mac: str
    model: Model = "yealink"
    user: str | None = Field(default=None, pattern=LOGIN_PATTERN, description="desk phones: the owner")
    handsets: list[Handset] = Field(default_factory=list, description="DECT bases: one account per handset")
    label: SafeText = Field(default="", max_length=60)
    auth_secret: str = Field(default="", pattern=r"^[A-Za-z0-9]{0,64}$",
                             description="this phone's own provisioning password (phone_accounts)")

    _mac = field_validator("mac", mode="before")(classmethod(lambda cls, v: normalize_mac(v)))

    @model_validator(mode="after")
    def _fits_model(self) -> "Phone":
        if self.model in DECT_MODELS:
            if self.user:
                raise ValueError("a DECT base has handsets, not a user")
            numbers = [h.number for h in self.handsets]
            if len(set(numbers)) != len(numbers):
                raise ValueError("a handset number is used twice")
        elif self.handsets:
            raise ValueError("only a DECT base has handsets")
        return self

    @property
    def digits(self) -> str:
        return self.mac.replace(":", "")

    def logins(self) -> list[str]:
        return [self.user] if self.user else [h.user for h in self.handsets]


class ProvisioningConfig(ServiceConfig):
    phones: list[Phone] = Field(default_factory=list)
    http_port: int = Field(default=8081, ge=1, le=65535)
    tftp: bool = True
    tftp_port: int = Field(default=69, ge=1, le=65535)
    lab_http_port: int = Field(default=18081, ge=0, le=65535, description="lab mode, 127.0.0.1 (0: any)")
    lab_tftp_port: int = Field(default=16969, ge=0, le=65535)
    https: bool = Field(default=True, description="also serve over HTTPS with the box certificate")
    https_port: int = Field(default=8444, ge=1, le=65535)
    lab_https_port: int = Field(default=18444, ge=0, le=65535)
    auth: Literal["none", "basic", "digest"] = Field(default="none", description="one shared account")
    phone_accounts: bool = Field(default=False, description="each phone signs in with its own account instead: "
                                 "HTTP digest, user = the MAC's 12 hex digits, password = its auth_secret")
    auth_user: str = Field(default="phone", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    auth_password: SafeText = Field(default="", max_length=64)
    require_dhcp_lease: bool = Field(default=True, description="serve a phone's file only to the address "
                                                                "DHCP leased to its MAC")
    sip_server: SafeText = Field(default="", max_length=100, description="empty: the box (voice VLAN address if on)")

    @property
    def auth_kind(self) -> str:
        """How phones sign in: none, basic or digest (one shared account), or per-phone."""
        return "per-phone" if self.phone_accounts else self.auth

    @field_validator("phones")
    @classmethod
    def _unique(cls, phones: list[Phone]) -> list[Phone]:
        seen = set()
        for phone in phones:
            if phone.mac in seen:
                raise ValueError(f"phone {phone.mac} is listed twice")
            seen.add(phone.mac)
        return phones

    @model_validator(mode="after")
    def _auth_needs_password(self) -> "ProvisioningConfig":
        if self.auth in ("basic", "digest") and len(self.auth_password) < 8:
            raise ValueError("provisioning authentication needs a password of at least 8 characters")
        if self.phone_accounts and self.auth != "none":
            raise ValueError("choose either an account per phone or one shared account, not both")
        if self.phone_accounts:
            missing = [p.mac for p in self.phones if len(p.auth_secret) < 8]
            if missing:
                raise ValueError(f"per-phone authentication needs a secret for every phone: {', '.join(missing)}")
        return self
