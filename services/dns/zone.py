"""The local zone (config.system.domain): the box, static records, DHCP clients' names, reverse names."""
from __future__ import annotations

import ipaddress

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RR, SOA, SRV, TXT, A

RDATA = {"A": A, "AAAA": AAAA, "TXT": TXT}


def reverse_name(ip: ipaddress.IPv4Address) -> str:
    return ip.reverse_pointer.lower()


class LocalZone:
    def __init__(self, domain: str, box_name: str, box_addresses: list[ipaddress.IPv4Address],
                 networks: list[ipaddress.IPv4Network], records, ttl: int) -> None:
        self.domain = domain.lower().rstrip(".")
        self.networks = networks
        self.ttl = ttl
        self.box = f"{box_name}.{self.domain}"
        self.static: dict[str, list[RR]] = {}
        self.dynamic: dict[str, ipaddress.IPv4Address] = {}  # DHCP client name -> address
        self.soa = RR(self.domain, QTYPE.SOA, ttl=ttl, rdata=SOA(
            self.box, f"hostmaster.{self.domain}", (1, 3600, 600, 86400, ttl)))
        self._add(self.domain, RR(self.domain, QTYPE.NS, ttl=ttl, rdata=NS(self.box)))
        for ip in box_addresses:
            self._add(self.box, RR(self.box, QTYPE.A, ttl=ttl, rdata=A(str(ip))))
        for rec in records:
            self._add_record(rec)
        self.ptr: dict[str, str] = {}
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

    # -- DHCP names ------------------------------------------------------------------------------
    def set_client(self, hostname: str, ip: ipaddress.IPv4Address) -> bool:
        name = f"{hostname}.{self.domain}"
        if not hostname or name in self.static:  # static names and the box win
            return False
        for old, addr in list(self.dynamic.items()):
            if addr == ip and old != name:
                del self.dynamic[old]
        self.dynamic[name] = ip
        return True

    def drop_client(self, hostname: str, ip: ipaddress.IPv4Address) -> None:
        name = f"{hostname}.{self.domain}"
        if self.dynamic.get(name) == ip:
            del self.dynamic[name]

    # -- lookups ----------------------------------------------------------------------------------
    def covers(self, qname: str) -> bool:
        """True if the answer must come from here, never from upstream (RFC 6303: a LAN's reverse
        names, whole or partial, are never asked on the Internet)."""
        if qname == self.domain or qname.endswith("." + self.domain):
            return True
        if qname and "." not in qname:  # a bare host name: never sent to the Internet
            return True
        prefix = self._reverse_prefix(qname)
        return prefix is not None and any(prefix.overlaps(net) for net in self.networks)

    @staticmethod
    def _reverse_prefix(qname: str) -> ipaddress.IPv4Network | None:
        if not qname.endswith(".in-addr.arpa"):
            return None
        parts = qname[:-len(".in-addr.arpa")].split(".")
        if not 1 <= len(parts) <= 4 or not all(p.isdigit() and int(p) < 256 and str(int(p)) == p for p in parts):
            return None
        octets = list(reversed(parts)) + ["0"] * (4 - len(parts))
        return ipaddress.IPv4Network(f"{'.'.join(octets)}/{8 * len(parts)}")

    def _reverse_ip(self, qname: str) -> ipaddress.IPv4Address | None:
        prefix = self._reverse_prefix(qname)
        if prefix is None or prefix.prefixlen != 32:
            return None
        ip = prefix.network_address
        return ip if any(ip in net for net in self.networks) else None

    def records(self, qname: str) -> list[RR] | None:
        """All records at a name (None: the name does not exist)."""
        if qname in self.static:
            return self.static[qname]
        if qname in self.dynamic:
            return [RR(qname, QTYPE.A, ttl=self.ttl, rdata=A(str(self.dynamic[qname])))]
        if self._reverse_ip(qname) is not None:
            target = self.ptr.get(qname) or next((n for n, ip in self.dynamic.items() if reverse_name(ip) == qname),
                                                 None)
            if target is None and any(reverse_name(ip) == qname for ip in self._box_ips()):
                target = self.box
            return [RR(qname, QTYPE.PTR, ttl=self.ttl, rdata=PTR(target))] if target else None
        prefix = self._reverse_prefix(qname)
        if prefix is not None and prefix.prefixlen < 32 and any(prefix.overlaps(n) for n in self.networks):
            return []  # a partial reverse name above LAN addresses: exists, holds no records
        return None

    def _box_ips(self) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(str(rr.rdata)) for rr in self.static.get(self.box, []) if rr.rtype == QTYPE.A]

    def answer(self, qname: str, qtype: int) -> tuple[int, list[RR], list[RR]]:
        """(rcode, answers, authority) for a name in the zone; follows CNAMEs inside the zone.
        A bare host name ("printer") is answered as printer.<domain>, under the name asked."""
        if "." not in qname:
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
                return (3 if not answers else 0), answers, [self.soa]
            match = [r for r in rrs if r.rtype == qtype or qtype == QTYPE.ANY]
            if match:
                return 0, answers + match, []
            cname = next((r for r in rrs if r.rtype == QTYPE.CNAME), None)
            if cname is None:
                return 0, answers, [self.soa]
            answers.append(cname)
            name = str(cname.rdata.label).rstrip(".").lower()
            if not self.covers(name):
                return 0, answers, []
        return 2, [], []
