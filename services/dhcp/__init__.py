"""DHCP: hands out addresses, names and phone provisioning options on the LAN (and the voice VLAN).

Leases live in state_dir("dhcp"): leases.json and its journal (on disk before each ACK). Other
services learn about leases through the appliance bus (appliance/leases.py), never through the file.

On the box it serves network.lan.interface and, with the voice VLAN on, "<lan>.<vlan id>" (the
interface the network setup creates). Lab mode never touches the host: DHCP is off by default and,
when switched on, serves only `dhcp.lab_interface` (e.g. a veth in a test namespace).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from appliance.apply import FieldError
from appliance.contributions import DhcpOption, collect
from appliance.leases import LeaseInfo, lease_bus
from appliance.service import ApplyError, Service, Status
from services.dhcp import packet as P
from services.dhcp.config import DhcpConfig
from services.dhcp.leases import LeaseTable
from services.dhcp.server import DhcpServer, Scope

log = logging.getLogger("officebox.dhcp")
IP = ipaddress.IPv4Address
EXPIRY_INTERVAL = 30.0


def default_pool(net: ipaddress.IPv4Network) -> tuple[IP, IP]:
    """.100-.199 in a /24; the upper half of the hosts of any other network."""
    hosts = int(net.num_addresses) - 2
    if net.prefixlen == 24:
        return net.network_address + 100, net.network_address + 199
    if hosts < 4:
        return net.network_address + 1, net.broadcast_address - 1
    return net.network_address + 1 + hosts // 2, net.broadcast_address - 1


def networks(config) -> dict[str, ipaddress.IPv4Interface]:
    nets = {"lan": config.network.lan.address}
    if config.network.voice.enabled:
        nets["voice"] = config.network.voice.address
    return nets


def contributed(config, code: int, box: IP) -> list[str]:
    """The values other services ask for in option `code` (appliance.contributions), "{box}" filled in."""
    return [o.value.replace("{box}", str(box)) for o in collect(config, DhcpOption) if o.code == code and not o.vendor]


def ntp_servers(config, box: IP) -> list[IP]:
    """Option 42: the configured servers, else the time servers services contribute (the box's NTP)."""
    if config.dhcp.ntp_servers:
        return list(config.dhcp.ntp_servers)
    return [ipaddress.IPv4Address(v) for v in contributed(config, P.NTP_SERVERS, box)]


def provisioning_url(config, box: IP) -> str:
    """Option 66: the configured URL, else the one the provisioning service contributes."""
    if config.dhcp.provisioning_url:
        return config.dhcp.provisioning_url
    return next(iter(contributed(config, P.TFTP_SERVER_NAME, box)), "")


class DhcpService(Service):
    name = "dhcp"
    title = "DHCP server"
    Config = DhcpConfig
    depends_on = ("system", "network", "provisioning", "ntp")
    lab_enabled = False

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.server: DhcpServer | None = None
        self.table = LeaseTable(ctx.state_dir("dhcp") / "leases.json")
        self.bus = lease_bus(ctx)
        self._expiry: asyncio.Task | None = None
        self._note = ""

    # -- configuration --------------------------------------------------------------------------------
    def validate(self, config) -> list[FieldError]:
        section: DhcpConfig = config.dhcp
        errors: list[FieldError] = []
        nets = networks(config)
        for i, pool in enumerate(section.pools):
            iface = nets.get(pool.network)
            if iface is None:
                errors.append(FieldError(f"dhcp.pools.{i}.network", f"pool {i + 1}: the {pool.network} network "
                                                                       "is not enabled"))
                continue
            net = iface.network
            inner = (net.network_address, net.broadcast_address)
            if pool.start not in net or pool.end not in net or pool.start in inner or pool.end in inner:
                errors.append(FieldError(f"dhcp.pools.{i}.start",
                                         f"pool {i + 1}: {pool.start}-{pool.end} must lie inside {iface.network}"))
            elif pool.start <= iface.ip <= pool.end:
                errors.append(FieldError(f"dhcp.pools.{i}.start", f"pool {i + 1}: {pool.start}-{pool.end} "
                                         f"contains the box's own address {iface.ip}"))
        for pool_a in range(len(section.pools)):
            for pool_b in range(pool_a + 1, len(section.pools)):
                a, b = section.pools[pool_a], section.pools[pool_b]
                if a.start <= b.end and b.start <= a.end:
                    errors.append(FieldError(f"dhcp.pools.{pool_b}.start",
                                             f"pools {pool_a + 1} and {pool_b + 1} overlap"))
        for j, r in enumerate(section.reservations):
            if not any(r.ip in iface.network for iface in nets.values()):
                errors.append(FieldError(f"dhcp.reservations.{j}.ip", f"reservation {r.mac}: {r.ip} is not inside a "
                                                                      "LAN network"))
            elif r.ip in [iface.ip for iface in nets.values()]:
                errors.append(FieldError(f"dhcp.reservations.{j}.ip", f"reservation {r.mac}: {r.ip} is the box's "
                                                                      "own address"))
        return errors

    def interfaces(self, config) -> dict[str, str]:
        """Network name -> interface served ({} in lab mode without lab_interface)."""
        section: DhcpConfig = config.dhcp
        if self.ctx.lab:
            return {"lan": section.lab_interface} if section.lab_interface else {}
        found = {"lan": config.network.lan.interface}
        if config.network.voice.enabled:
            found["voice"] = f"{config.network.lan.interface}.{config.network.voice.vlan_id}"
        return found

    def scopes(self, config) -> list[Scope]:
        section: DhcpConfig = config.dhcp
        nets = networks(config)
        result = []
        for name, interface in self.interfaces(config).items():
            iface = nets[name]
            box = iface.ip
            pools = [(p.start, p.end, p.lease_time or section.lease_time) for p in section.pools if p.network == name]
            if not pools:  # a network without a pool of its own gets the automatic one
                start, end = default_pool(iface.network)
                pools = [(start, end, section.lease_time)] if not start <= box <= end else []
            options = {
                P.SUBNET_MASK: iface.netmask.packed,
                P.ROUTER: P.addresses(*(section.routers or [box])),
                P.DNS_SERVERS: P.addresses(*(section.dns_servers or [box])),
                P.DOMAIN_NAME: config.system.domain.encode(),
                P.BROADCAST_ADDRESS: iface.network.broadcast_address.packed,
            }
            ntp = ntp_servers(config, box)
            if ntp:
                options[P.NTP_SERVERS] = P.addresses(*ntp)
            phone: dict[int, bytes] = {P.TFTP_SERVER_ADDRESS: box.packed}
            url = provisioning_url(config, box)
            if url:
                phone[P.TFTP_SERVER_NAME] = url.encode()
            rules = []
            for rule in section.vendor_rules:
                extra: dict[int, bytes] = {}
                if rule.provisioning_url:
                    extra[P.TFTP_SERVER_NAME] = rule.provisioning_url.encode()
                if rule.vendor_options_hex:
                    extra[P.VENDOR_SPECIFIC] = bytes.fromhex(rule.vendor_options_hex)
                rules.append((rule.match.lower(), extra))
            reservations = {r.mac: (r.ip, r.hostname or "") for r in section.reservations if r.ip in iface.network}
            result.append(Scope(name, interface, iface, pools, reservations, options, phone, rules))
        return result

    # -- life cycle ----------------------------------------------------------------------------------
    async def start(self, config) -> None:
        section: DhcpConfig = config.dhcp
        if not self.table.by_ip:
            self.table.load()
        server = DhcpServer(self.table, self.bus, section.lease_time, section.conflict_probe,
                            section.probe_timeout, section.quarantine, section.offer_hold,
                            section.client_messages_per_minute, section.port_messages_per_minute)
        scopes = self.scopes(config)
        try:
            server.open(scopes)
        except OSError as exc:
            raise ApplyError(f"DHCP: {exc}") from exc
        self.server = server
        self._note = "" if scopes else "lab mode: no interface set (dhcp.lab_interface)"
        now = time.time()
        for lease in self.table.bound(now):
            self.bus.publish("bound", LeaseInfo(lease.ip, lease.mac, lease.hostname, lease.expires, lease.network))
        self._expiry = asyncio.create_task(self._expire_loop(), name="dhcp-expiry")
        log.info("DHCP serving %s", ", ".join(f"{s.name} on {s.interface}" for s in scopes) or "nothing")

    async def reload(self, config) -> None:
        counters = self.server.counters if self.server else None
        await self._close()
        await self.start(config)
        if counters:
            self.server.counters.update(counters)

    async def _close(self) -> None:
        if self._expiry:
            self._expiry.cancel()
            self._expiry = None
        if self.server:
            self.server.close()
            self.server = None
        await self.table.commit(compact=True)  # a clean stop leaves the snapshot complete

    async def stop(self) -> None:
        await self._close()
        for lease in self.bus.active():
            self.bus.publish("gone", lease)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL)
            try:
                await self.server.expire()
            except Exception:
                log.exception("lease expiry failed")

    # -- public API (web admin) ---------------------------------------------------------------------------
    def leases(self) -> list[dict]:
        """The current bound leases (newest data, a copy)."""
        now = time.time()
        return [{"ip": str(item.ip), "mac": item.mac, "hostname": item.hostname, "network": item.network,
                 "expires": item.expires, "remaining": int(item.expires - now)} for item in self.table.bound(now)]

    def status(self) -> Status:
        if self.server is None:
            return Status("down", "not running")
        bound = len(self.table.bound(time.time()))
        summary = self._note or f"{bound} active lease{'s' if bound != 1 else ''}"
        return Status("ok", summary, {"leases": bound, **self.server.counters})


SERVICE = DhcpService
