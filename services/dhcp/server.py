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
from services.dhcp import packet as P
from services.dhcp.bus import LeaseBus, LeaseInfo
from services.dhcp.leases import Lease, LeaseTable
from services.dhcp.probe import Prober

log = logging.getLogger("officebox.dhcp")
IP = ipaddress.IPv4Address
OFFER_HOLD = 60.0  # seconds an offered address is kept for the client
MAX_IN_FLIGHT = 512


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
    _hint: dict[int, int] = field(default_factory=dict)
    _reserved_ips: dict[IP, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reserved_ips = {ip: mac for mac, (ip, _) in self.reservations.items()}

    def reserved_for(self, ip: IP) -> str | None:
        return self._reserved_ips.get(ip)

    def pool_of(self, ip: IP) -> int | None:
        for i, (start, end, _) in enumerate(self.pools):
            if start <= ip <= end:
                return i
        return None

    def lease_time(self, ip: IP, default: int) -> int:
        i = self.pool_of(ip)
        return self.pools[i][2] if i is not None else default

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


class DhcpServer:
    def __init__(self, table: LeaseTable, bus: LeaseBus, default_lease: int, probe: bool, probe_timeout: float,
                 quarantine: int) -> None:
        self.table = table
        self.bus = bus
        self.default_lease = default_lease
        self.probe, self.probe_timeout, self.quarantine_for = probe, probe_timeout, quarantine
        self.scopes: list[Scope] = []
        self._socks: dict[str, socket.socket] = {}
        self._probers: dict[str, Prober] = {}
        self._tasks: set[asyncio.Task] = set()
        self.counters = {"received": 0, "malformed": 0, "offers": 0, "acks": 0, "naks": 0, "declines": 0,
                         "releases": 0, "informs": 0, "errors": 0, "conflicts": 0}

    # -- sockets ----------------------------------------------------------------------------------
    def open(self, scopes: list[Scope]) -> None:
        loop = asyncio.get_running_loop()
        self.scopes = scopes
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
                log.info("dropped a malformed DHCP packet on %s: %s", scope.interface, exc)
                continue
            if len(self._tasks) >= MAX_IN_FLIGHT:
                log.warning("DHCP overloaded; dropping a %s", P.TYPE_NAMES[request.message_type])
                continue
            task = asyncio.ensure_future(self._handle(scope, sock, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
    def _available(self, scope: Scope, ip: IP, mac: str, now: float) -> bool:
        if not scope.usable(ip) or self.table.is_quarantined(ip, now):
            return False
        owner = scope.reserved_for(ip)
        if owner is not None and owner != mac:
            return False
        holder = self.table.holder(ip, now)
        return holder is None or holder == mac

    def _choose(self, scope: Scope, mac: str, requested: IP | None, now: float, avoid: set[IP]) -> IP | None:
        reserved = scope.reservations.get(mac)
        if reserved is not None:
            return reserved[0]
        lease = self.table.for_mac(scope.name, mac)
        candidates = [lease.ip] if lease is not None else []
        candidates += [requested] if requested is not None else []
        for ip in candidates:
            if ip not in avoid and scope.pool_of(ip) is not None and self._available(scope, ip, mac, now):
                return ip
        for i, (start, end, _) in enumerate(scope.pools):  # never used addresses first, from a moving hint
            size = int(end) - int(start) + 1
            first = scope._hint.get(i, 0)
            for k in range(size):
                ip = IP(int(start) + (first + k) % size)
                if ip not in self.table.by_ip and ip not in avoid and self._available(scope, ip, mac, now):
                    scope._hint[i] = (first + k + 1) % size
                    return ip
        free = sorted((x for x in list(self.table.by_ip.values()) if x.state == "free" and x.network == scope.name),
                      key=lambda x: x.expires)
        for old in free:
            if old.ip not in avoid and scope.pool_of(old.ip) is not None and self._available(scope, old.ip, mac, now):
                return old.ip
        return None

    # -- messages -----------------------------------------------------------------------------------
    async def _discover(self, scope: Scope, sock: socket.socket, request: P.Packet) -> None:
        mac, now = request.mac, time.time()
        avoid: set[IP] = set()
        for _attempt in range(4):
            ip = self._choose(scope, mac, request.address_option(P.REQUESTED_IP), now, avoid)
            if ip is None:
                log.warning("DHCP pool of %s is exhausted; no offer for %s", scope.name, mac)
                return
            current = self.table.by_ip.get(ip)
            known = scope.reservations.get(mac) is not None or (
                current is not None and current.mac == mac and current.state in ("bound", "offered"))
            if not known:
                self.table.put(Lease(ip=ip, mac=mac, network=scope.name, expires=now + OFFER_HOLD, state="offered"))
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
            if lease is not None and lease.mac == mac and lease.state == "offered":
                self.table.forget(lease.ip)  # the client took another server's offer
            return
        ip = requested if requested is not None else request.ciaddr
        if ip == P.ZERO:
            return
        now = time.time()
        reserved = scope.reservations.get(mac)
        if reserved is not None:
            ok = ip == reserved[0] and scope.usable(ip)
        else:
            ok = scope.pool_of(ip) is not None and self._available(scope, ip, mac, now)
        if not ok:
            self._nak(scope, sock, request, f"address {ip} is not available to you")
            return
        lease_time = scope.lease_time(ip, self.default_lease)
        previous = self.table.by_ip.get(ip)
        hostname = (reserved[1] if reserved and reserved[1] else clean_hostname(request.text_option(P.HOSTNAME))
                    or (previous.hostname if previous is not None and previous.mac == mac else ""))
        lease = Lease(ip=ip, mac=mac, network=scope.name, hostname=hostname, expires=now + lease_time)
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
        if lease is None or lease.mac != request.mac:
            return
        self.counters["declines"] += 1
        log.warning("%s declined %s (in use by another host): quarantined", request.mac, ip)
        self.table.quarantine(ip, time.time() + self.quarantine_for)
        self.bus.publish("gone", LeaseInfo(ip, lease.mac, lease.hostname, lease.expires, lease.network))
        await self.table.commit()

    async def _release(self, scope: Scope, request: P.Packet) -> None:
        ip = request.ciaddr
        lease = self.table.by_ip.get(ip)
        if lease is None or lease.mac != request.mac or lease.state != "bound":
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

    def _reply(self, scope: Scope, sock: socket.socket, request: P.Packet, kind: int, yiaddr: IP,
               lease_time: int | None) -> None:
        options = self._options_for(scope, request, lease_time)
        options[P.MESSAGE_TYPE] = bytes((kind,))
        options[P.SERVER_ID] = scope.address.ip.packed
        reply = P.Packet(op=P.BOOTREPLY, xid=request.xid, flags=request.flags, ciaddr=request.ciaddr, yiaddr=yiaddr,
                         siaddr=scope.address.ip, giaddr=request.giaddr, chaddr=request.chaddr, options=options)
        self._send(sock, request, P.build(reply, request.requested_options()), nak=False, yiaddr=yiaddr,
                   interface=scope.interface)

    def _nak(self, scope: Scope, sock: socket.socket, request: P.Packet, why: str) -> None:
        self.counters["naks"] += 1
        log.info("NAK to %s: %s", request.mac, why)
        options = {P.MESSAGE_TYPE: bytes((P.NAK,)), P.SERVER_ID: scope.address.ip.packed, P.MESSAGE: why.encode()}
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
        for lease in self.table.expire(time.time()):
            if lease.state == "free":
                self.bus.publish("gone", LeaseInfo(lease.ip, lease.mac, lease.hostname, lease.expires, lease.network))
        await self.table.commit()
