"""What services contribute to each other, typed, so that no service reads another's section.

A service declares `contributes(config, lab)` (a classmethod, pure: a function of the configuration)
and returns a list of the records below; a consumer asks `collect(config, Kind, lab)` for every
enabled service's records of one kind:

  Listener    a port the service serves; the inside zones reach the box by zone policy, the WAN only
              where `wan_peers` says: None = not from the WAN, () = from anyone, else those addresses.
              Names are a contract: the firewall adds its own `sip_peers` to "sip" and, while "sip"
              is open, opens "rtp" only to the calls' media addresses (the bus topic pbx.media:
              carriers send media from other addresses than their signalling)
  Redirect    transparent interception: TCP to `port` from the inside zones goes to the box's `to_port`
  Endpoint    a named service address devices are pointed at (provisioning puts "sip" in phone files)
  DhcpOption  an option a service needs in DHCP answers (to every client, or to vendor class `vendor`);
              "{box}" in its value stands for the box's address on the client's network
  Network     addresses that arrive through a VPN (zone "vpn"): through `interface` when given (a tunnel
              device: wg*, ipsec0), else by IPsec policy; the firewall puts them in its vpn zone, DNS
              answers them
  DnsName     a name the service is reached by, served by DNS in the LAN domain ("provisioning" ->
              provisioning.<domain>); `address` "{box}" stands for the box's own addresses (those of
              its name), else one IPv4 address. A static record of the admin with that name wins
  Line        a phone line (an extension of an enabled user) as the PBX handles it: its forwarding, do not
              disturb, who may watch it on a busy lamp field and the ring groups it is a member of (CTI shows
              the first, provisioning builds BLF keys from the others)
  FeatureCode a code phones dial for a feature ("pickup", "directed_pickup"), for BLF keys and phone guides
An Endpoint named "smtp" is the box's own mail submission port (the voicemail mails go there).
A Listener's `per_source_limit` (TCP, 0 = none) is the most connections one address may hold on it at
once; the firewall refuses more (nft `ct count`), e.g. for the CTI ports (it counts every connection).
A Listener with protocol "esp" is IPsec's ESP (IP protocol 50), "gre" is GRE (47, PPTP's data): they
have no ports, `ports` is (0, 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar


@dataclass(frozen=True)
class Listener:
    name: str
    protocol: Literal["tcp", "udp", "esp", "gre"]
    ports: tuple[int, int]  # first..last (the same for one port); (0, 0) for esp and gre
    wan_peers: tuple[str, ...] | None = None
    comment: str = ""
    per_source_limit: int = 0


@dataclass(frozen=True)
class Redirect:
    name: str
    port: int
    to_port: int
    comment: str = ""


@dataclass(frozen=True)
class Endpoint:
    name: str
    port: int
    transports: tuple[str, ...] = ("udp",)


@dataclass(frozen=True)
class DhcpOption:
    code: int
    value: str
    vendor: str = ""  # "" for every client, else a substring of option 60


@dataclass(frozen=True)
class Network:
    zone: Literal["vpn"]
    cidr: str
    interface: str = ""
    comment: str = ""


@dataclass(frozen=True)
class DnsName:
    name: str  # a host label (or dotted labels) inside the LAN domain
    address: str = "{box}"
    comment: str = ""


@dataclass(frozen=True)
class Line:
    extension: str
    forward_always: str = ""
    forward_busy: str = ""
    forward_no_answer: str = ""
    dnd: bool = False
    blf_watchers: Literal["everyone", "same_groups", "nobody"] = "everyone"
    groups: tuple[str, ...] = ()  # numbers of the ring groups it is a member of, in configuration order


@dataclass(frozen=True)
class FeatureCode:
    name: str
    code: str


Contribution = Listener | Redirect | Endpoint | DhcpOption | Network | DnsName | Line | FeatureCode
K = TypeVar("K", Listener, Redirect, Endpoint, DhcpOption, Network, DnsName, Line, FeatureCode)


def collect(config, kind: type[K], lab: bool = False) -> list[K]:
    """Every enabled service's contributions of `kind`, in service name order."""
    from services import discover

    found: list[K] = []
    for name, service_cls in sorted(discover().items()):
        section = getattr(config, name, None)
        if section is None or not section.enabled:
            continue
        found += [c for c in service_cls.contributes(config, lab) if isinstance(c, kind)]
    return found
