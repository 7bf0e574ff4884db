"""DNS: authoritative for the LAN domain (box, static records, DHCP clients' names, reverse names)
and a caching forwarder to the upstream resolvers, for LAN/VPN clients only (not an open resolver).

DHCP clients' names arrive live through the appliance bus (appliance/leases.py), and so does the WAN's
DHCP lease, whose resolvers are the upstreams when none is set by hand (appliance/wanlease.py: the network
service runs the DHCP client, in another process).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging

from appliance.apply import FieldError
from appliance.contributions import DnsName, Network, collect
from appliance.leases import LeaseInfo, lease_bus
from appliance.service import ApplyError, Service, Status
from appliance.wanlease import WanLease, wan_lease_bus
from services.dns.cache import Cache
from services.dns.config import DnsConfig, parse_upstream
from services.dns.forwarder import Forwarder
from services.dns.server import DnsServer, lan_log
from services.dns.zone import LocalZone

log = logging.getLogger("officebox.dns")


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The IPv4 nameservers of the machine (for a lab box)."""
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    found = []
    for parts in (line.split() for line in lines):
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                parse_upstream(parts[1])
            except ValueError:  # IPv6: the forwarder is IPv4 only
                continue
            found.append(parts[1])
    return found[:3]


class DnsService(Service):
    name = "dns"
    # the VPN's networks may ask too; provisioning and mail bring names (DnsName)
    depends_on = ("system", "network", "vpn", "provisioning", "mail")
    title = "DNS server"
    Config = DnsConfig

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.server: DnsServer | None = None
        self.addresses: list[tuple[str, int]] = []
        self._listen: list[tuple[str, int]] = []
        self._unsubscribe = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._config = None
        self._wan_unsubscribe = None

    # -- configuration ------------------------------------------------------------------------------
    @classmethod
    def lab_defaults(cls, section: dict) -> dict:
        """A lab box has no WAN of its own: it forwards to the resolvers of the machine it runs on."""
        section = super().lab_defaults(section)
        section["upstreams"] = host_resolvers()
        return section

    def validate(self, config) -> list[FieldError]:
        zone = self.zone(config)
        errors = []
        for k, rec in enumerate(config.dns.records):
            name = zone.fqdn(rec.name)
            if name == zone.box:
                errors.append(FieldError(f"dns.records.{k}.name", f"record {rec.name}: that is the box's own name"))
        return errors

    def upstreams(self, config) -> list[tuple[str, int]]:
        """Configured resolvers, else the WAN's (static, or learned with its DHCP lease)."""
        wan = config.network.wan
        if self.learns_from_wan(config):
            lease = wan_lease_bus(self.ctx).get(wan.interface)
            listed = list(lease.dns) if lease is not None else []
        else:
            listed = config.dns.upstreams or [str(ip) for ip in wan.dns]
        found = []
        for item in listed:
            try:
                upstream = parse_upstream(item)
            except ValueError:  # a learned value is not checked by the schema
                continue
            if upstream not in self._listen and upstream not in found:  # never forward to ourselves
                found.append(upstream)
        return found

    @staticmethod
    def learns_from_wan(config) -> bool:
        """No resolver set by hand and a DHCP or PPPoE WAN: the lease's (the PPPoE peer's) resolvers are the
        upstreams."""
        return not config.dns.upstreams and not config.network.wan.dns and config.network.wan.mode in ("dhcp", "pppoe")

    def _on_wan(self, interface: str, lease: WanLease | None) -> None:
        """A bus callback (any thread): the WAN's lease arrived, changed or went."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._follow_wan)

    def _follow_wan(self) -> None:
        """The WAN's DHCP lease arrives after start and may change: follow its resolvers (on our loop)."""
        if self.server is None or self._config is None or not self.learns_from_wan(self._config):
            return  # nothing to follow
        found = self.upstreams(self._config)
        if found != self.server.forwarder.upstreams:
            log.info("upstream resolvers now %s", found or "none")
            self.server.forwarder.upstreams = found

    def listen_addresses(self, config) -> list[tuple[str, int]]:
        section: DnsConfig = config.dns
        if self.ctx.lab:
            return [("127.0.0.1", section.lab_port)]
        hosts = ["127.0.0.1"] + [str(iface.ip) for iface in self._interfaces(config)]
        return [(host, section.port) for host in hosts]

    @staticmethod
    def _interfaces(config) -> list[ipaddress.IPv4Interface]:
        found = [config.network.lan.address]
        if config.network.voice.enabled:
            found.append(config.network.voice.address)
        return found

    def zone(self, config) -> LocalZone:
        ifaces = self._interfaces(config)
        return LocalZone(config.system.domain, config.system.hostname, [i.ip for i in ifaces],
                         [i.network for i in ifaces], config.dns.records, config.dns.local_ttl,
                         collect(config, DnsName, self.ctx.lab))

    def _parts(self, config):
        section: DnsConfig = config.dns
        allowed = config.network.lan_networks() + list(section.allowed_networks) + [
            ipaddress.IPv4Network(n.cidr) for n in collect(config, Network)]
        return (self.zone(config), Cache(section.cache_size, section.max_cache_ttl, section.negative_ttl),
                Forwarder(self.upstreams(config)), allowed)

    # -- life cycle ----------------------------------------------------------------------------------
    async def start(self, config) -> None:
        self._listen = self.listen_addresses(config)
        server = DnsServer(*self._parts(config))
        try:
            self.addresses = await server.open(self._listen)
        except OSError as exc:
            raise ApplyError(f"DNS: cannot listen on {self._listen}: {exc}") from exc
        self.server = server
        self._loop = asyncio.get_running_loop()
        bus = lease_bus(self.ctx)
        for lease in bus.active():
            self._on_lease("bound", lease)
        self._unsubscribe = bus.subscribe(self._on_lease)
        self._config = config
        self._wan_unsubscribe = wan_lease_bus(self.ctx).subscribe(self._on_wan)  # in another process: the
        self._follow_wan()  # retained lease comes through the callback shortly
        log.info("DNS listening on %s, upstreams %s", self.addresses, server.forwarder.upstreams or "none")

    async def reload(self, config) -> None:
        if self.server is None or self.listen_addresses(config) != self._listen:
            await self.stop()
            await self.start(config)
            return
        self.server.configure(*self._parts(config))
        self._config = config
        for lease in lease_bus(self.ctx).active():
            self._on_lease("bound", lease)

    async def stop(self) -> None:
        if self._wan_unsubscribe:
            self._wan_unsubscribe()
            self._wan_unsubscribe = None
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self.server:
            self.server.close()
            self.server = None

    def _on_lease(self, event: str, lease: LeaseInfo) -> None:
        if self.server is None or not lease.hostname:
            return
        zone = self.server.zone
        if event == "bound":
            known = zone.dynamic.get(f"{lease.hostname.lower()}.{zone.domain}")
            why = zone.set_client(lease.hostname, lease.ip, lease.mac, lease.expires)
            if why is not None:
                lan_log.info("DHCP client name %r of %s not published: %s", lease.hostname, lease.mac, why)
            elif known is None or known.ip != lease.ip:
                self.server.zone_changed(lease.hostname)
        elif zone.drop_client(lease.hostname, lease.ip):
            self.server.zone_changed()
            for other in lease_bus(self.ctx).active():  # another live lease asked for the name: it gets it now
                if other.hostname.lower() == lease.hostname.lower() and other.mac != lease.mac:
                    self._on_lease("bound", other)
                    break

    # -- public API -----------------------------------------------------------------------------------
    def flush_cache(self) -> None:
        """Empty the answer cache; callable from any thread (the web admin's)."""
        server, loop = self.server, self._loop
        if server is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            server.cache.clear()
        else:
            loop.call_soon_threadsafe(server.cache.clear)

    def status(self) -> Status:
        if self.server is None:
            return Status("down", "not running")
        figures = {**self.server.counters, "cached": len(self.server.cache.entries),
                   "clients": len(self.server.zone.dynamic)}
        health = "ok" if self.server.forwarder.upstreams else "degraded"
        summary = f"{figures['cached']} cached answers, {figures['clients']} DHCP names"
        if health == "degraded":
            summary += "; no upstream resolver"
        return Status(health, summary, figures)


SERVICE = DnsService
