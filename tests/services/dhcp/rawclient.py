"""A hand-driven DHCP client for the message types real clients rarely send on demand
(DECLINE, RELEASE, INFORM, a REQUEST for another server's offer, an INIT-REBOOT for a wrong address)."""
from __future__ import annotations

import ipaddress
import os
import socket

from services.dhcp import packet as P
from tests.services.dhcp.helpers import in_netns


def _parse_reply(data: bytes) -> P.Packet | None:
    if len(data) < P.HEADER.size + 4 or data[0] != P.BOOTREPLY:
        return None
    request_like = bytes((P.BOOTREQUEST,)) + data[1:]  # reuse the request parser for the layout
    try:
        return P.parse(request_like)
    except P.MalformedPacket:
        return None


class RawClient:
    def __init__(self, host, interface: str, mac: str, source: str = "0.0.0.0", port: int = 68) -> None:
        self.mac = bytes.fromhex(mac.replace(":", ""))
        self.xid = int.from_bytes(os.urandom(4), "big")  # sockets share broadcasts: xids must differ
        with in_netns(host):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            self.sock.bind((source, port))  # port 67 with a source address: a relay agent
        self.sock.settimeout(2)

    def close(self) -> None:
        self.sock.close()

    def send(self, kind: int, ciaddr: str = "0.0.0.0", to: str = "255.255.255.255", giaddr: str = "0.0.0.0",
             **options: bytes) -> None:
        self.xid += 1
        opts = {P.MESSAGE_TYPE: bytes((kind,))}
        for name, value in options.items():
            opts[getattr(P, name.upper())] = value
        packet = P.Packet(xid=self.xid, flags=P.BROADCAST_FLAG, ciaddr=ipaddress.IPv4Address(ciaddr),
                          giaddr=ipaddress.IPv4Address(giaddr), chaddr=self.mac + bytes(10), options=opts)
        self.sock.sendto(P.build(packet), (to, 67))

    def receive(self) -> P.Packet | None:
        """The next reply to our last message, or None after the timeout."""
        try:
            while True:
                reply = _parse_reply(self.sock.recv(2048))
                if reply is not None and reply.xid == self.xid:
                    return reply
        except TimeoutError:
            return None

    def exchange(self, kind: int, **kw) -> P.Packet | None:
        self.send(kind, **kw)
        return self.receive()

    def lease(self, **options: bytes) -> tuple[ipaddress.IPv4Address, P.Packet]:
        """DISCOVER, OFFER, REQUEST, ACK (each with `options`); returns the address and the ACK."""
        offer = self.exchange(P.DISCOVER, **options)
        assert offer is not None and offer.message_type == P.OFFER
        ack = self.exchange(P.REQUEST, requested_ip=offer.yiaddr.packed, server_id=offer.options[P.SERVER_ID],
                            **options)
        assert ack is not None and ack.message_type == P.ACK and ack.yiaddr == offer.yiaddr
        return ack.yiaddr, ack
