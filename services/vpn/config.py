"""The `vpn` configuration section: site-to-site IPsec tunnels (IKEv2, pre-shared key or certificates),
WireGuard and IKEv2 for staff."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.schema import Section
from appliance.service import ServiceConfig
from services.vpn.bundle import Bundle, BundleError
from services.vpn.bundle import parse as parse_bundle

NAME = r"^[a-z][a-z0-9-]{0,30}$"
PROPOSALS = r"^[a-z0-9]+(-[a-z0-9]+)*(,[a-z0-9]+(-[a-z0-9]+)*)*$"
HOST = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
IDENTITY = re.compile(r"^[A-Za-z0-9@._:-]{1,128}$")
# AES-GCM with SHA-2 PRFs, Curve25519 first, then NIST P-384: no SHA-1, no MODP groups, no CBC
DEFAULT_IKE = "aes256gcm16-prfsha384-x25519,aes256gcm16-prfsha384-ecp384"
DEFAULT_ESP = "aes256gcm16-x25519,aes256gcm16-ecp384"
# IKEv1 has no AEAD for its own SA (no AES-GCM): legacy peers get AES-CBC with SHA-2, P-384 or, for the
# oldest, MODP-2048 (still no SHA-1)
DEFAULT_IKE_V1 = "aes256-sha384-ecp384,aes256-sha256-modp2048"
DEFAULT_ESP_V1 = "aes256gcm16-ecp384,aes256-sha256-modp2048"
WG_KEY = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
SERVICE = re.compile(r"^(icmp|(tcp|udp)/([0-9]{1,5})(-([0-9]{1,5}))?)$")
PSK_MIN_LENGTH = 20
PSK_MIN_DISTINCT = 10


def psk_weakness(psk: str) -> str:
    """Why a pre-shared key is too weak to guard a tunnel, or "" when it is strong enough."""
    if not psk.isprintable():
        return "the pre-shared key cannot contain line breaks or control characters"
    if len(psk) < PSK_MIN_LENGTH:
        return f"the pre-shared key must have at least {PSK_MIN_LENGTH} characters (it has {len(psk)})"
    if len(set(psk)) < PSK_MIN_DISTINCT:
        return f"the pre-shared key repeats too few characters: use at least {PSK_MIN_DISTINCT} different ones"
    if not any(c.isdigit() for c in psk) or not any(c.isalpha() for c in psk):
        return "the pre-shared key must mix letters and digits"
    return ""


def overlaps(nets: list[ipaddress.IPv4Network]) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network] | None:
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            if a.overlaps(b):
                return a, b
    return None


class Tunnel(Section):
    name: str = Field(pattern=NAME, description="a short name: letters, digits, '-'")
    enabled: bool = True
    peer: str = Field(description="the other office's public address or host name")
    local_subnets: list[ipaddress.IPv4Network] = Field(min_length=1, description="networks behind this box")
    remote_subnets: list[ipaddress.IPv4Network] = Field(min_length=1, description="networks behind the peer")
    auth: Literal["psk", "certificate"] = Field(default="psk", description="pre-shared key, or certificates "
                                                "of the head office's CA")
    psk: str = Field(default="", description="pre-shared key, the same on both boxes (auth psk)")
    peer_bundle_secret: str = Field(default="", max_length=65536,
                                    description="auth certificate, on a branch: the bundle the head office issued "
                                                "(services/vpn/bundle.py); empty: this box's CA issues the peer's")
    local_id: str = Field(default="", description="this box's IKE identity; empty: its address (auth psk)")
    remote_id: str = Field(default="", description="the peer's IKE identity; empty: the peer address (auth psk)")
    ike_version: Literal[1, 2] = Field(default=2, description="2; 1 (main mode) only for a legacy peer that "
                                                                  "has no IKEv2")
    ike_proposals: str = Field(default=DEFAULT_IKE, pattern=PROPOSALS)
    esp_proposals: str = Field(default=DEFAULT_ESP, pattern=PROPOSALS)
    dpd_delay: int = Field(default=30, ge=5, le=3600, description="seconds between dead peer checks")
    allowed_services: list[str] = Field(default_factory=list, max_length=16,
                                        description="what the peer may reach on the local subnets: tcp/PORT, "
                                                    "udp/PORT, tcp/FIRST-LAST, icmp; empty: everything")

    @field_validator("allowed_services")
    @classmethod
    def _services(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            value = value.strip().lower()
            m = SERVICE.match(value)
            first, last = (int(m.group(3)), int(m.group(5) or m.group(3))) if m and m.group(3) else (1, 1)
            if not m or not 1 <= first <= last <= 65535:
                raise ValueError(f"{value!r} is not a service: write tcp/443, udp/53, tcp/8000-8010 or icmp")
            if value not in out:
                out.append(value)
        return out

    @field_validator("peer")
    @classmethod
    def _peer(cls, value: str) -> str:
        value = value.strip().lower()
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            if not HOST.match(value) or len(value) > 253:
                raise ValueError(f"{value!r} is not an IPv4 address or a host name") from None
        return value

    @field_validator("local_id", "remote_id")
    @classmethod
    def _identity(cls, value: str) -> str:
        value = value.strip()
        if value and not IDENTITY.match(value):
            raise ValueError(f"{value!r}: an identity is an address, a host name or user@domain")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Tunnel":
        if self.auth == "psk":
            weakness = psk_weakness(self.psk)
            if weakness:
                raise ValueError(f"tunnel {self.name}: {weakness}")
            if self.peer_bundle_secret:
                raise ValueError(f"tunnel {self.name}: a peer bundle is for a tunnel authenticated by certificates")
        else:
            if self.local_id or self.remote_id:
                raise ValueError(f"tunnel {self.name}: with certificates the identities are the certificates' "
                                 "own: leave the local and remote identity empty")
            if self.peer_bundle_secret:
                try:
                    parse_bundle(self.peer_bundle_secret)
                except BundleError as exc:
                    raise ValueError(f"tunnel {self.name}: {exc}") from None
        if self.ike_version == 1:
            if len(self.local_ts) != 1 or len(self.remote_subnets) != 1:
                raise ValueError(f"tunnel {self.name}: IKEv1 carries one local and one remote network (with at "
                                 "most one allowed service): use IKEv2 for more, or one tunnel each")
            if self.ike_proposals != DEFAULT_IKE and "gcm" in self.ike_proposals:
                raise ValueError(f"tunnel {self.name}: IKEv1 has no AES-GCM for IKE: choose e.g. "
                                 "aes256-sha256-modp2048")
        clash = overlaps(self.local_subnets + self.remote_subnets)
        if clash:
            raise ValueError(f"tunnel {self.name}: the subnets {clash[0]} and {clash[1]} overlap")
        return self

    @property
    def local_ts(self) -> list[str]:
        """The local traffic selectors (strongSwan's syntax): the local subnets, narrowed to the allowed services."""
        nets = [str(n) for n in self.local_subnets]
        if not self.allowed_services:
            return nets
        return [f"{net}[{service}]" for net in nets for service in self.allowed_services]

    @property
    def proposals(self) -> tuple[str, str]:
        """(IKE, ESP) proposals to render: the defaults of the IKE version unless the admin chose others."""
        if self.ike_version == 1:
            return (DEFAULT_IKE_V1 if self.ike_proposals == DEFAULT_IKE else self.ike_proposals,
                    DEFAULT_ESP_V1 if self.esp_proposals == DEFAULT_ESP else self.esp_proposals)
        return self.ike_proposals, self.esp_proposals

    @property
    def peer_id(self) -> str:
        return self.remote_id or self.peer

    @property
    def bundle(self) -> Bundle | None:
        """The imported peer bundle (a branch's certificate tunnel), else None."""
        return parse_bundle(self.peer_bundle_secret) if self.auth == "certificate" and self.peer_bundle_secret else None


def new_private_key() -> str:
    from services.vpn.wgkeys import private_key
    return private_key()


class WgDevice(Section):
    """One staff device's WireGuard identity: keys made on the box, an address from the pool."""

    user: str = Field(description="the login of the device's owner")
    name: str = Field(pattern=NAME, description="e.g. laptop, phone")
    address: ipaddress.IPv4Address
    private_key_secret: str = Field(pattern=WG_KEY)
    public_key: str = Field(pattern=WG_KEY)


class WireGuardConfig(Section):
    enabled: bool = False
    interface: str = Field(default="wg-ob", pattern=r"^[a-z][a-z0-9-]{0,14}$")
    port: int = Field(default=51820, ge=1, le=65535)
    pool: ipaddress.IPv4Network = Field(default=ipaddress.IPv4Network("10.8.0.0/24"),
                                        description="device addresses; the box takes the first one")
    endpoint: str = Field(default="", description="the public name or address devices dial; empty: the WAN address")
    private_key_secret: str = Field(default_factory=new_private_key, pattern=WG_KEY)
    devices: list[WgDevice] = Field(default_factory=list)

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= value.prefixlen <= 29:
            raise ValueError("the WireGuard pool must be a /16 to /29 network")
        return value

    @property
    def box_address(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{next(self.pool.hosts())}/{self.pool.prefixlen}")

    @model_validator(mode="after")
    def _devices(self) -> "WireGuardConfig":
        seen: set = set()
        for device in self.devices:
            if device.address not in self.pool or device.address in (self.box_address.ip, self.pool.broadcast_address):
                raise ValueError(f"device {device.user}/{device.name}: {device.address} is not a device address "
                                 f"of the pool {self.pool}")
            for key in (device.address, (device.user, device.name), device.public_key):
                if key in seen:
                    raise ValueError(f"device {device.user}/{device.name}: its address, name or key is taken")
                seen.add(key)
        return self


def new_vpn_secret() -> str:
    from appliance.users import new_secret
    return new_secret(20)


class RoadWarriorAccount(Section):
    """A user's IKEv2 EAP-MSCHAPv2 login: a secret made by the box (MSCHAPv2 needs it in clear, 0600)."""

    user: str
    password_secret: str = Field(default_factory=new_vpn_secret, min_length=12, max_length=128)


class RemoteAccessConfig(Section):
    """IKEv2 road warriors: the box proves itself with a certificate of its own CA, users by EAP-MSCHAPv2."""

    enabled: bool = False
    pool: ipaddress.IPv4Network = Field(default=ipaddress.IPv4Network("10.9.0.0/24"),
                                        description="virtual addresses of the connected clients")
    server_name: str = Field(default="", description="the name or address clients dial (in the box's "
                                                     "certificate); empty: the WAN address")
    accounts: list[RoadWarriorAccount] = Field(default_factory=list)

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not HOST.match(value):
            raise ValueError(f"{value!r} is not a host name or address")
        return value


class PptpConfig(Section):
    """Legacy PPTP (pptpd: MS-CHAPv2, MPPE-128) for staff devices without anything better. Insecure: an
    MS-CHAPv2 handshake can be cracked offline and MPPE is RC4. Off by default; users log in with their
    VPN password (the IKEv2 account's)."""

    enabled: bool = False
    pool: ipaddress.IPv4Network = Field(default=ipaddress.IPv4Network("10.10.0.0/24"),
                                        description="addresses of the connected clients; the box takes the first")

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 24 <= value.prefixlen <= 29:
            raise ValueError("the PPTP pool must be a /24 to /29 network (pptpd hands out one range)")
        return value


class VpnConfig(ServiceConfig):
    enabled: bool = False
    tunnels: list[Tunnel] = Field(default_factory=list, description="site-to-site IPsec tunnels")
    wireguard: WireGuardConfig = Field(default_factory=WireGuardConfig, description="remote access for staff")
    remote_access: RemoteAccessConfig = Field(default_factory=RemoteAccessConfig, description="IKEv2 clients")
    pptp: PptpConfig = Field(default_factory=PptpConfig, description="legacy PPTP clients (insecure)")

    @model_validator(mode="after")
    def _unique(self) -> "VpnConfig":
        names = [t.name for t in self.tunnels]
        duplicate = {n for n in names if names.count(n) > 1}
        if duplicate:
            raise ValueError(f"two tunnels are named {', '.join(sorted(duplicate))}")
        remote = [(net, t.name) for t in self.tunnels if t.enabled for net in t.remote_subnets]
        for i, (a, name_a) in enumerate(remote):
            for b, name_b in remote[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"the remote subnets {a} ({name_a}) and {b} ({name_b}) overlap")
        return self
