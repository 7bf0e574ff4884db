"""The local zone (config.system.domain): the box, static records, DHCP clients' names, reverse names;
and the names a resolver answers itself: `localhost` (RFC 6761) and the private reverse zones (RFC 6303)."""
from __future__ import annotations

import ipaddress
import re
import time
from typing import NamedTuple

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RR, SOA, SRV, TXT, A

RDATA = {"A": A, "AAAA": AAAA, "TXT": TXT}
LOCALHOST = "localhost"
# reverse zones never asked on the Internet (RFC 6303), each network with the prefix length of its zones
PRIVATE_REVERSE = [(ipaddress.IPv4Network(net), apex) for net, apex in (
    ("10.0.0.0/8", 8), ("127.0.0.0/8", 8), ("169.254.0.0/16", 16), ("172.16.0.0/12", 16), ("192.168.0.0/16", 16))]
# DHCP client names never published: proxy and tunnel auto-discovery (WPAD, ISATAP) and loopback names
RESERVED_NAMES = frozenset(("wpad", "isatap", "localhost", "localdomain", "local", "broadcasthost",
                            "ip6-localhost", "ip6-loopback"))
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def reverse_name(ip: ipaddress.IPv4Address) -> str:
    return ip.reverse_pointer.lower()


class Client(NamedTuple):
    ip: ipaddress.IPv4Address
    mac: str
    expires: float  # UNIX time


def _soa(apex: str, primary: str, ttl: int) -> RR:
    return RR(apex, QTYPE.SOA, ttl=ttl, rdata=SOA(primary, f"hostmaster.{apex}", (1, 3600, 600, 86400, ttl)))


