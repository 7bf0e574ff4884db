"""Address conflict probe: an ICMP echo to a candidate address before it is offered (RFC 2131 3.1.2)."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct

from appliance.aio import close_watched

log = logging.getLogger("officebox.dhcp")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Prober:
    """One raw ICMP socket on an interface; `await alive(ip, timeout)` is True if the address answers."""

    def __init__(self, interface: str) -> None:
        self.ident = os.getpid() & 0xFFFF
        self._seq = 0
        self._waiting: dict[tuple[ipaddress.IPv4Address, int], asyncio.Future] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        close_watched(self.sock)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result(False)

    def _on_readable(self) -> None:
        for _ in range(64):
            try:
                data, (src, _port) = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 28:
                continue
            ihl = (data[0] & 0x0F) * 4
            icmp = data[ihl:ihl + 8]
            if len(icmp) < 8 or icmp[0] != 0:  # echo reply only
                continue
            ident, seq = struct.unpack("!HH", icmp[4:8])
            fut = self._waiting.get((ipaddress.IPv4Address(src), seq))
            if ident == self.ident and fut is not None and not fut.done():
                fut.set_result(True)

    async def alive(self, ip: ipaddress.IPv4Address, timeout: float) -> bool:
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        payload = b"officebox-dhcp-probe"
        head = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, checksum(head + payload), self.ident, seq) + payload
        fut = asyncio.get_running_loop().create_future()
        self._waiting[(ip, seq)] = fut
        try:
            self.sock.sendto(packet, (str(ip), 0))
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, OSError):
            return False
        finally:
            self._waiting.pop((ip, seq), None)
