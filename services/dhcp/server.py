"""The DHCPv4 server: one UDP socket per served interface (SO_BINDTODEVICE), leases, options."""
from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import re
import socket
import struct
import time
from dataclasses import dataclass, field

from appliance.aio import close_watched
from appliance.leases import LeaseBus, LeaseInfo
from services.dhcp import packet as P
from services.dhcp.leases import Lease, LeaseTable
from services.dhcp.limits import QuietLog, RateLimiter
from services.dhcp.pool import AddressPool, OfferBook
from services.dhcp.probe import Prober

log = logging.getLogger("officebox.dhcp")
IP = ipaddress.IPv4Address
MAX_IN_FLIGHT = 512
SHED_DISCOVERS = 128  # this many messages in flight: new DISCOVERs wait, started handshakes finish first
MIN_OFFER_AGE = 1.0  # a pool with nothing free takes back offers older than this, oldest first


@dataclass
class Scope:
    """One served network: the box's address on it, its pools, reservations and options."""

    name: str  # lan | voice
    interface: str
    address: ipaddress.IPv4Interface
    pools: list[tuple[IP, IP, int]]  # start, end, lease time
    reservations: dict[str, tuple[IP, str]]  # mac -> (ip, hostname)
    options: dict[int, bytes]  # sent to every client
    phone_options: dict[int, bytes]  # sent to phones (vendor match, or everyone on the voice network)
    vendor_rules: list[tuple[str, dict[int, bytes]]] = field(default_factory=list)  # match -> options
    allocators: list[AddressPool] = field(default_factory=list)
    offers: OfferBook = field(default_factory=OfferBook)
    _reserved_ips: dict[IP, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reserved_ips = {ip: mac for mac, (ip, _) in self.reservations.items()}
        self.allocators = [AddressPool(start, end, lease) for start, end, lease in self.pools]

    def reserved_for(self, ip: IP) -> str | None:
        return self._reserved_ips.get(ip)

    def pool_of(self, ip: IP) -> AddressPool | None:
        return next((pool for pool in self.allocators if ip in pool), None)

    def lease_time(self, ip: IP, default: int) -> int:
        pool = self.pool_of(ip)
        return pool.lease_time if pool is not None else default

    def usable(self, ip: IP) -> bool:
        net = self.address.network
        return ip in net and ip not in (net.network_address, net.broadcast_address, self.address.ip)


SIOCSARP = 0x8955
ATF_COM = 0x02


def set_arp(sock: socket.socket, ip: IP, mac: bytes, interface: str) -> bool:
    """Add the neighbour entry ip -> mac on interface (struct arpreq); False if the kernel refuses."""
    protocol = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", 0, ip.packed)  # sockaddr_in
    hardware = struct.pack("=H6s8x", 1, mac)  # ARPHRD_ETHER
    request = protocol + hardware + struct.pack("=i", ATF_COM) + bytes(16) + interface.encode()[:15].ljust(16, b"\0")
    try:
        fcntl.ioctl(sock.fileno(), SIOCSARP, request)
    except OSError as exc:
        log.debug("no ARP entry for %s: %s; broadcasting", ip, exc)
        return False
    return True


def clean_hostname(raw: str | None) -> str:
    """A client-sent name as one DNS label, or "" if nothing usable is left."""
    if not raw:
        return ""
    label = re.sub(r"[^a-z0-9-]", "-", raw.split(".")[0].strip().lower())[:63].strip("-")
    return label


def owns(lease: Lease, request: P.Packet) -> bool:
    """RFC 2131 4.2: a lease is its client identifier's, or its MAC's when it was given without one."""
    return lease.key == request.client_key or (not lease.client_id and lease.mac == request.mac)


class DhcpServer:
    def __init__(self, table: LeaseTable, bus: LeaseBus, default_lease: int, probe: bool, probe_timeout: float,
                 quarantine: int, offer_hold: float = 10.0, client_per_minute: int = 60,
                 port_per_minute: int = 300) -> None:
        self.table = table
        self.bus = bus
        self.default_lease = default_lease
        self.probe, self.probe_timeout, self.quarantine_for = probe, probe_timeout, quarantine
        self.offer_hold = offer_hold
        self.per_client = RateLimiter(client_per_minute, burst=max(10, client_per_minute // 6))
        self.per_port = RateLimiter(port_per_minute, burst=max(20, port_per_minute // 6))
        self.quiet = QuietLog(log)
        self.scopes: list[Scope] = []
        self._socks: dict[str, socket.socket] = {}
        self._probers: dict[str, Prober] = {}
        self._tasks: set[asyncio.Task] = set()
        self.counters = {"received": 0, "malformed": 0, "limited": 0, "shed": 0, "offers": 0, "acks": 0, "naks": 0,
                         "declines": 0, "releases": 0, "informs": 0, "ignored": 0, "errors": 0, "conflicts": 0}

    # -- sockets ----------------------------------------------------------------------------------
    def open(self, scopes: list[Scope]) -> None:
        loop = asyncio.get_running_loop()
        self.scopes = scopes
        self._index_free(time.time())
        for scope in scopes:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, scope.interface.encode())
                sock.bind(("0.0.0.0", 67))
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self.close()
                raise OSError(f"cannot listen for DHCP on {scope.interface}: {exc}") from exc
            self._socks[scope.name] = sock
            loop.add_reader(sock.fileno(), self._on_readable, scope, sock)
            if self.probe:
                try:
                    self._probers[scope.name] = Prober(scope.interface)
                except OSError as exc:
                    log.warning("no conflict probe on %s: %s", scope.interface, exc)

    def _index_free(self, now: float) -> None:
        """Hand the table's free (or lapsed) records to their pools, oldest first; route later ones."""
        self.table.on_vacant = self._vacant
        taken = [int(ip) for ip in self.table.by_ip] + [int(ip) for ip in self.table.quarantined]
        for scope in self.scopes:
            for pool in scope.allocators:
                pool.exclude(taken)
        for lease in sorted(self.table.by_ip.values(), key=lambda x: x.expires):
            if not lease.active(now):
                self._vacant(lease.ip, lease.network, True)

    def _vacant(self, ip: IP, network: str, used: bool) -> None:
        scope = next((s for s in self.scopes if s.name == network), None)
        pool = scope.pool_of(ip) if scope is not None else None
        if pool is not None:
            pool.give_back(ip, used)

    def close(self) -> None:
        for sock in self._socks.values():
            close_watched(sock)
        self._socks.clear()
        for prober in self._probers.values():
            prober.close()
        self._probers.clear()
        for task in self._tasks:
            task.cancel()

    def _on_readable(self, scope: Scope, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, _src = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("DHCP receive on %s failed: %s", scope.interface, exc)
                return
            self.counters["received"] += 1
            try:
                request = P.parse(data)
            except P.MalformedPacket as exc:
                self.counters["malformed"] += 1
                self.quiet(logging.INFO, "malformed", "dropped a malformed DHCP packet on %s: %s",
                           scope.interface, exc)
                continue
            if not self._within_limits(request):
                continue
            busy = len(self._tasks)
            if busy >= MAX_IN_FLIGHT or (busy >= SHED_DISCOVERS and request.message_type == P.DISCOVER):
                self.counters["shed"] += 1
                self.quiet(logging.WARNING, "overload", "DHCP overloaded; dropping a %s",
                           P.TYPE_NAMES[request.message_type])
                continue
            task = asyncio.ensure_future(self._handle(scope, sock, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _within_limits(self, request: P.Packet) -> bool:
        now = time.monotonic()
        port = request.options.get(P.RELAY_AGENT)
        if port is not None and not self.per_port.allow((request.giaddr, port), now):
            self.counters["limited"] += 1
            self.quiet(logging.WARNING, "port-limit", "DHCP: too many messages from switch port %s; dropping",
                       port.hex())
            return False
        if not self.per_client.allow(request.mac, now):
            self.counters["limited"] += 1
            self.quiet(logging.WARNING, "client-limit", "DHCP: too many messages from %s; dropping", request.mac)
            return False
        return True

    async def _handle(self, scope: Scope, sock: socket.socket, request: P.Packet) -> None:
        try:
            if request.giaddr != P.ZERO:  # relayed: serve the scope the relay sits in
                scope = next((s for s in self.scopes if request.giaddr in s.address.network), None)
                if scope is None:
                    return
            kind = request.message_type
            if kind == P.DISCOVER:
                await self._discover(scope, sock, request)
            elif kind == P.REQUEST:
                await self._request(scope, sock, request)
            elif kind == P.DECLINE:
                await self._decline(scope, request)
            elif kind == P.RELEASE:
                await self._release(scope, request)
            elif kind == P.INFORM:
                self._inform(scope, sock, request)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters["errors"] += 1
            log.exception("DHCP %s from %s failed", P.TYPE_NAMES.get(request.message_type), request.mac)

    # -- address choice -----------------------------------------------------------------------------
    def _available(self, scope: Scope, ip: IP, request: P.Packet, now: float) -> bool:
        if not scope.usable(ip) or self.table.is_quarantined(ip, now):
            return False
        owner = scope.reserved_for(ip)
        if owner is not None and owner != request.mac:
            return False
        lease = self.table.by_ip.get(ip)
        return lease is None or not lease.active(now) or owns(lease, request)

    def _record(self, scope: Scope, request: P.Packet) -> Lease | None:
        """This client's newest lease record: by its identifier, else one its MAC got without one."""
        lease = self.table.for_client(scope.name, request.client_key)
        if lease is None and request.client_id:
            lease = self.table.for_client(scope.name, request.mac)
        return lease

    def _reap_offers(self, scope: Scope, now: float) -> None:
        """Offers whose hold is over leave the table at once: their addresses are free again."""
        for ip, client in scope.offers.expired(now - self.offer_hold):
            if self._offer_stands(ip, client):
                self.table.forget(ip)

    def _offer_stands(self, ip: IP, client: str) -> bool:
        lease = self.table.by_ip.get(ip)
        return lease is not None and lease.state == "offered" and lease.key == client

    def _choose(self, scope: Scope, request: P.Packet, now: float, avoid: set[IP]) -> IP | None:
        reserved = scope.reservations.get(request.mac)
        if reserved is not None:
            return reserved[0]
        self._reap_offers(scope, now)
        lease = self._record(scope, request)
        requested = request.address_option(P.REQUESTED_IP)
        for ip in ([lease.ip] if lease is not None else []) + ([requested] if requested is not None else []):
            if ip not in avoid and scope.pool_of(ip) is not None and self._available(scope, ip, request, now):
                return ip

        def never_used(ip: IP) -> bool:
            return ip not in self.table.by_ip and ip not in avoid and self._available(scope, ip, request, now)

        def available(ip: IP) -> bool:
            return ip not in avoid and self._available(scope, ip, request, now)

        for pool in scope.allocators:
            ip = pool.take(never_used, available)
            if ip is not None:
                return ip
        for pool in scope.allocators:  # nothing free: take back the oldest offer made to someone else
            ip = scope.offers.oldest(pool, request.client_key, now - MIN_OFFER_AGE, self._offer_stands)
            if ip is not None and ip not in avoid:
                self.table.forget(ip)
                return ip
        return None

    # -- messages -----------------------------------------------------------------------------------
    async def _discover(self, scope: Scope, sock: socket.socket, request: P.Packet) -> None:
        key, now = request.client_key, time.time()
        avoid: set[IP] = set()
        for _attempt in range(4):
            ip = self._choose(scope, request, now, avoid)
            if ip is None:
                self.quiet(logging.WARNING, f"exhausted-{scope.name}",
                           "DHCP pool of %s is exhausted; no offer for %s", scope.name, request.mac)
                return
            current = self.table.by_ip.get(ip)
            known = scope.reservations.get(request.mac) is not None or (
                current is not None and owns(current, request) and current.state == "bound" and current.active(now))
            if not known:
                self.table.put(Lease(ip=ip, mac=request.mac, network=scope.name, expires=now + self.offer_hold,
                                     state="offered", client_id=request.client_id))
                scope.offers.add(ip, key, now)
            prober = self._probers.get(scope.name)
            if known or prober is None or not await prober.alive(ip, self.probe_timeout):
                break
            self.counters["conflicts"] += 1
            log.warning("address %s answers a ping although it is free: quarantined", ip)
            self.table.quarantine(ip, now + self.quarantine_for)
            avoid.add(ip)
            now = time.time()
        else:
            return
        lease_time = scope.lease_time(ip, self.default_lease)
        self._reply(scope, sock, request, P.OFFER, ip, lease_time)
        self.counters["offers"] += 1

    async def _request(self, scope: Scope, sock: socket.socket, request: P.Packet) -> None:
        server_id = request.address_option(P.SERVER_ID)
        requested = request.address_option(P.REQUESTED_IP)
        mac = request.mac
        if server_id is not None and server_id != scope.address.ip:
            lease = self.table.by_ip.get(requested) if requested else None
            if lease is not None and owns(lease, request) and lease.state == "offered":
                self.table.forget(lease.ip)  # the client took another server's offer
            return
        ip = requested if requested is not None else request.ciaddr
        if ip == P.ZERO:
            return
        now = time.time()
        reserved = scope.reservations.get(mac)
        if server_id is None and requested is not None and request.ciaddr == P.ZERO:  # INIT-REBOOT (4.3.2)
            if ip not in scope.address.network:
                self._nak(scope, sock, request, f"address {ip} is not on this network")
                return
            if reserved is None and self._record(scope, request) is None:
                self.counters["ignored"] += 1  # no record of this client: another server's, stay silent
                return
        if reserved is not None:
            ok = ip == reserved[0] and scope.usable(ip)
        else:
            ok = scope.pool_of(ip) is not None and self._available(scope, ip, request, now)
        if not ok:
            self._nak(scope, sock, request, f"address {ip} is not available to you")
            return
        lease_time = scope.lease_time(ip, self.default_lease)
        previous = self.table.by_ip.get(ip)
        hostname = (reserved[1] if reserved and reserved[1] else clean_hostname(request.text_option(P.HOSTNAME))
                    or (previous.hostname if previous is not None and owns(previous, request) else ""))
        lease = Lease(ip=ip, mac=mac, network=scope.name, hostname=hostname, expires=now + lease_time,
                      client_id=request.client_id)
        older = self._record(scope, request)
        if older is not None and older.ip != ip and older.key != lease.key:
            self.table.forget(older.ip)  # the MAC's record without identifier: this one replaces it
        self.table.put(lease)
        await self.table.commit()  # on disk before the client hears about it
        self.bus.publish("bound", LeaseInfo(ip, mac, hostname, lease.expires, scope.name))
        self._reply(scope, sock, request, P.ACK, ip, lease_time)
        self.counters["acks"] += 1

    async def _decline(self, scope: Scope, request: P.Packet) -> None:
        ip = request.address_option(P.REQUESTED_IP)
        if ip is None or request.address_option(P.SERVER_ID) not in (None, scope.address.ip):
            return
        lease = self.table.by_ip.get(ip)
        if lease is None or not owns(lease, request):
            return
        self.counters["declines"] += 1
        self.quiet(logging.WARNING, "decline", "%s declined %s (in use by another host): quarantined",
                   request.mac, ip)
        self.table.quarantine(ip, time.time() + self.quarantine_for)
        self.bus.publish("gone", LeaseInfo(ip, lease.mac, lease.hostname, lease.expires, lease.network))
        await self.table.commit()

    async def _release(self, scope: Scope, request: P.Packet) -> None:
        ip = request.ciaddr
        lease = self.table.by_ip.get(ip)
        if lease is None or not owns(lease, request) or lease.state != "bound":
            return
        self.counters["releases"] += 1
        lease.expires = time.time()
        self.table.free(ip)
        self.bus.publish("gone", LeaseInfo(ip, lease.mac, lease.hostname, lease.expires, lease.network))
        await self.table.commit()

    def _inform(self, scope: Scope, sock: socket.socket, request: P.Packet) -> None:
        if request.ciaddr == P.ZERO:
            return
        self.counters["informs"] += 1
        self._reply(scope, sock, request, P.ACK, P.ZERO, None)

    # -- replies -------------------------------------------------------------------------------------
    def _options_for(self, scope: Scope, request: P.Packet, lease_time: int | None) -> dict[int, bytes]:
        options = dict(scope.options)
        vendor = (request.text_option(P.VENDOR_CLASS) or "").lower()
        matched = [opts for match, opts in scope.vendor_rules if match in vendor] if vendor else []
        if matched or scope.name == "voice":
            options.update(scope.phone_options)
        for opts in matched[:1]:
            options.update(opts)
        reserved = scope.reservations.get(request.mac)
        if reserved is not None and reserved[1]:
            options[P.HOSTNAME] = reserved[1].encode()
        if lease_time is not None:
            options[P.LEASE_TIME] = lease_time.to_bytes(4, "big")
            options[P.RENEWAL_TIME] = (lease_time // 2).to_bytes(4, "big")
            options[P.REBINDING_TIME] = (lease_time * 7 // 8).to_bytes(4, "big")
        return options

    @staticmethod
    def _echoed(request: P.Packet) -> dict[int, bytes]:
        """Client identifier (RFC 6842) and relay agent information (RFC 3046) go back as they came."""
        return {code: request.options[code] for code in (P.CLIENT_ID, P.RELAY_AGENT) if code in request.options}

    def _reply(self, scope: Scope, sock: socket.socket, request: P.Packet, kind: int, yiaddr: IP,
               lease_time: int | None) -> None:
        options = self._options_for(scope, request, lease_time)
        options[P.MESSAGE_TYPE] = bytes((kind,))
        options[P.SERVER_ID] = scope.address.ip.packed
        options.update(self._echoed(request))
        reply = P.Packet(op=P.BOOTREPLY, xid=request.xid, flags=request.flags, ciaddr=request.ciaddr, yiaddr=yiaddr,
                         siaddr=scope.address.ip, giaddr=request.giaddr, chaddr=request.chaddr, options=options)
        self._send(sock, request, P.build(reply, request.requested_options()), nak=False, yiaddr=yiaddr,
                   interface=scope.interface)

    def _nak(self, scope: Scope, sock: socket.socket, request: P.Packet, why: str) -> None:
        self.counters["naks"] += 1
        self.quiet(logging.INFO, "nak", "NAK to %s: %s", request.mac, why)
        options = {P.MESSAGE_TYPE: bytes((P.NAK,)), P.SERVER_ID: scope.address.ip.packed, P.MESSAGE: why.encode(),
                   **self._echoed(request)}
        reply = P.Packet(op=P.BOOTREPLY, xid=request.xid, flags=request.flags | P.BROADCAST_FLAG,
                         giaddr=request.giaddr, chaddr=request.chaddr, options=options)
        self._send(sock, request, P.build(reply), nak=True)

    def _send(self, sock: socket.socket, request: P.Packet, data: bytes, nak: bool, yiaddr: IP = P.ZERO,
              interface: str = "") -> None:
        """RFC 2131 4.1: to the relay, to ciaddr, unicast to the new address (an ARP entry is added
        first, as the client cannot answer ARP yet) or, if asked or impossible, broadcast."""
        if request.giaddr != P.ZERO:
            target = (str(request.giaddr), 67)
        elif request.ciaddr != P.ZERO and not nak:
            target = (str(request.ciaddr), 68)
        elif (not nak and yiaddr != P.ZERO and not request.flags & P.BROADCAST_FLAG
              and set_arp(sock, yiaddr, request.chaddr[:6], interface)):
            target = (str(yiaddr), 68)
        else:
            target = ("255.255.255.255", 68)
        try:
            sock.sendto(data, target)
        except OSError as exc:
            log.warning("DHCP reply to %s failed: %s", target, exc)

    # -- housekeeping -----------------------------------------------------------------------------------
    async def expire(self) -> None:
        now = time.time()
        for scope in self.scopes:
            self._reap_offers(scope, now)
        for ip in self.table.end_quarantines(now):
            lease_network = next((s.name for s in self.scopes if s.pool_of(ip) is not None), "")
            self._vacant(ip, lease_network, False)
        for lease in self.table.expire(now):
            if lease.state == "free":
                self.bus.publish("gone", LeaseInfo(lease.ip, lease.mac, lease.hostname, lease.expires, lease.network))
        await self.table.commit()