class LocalZone:
    def __init__(self, domain: str, box_name: str, box_addresses: list[ipaddress.IPv4Address],
                 networks: list[ipaddress.IPv4Network], records, ttl: int, names=()) -> None:
        """`names`: the services' DnsName contributions, after the admin's records (which win)."""
        self.domain = domain.lower().rstrip(".")
        self.networks = networks
        self.ttl = ttl
        self.box = f"{box_name}.{self.domain}"
        self.static: dict[str, list[RR]] = {}
        self.dynamic: dict[str, Client] = {}  # DHCP client name -> its lease
        self.soa = _soa(self.domain, self.box, ttl)
        self._add(self.domain, self.soa)
        self._add(self.domain, RR(self.domain, QTYPE.NS, ttl=ttl, rdata=NS(self.box)))
        for ip in box_addresses:
            self._add(self.box, RR(self.box, QTYPE.A, ttl=ttl, rdata=A(str(ip))))
        for rec in records:
            self._add_record(rec)
        for contributed in names:
            self._add_service_name(contributed, box_addresses)
        self.ptr: dict[str, str] = {reverse_name(ipaddress.IPv4Address("127.0.0.1")): LOCALHOST}
        for name, rrs in self.static.items():
            for rr in rrs:
                if rr.rtype == QTYPE.A:
                    self.ptr.setdefault(reverse_name(ipaddress.IPv4Address(str(rr.rdata))), name)

    def fqdn(self, name: str) -> str:
        if name == "@":
            return self.domain
        return name.rstrip(".") if name.endswith(".") else f"{name}.{self.domain}"

    def _add(self, name: str, rr: RR) -> None:
        self.static.setdefault(name, []).append(rr)

    def _add_record(self, rec) -> None:
        name, value = self.fqdn(rec.name), rec.value.strip()
        if rec.type in RDATA:
            rdata = RDATA[rec.type](value)
        elif rec.type == "CNAME":
            rdata = CNAME(self.fqdn(value))
        elif rec.type == "MX":
            pref, host = value.split()
            rdata = MX(self.fqdn(host), int(pref))
        else:
            prio, weight, port, host = value.split()
            rdata = SRV(int(prio), int(weight), int(port), self.fqdn(host))
        self._add(name, RR(name, getattr(QTYPE, rec.type), ttl=rec.ttl, rdata=rdata))

    def _add_service_name(self, contributed, box_addresses: list[ipaddress.IPv4Address]) -> None:
        name = self.fqdn(contributed.name.lower())
        if name in self.static or not name.endswith("." + self.domain):
            return  # the admin's record (or an earlier service) has the name; outside the zone: not ours
        addresses = box_addresses if contributed.address == "{box}" else [ipaddress.IPv4Address(contributed.address)]
        for ip in addresses:
            self._add(name, RR(name, QTYPE.A, ttl=self.ttl, rdata=A(str(ip))))

    # -- DHCP names ------------------------------------------------------------------------------
    def set_client(self, hostname: str, ip: ipaddress.IPv4Address, mac: str, expires: float) -> str | None:
        """Publish a DHCP client's name; None if done, else why not."""
        hostname = hostname.lower()
        if not HOST_LABEL.fullmatch(hostname):
            return "not a host name"
        if hostname in RESERVED_NAMES:
            return "a reserved name"
        name = f"{hostname}.{self.domain}"
        if name in self.static:  # static names and the box win
            return "taken by a static record"
        holder = self.dynamic.get(name)
        if holder is not None and holder.mac != mac and holder.expires > time.time():
            return f"held by {holder.mac}'s live lease"
        for old, client in list(self.dynamic.items()):
            if client.ip == ip and old != name:
                del self.dynamic[old]
        self.dynamic[name] = Client(ip, mac, expires)
        return None

    def drop_client(self, hostname: str, ip: ipaddress.IPv4Address) -> bool:
        name = f"{hostname.lower()}.{self.domain}"
        client = self.dynamic.get(name)
        if client is None or client.ip != ip:
            return False
        del self.dynamic[name]
        return True

    # -- lookups ----------------------------------------------------------------------------------
    def covers(self, qname: str) -> bool:
        """True if the answer must come from here, never from upstream: the LAN domain, a bare name of a
        host in it, localhost, and private reverse names (RFC 6303), whole or partial."""
        if qname == self.domain or qname.endswith("." + self.domain):
            return True
        if qname and "." not in qname:  # a bare name: local only if that host exists here
            return qname == LOCALHOST or self.records(f"{qname}.{self.domain}") is not None
        if qname.endswith("." + LOCALHOST):
            return True
        prefix = self._reverse_prefix(qname)
        return prefix is not None and (self._private_apex(prefix) is not None
                                       or any(prefix.overlaps(net) for net in self.networks))

    @staticmethod
    def _reverse_prefix(qname: str) -> ipaddress.IPv4Network | None:
        if not qname.endswith(".in-addr.arpa"):
            return None
        parts = qname[:-len(".in-addr.arpa")].split(".")
        if not 1 <= len(parts) <= 4 or not all(p.isdigit() and int(p) < 256 and str(int(p)) == p for p in parts):
            return None
        octets = list(reversed(parts)) + ["0"] * (4 - len(parts))
        return ipaddress.IPv4Network(f"{'.'.join(octets)}/{8 * len(parts)}")

    @staticmethod
    def _private_apex(prefix: ipaddress.IPv4Network) -> ipaddress.IPv4Network | None:
        """The private reverse zone holding this reverse prefix, if any."""
        for net, apex in PRIVATE_REVERSE:
            if prefix.prefixlen >= apex and prefix.subnet_of(net):
                return prefix.supernet(new_prefix=apex)
        return None

    def _in_lan(self, prefix: ipaddress.IPv4Network) -> bool:
        return any(prefix.overlaps(net) for net in self.networks)

    def records(self, qname: str) -> list[RR] | None:
        """All records at a name (None: the name does not exist)."""
        if qname in self.static:
            return self.static[qname]
        if qname in self.dynamic:
            return [RR(qname, QTYPE.A, ttl=self.ttl, rdata=A(str(self.dynamic[qname].ip)))]
        if qname == LOCALHOST or qname.endswith("." + LOCALHOST):
            return [RR(qname, QTYPE.A, ttl=self.ttl, rdata=A("127.0.0.1")),
                    RR(qname, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA("::1"))]
        prefix = self._reverse_prefix(qname)
        if prefix is None:
            return None
        if prefix.prefixlen == 32:
            target = self._ptr_target(qname, prefix.network_address)
            return [RR(qname, QTYPE.PTR, ttl=self.ttl, rdata=PTR(target))] if target else None
        apex = self._private_apex(prefix)
        if self._in_lan(prefix) or (apex is not None and apex == prefix):
            return [self._reverse_soa(apex)] if apex == prefix else []  # exists, holds no records
        return None

    def _ptr_target(self, qname: str, ip: ipaddress.IPv4Address) -> str | None:
        if qname in self.ptr:
            return self.ptr[qname]
        if not any(ip in net for net in self.networks):
            return None
        found = next((n for n, client in self.dynamic.items() if client.ip == ip), None)
        if found is None and ip in self._box_ips():
            found = self.box
        return found

    def _reverse_soa(self, apex: ipaddress.IPv4Network) -> RR:
        return _soa(reverse_name(apex.network_address).split(".", 4 - apex.prefixlen // 8)[-1], self.box, self.ttl)

    def soa_for(self, qname: str) -> RR:
        """The SOA of the zone holding a local name (for negative answers)."""
        if qname == LOCALHOST or qname.endswith("." + LOCALHOST):
            return _soa(LOCALHOST, LOCALHOST, self.ttl)
        prefix = self._reverse_prefix(qname)
        apex = self._private_apex(prefix) if prefix is not None else None
        return self._reverse_soa(apex) if apex is not None else self.soa

    def _box_ips(self) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(str(rr.rdata)) for rr in self.static.get(self.box, []) if rr.rtype == QTYPE.A]

    def answer(self, qname: str, qtype: int) -> tuple[int, list[RR], list[RR]]:
        """(rcode, answers, authority) for a name covered here; follows CNAMEs inside the zone.
        A bare host name ("printer") is answered as printer.<domain>, under the name asked."""
        if "." not in qname and qname != LOCALHOST:
            fqdn = f"{qname}.{self.domain}"
            rcode, answers, authority = self.answer(fqdn, qtype)
            answers = [RR(qname, rr.rtype, ttl=rr.ttl, rdata=rr.rdata)
                       if str(rr.rname).rstrip(".").lower() == fqdn else rr for rr in answers]
            return rcode, answers, authority
        answers: list[RR] = []
        name = qname
        for _ in range(8):
            rrs = self.records(name)
            if rrs is None:
                return (3 if not answers else 0), answers, [self.soa_for(name)]
            match = [r for r in rrs if r.rtype == qtype or qtype == QTYPE.ANY]
            if match:
                return 0, answers + match, []
            cname = next((r for r in rrs if r.rtype == QTYPE.CNAME), None)
            if cname is None:
                return 0, answers, [self.soa_for(name)]
            answers.append(cname)
            name = str(cname.rdata.label).rstrip(".").lower()
            if not self.covers(name):
                return 0, answers, []
        return 2, [], []
