"""DHCPv4 messages (RFC 2131 format, RFC 2132 options): parse untrusted bytes, build replies."""
from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass, field

MAGIC = b"\x63\x82\x53\x63"
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes, then the magic cookie
BOOTREQUEST, BOOTREPLY = 1, 2
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
BROADCAST_FLAG = 0x8000

# option codes used here
SUBNET_MASK, ROUTER, DNS_SERVERS, HOSTNAME, DOMAIN_NAME, NTP_SERVERS, VENDOR_SPECIFIC = 1, 3, 6, 12, 15, 42, 43
REQUESTED_IP, LEASE_TIME, MESSAGE_TYPE, SERVER_ID, PARAM_LIST, MESSAGE = 50, 51, 53, 54, 55, 56
RENEWAL_TIME, REBINDING_TIME, VENDOR_CLASS, CLIENT_ID, TFTP_SERVER_NAME, TFTP_SERVER_ADDRESS = 58, 59, 60, 61, 66, 150
PAD, END, OVERLOAD = 0, 255, 52
BROADCAST_ADDRESS, RELAY_AGENT = 28, 82
ZERO = ipaddress.IPv4Address(0)
ZERO_BYTES = bytes(4)


def client_key(client_id: str, mac: str) -> str:
    """Who a client is (RFC 2131 4.2): its identifier (hex) when it sends one, else its MAC."""
    return f"id:{client_id}" if client_id else mac


class MalformedPacket(ValueError):
    """The bytes are not a usable DHCP request; the server drops them."""


@dataclass
class Packet:
    op: int = BOOTREQUEST
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    xid: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: ipaddress.IPv4Address = ZERO
    yiaddr: ipaddress.IPv4Address = ZERO
    siaddr: ipaddress.IPv4Address = ZERO
    giaddr: ipaddress.IPv4Address = ZERO
    chaddr: bytes = b"\0" * 16
    options: dict[int, bytes] = field(default_factory=dict)

    @functools.cached_property
    def mac(self) -> str:
        return self.chaddr[:6].hex(":")

    @property
    def message_type(self) -> int | None:
        value = self.options.get(MESSAGE_TYPE)
        return value[0] if value and len(value) == 1 else None

    def address_option(self, code: int) -> ipaddress.IPv4Address | None:
        value = self.options.get(code)
        return ipaddress.IPv4Address(value) if value is not None and len(value) == 4 else None

    def text_option(self, code: int) -> str | None:
        value = self.options.get(code)
        return value.rstrip(b"\0").decode("utf-8", "replace") if value else None

    @property
    def client_id(self) -> str:
        """Option 61 as hex ("" if absent): with it, the client is this identifier, not its MAC."""
        return self.options.get(CLIENT_ID, b"").hex()

    @property
    def client_key(self) -> str:
        return client_key(self.client_id, self.mac)

    def requested_options(self) -> list[int]:
        return list(self.options.get(PARAM_LIST, b""))


def _read_options(data: bytes, into: dict[int, bytes]) -> None:
    i = 0
    while i < len(data):
        code = data[i]
        if code == END:
            return
        if code == PAD:
            i += 1
            continue
        if i + 1 >= len(data):
            raise MalformedPacket("option without length")
        length = data[i + 1]
        value = data[i + 2:i + 2 + length]
        if len(value) != length:
            raise MalformedPacket(f"option {code} runs past the end of the packet")
        into[code] = into.get(code, b"") + value  # RFC 3396: repeated options concatenate
        i += 2 + length


def _address(raw: bytes) -> ipaddress.IPv4Address:
    return ZERO if raw == ZERO_BYTES else ipaddress.IPv4Address(raw)  # most are 0.0.0.0: no object needed


def parse(data: bytes) -> Packet:
    if len(data) < HEADER.size + 4:
        raise MalformedPacket(f"too short ({len(data)} bytes)")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     bootfile) = HEADER.unpack_from(data)
    if data[HEADER.size:HEADER.size + 4] != MAGIC:
        raise MalformedPacket("no DHCP magic cookie")
    if op != BOOTREQUEST:
        raise MalformedPacket(f"op {op} is not a request")
    if htype != 1 or hlen != 6:
        raise MalformedPacket(f"unsupported hardware type {htype}/{hlen}")
    options: dict[int, bytes] = {}
    _read_options(data[HEADER.size + 4:], options)
    overload = options.get(OVERLOAD, b"\0")[:1] or b"\0"
    if overload[0] & 1:
        _read_options(bootfile, options)
    if overload[0] & 2:
        _read_options(sname, options)
    packet = Packet(op, htype, hlen, hops, xid, secs, flags, _address(ciaddr), _address(yiaddr), _address(siaddr),
                    _address(giaddr), chaddr, options)
    if packet.message_type not in TYPE_NAMES:
        raise MalformedPacket("missing or unknown DHCP message type")
    return packet


def encode_option(code: int, value: bytes) -> bytes:
    """One option; values over 255 bytes are split into several (RFC 3396)."""
    if not value:
        return bytes((code, 0))
    return b"".join(bytes((code, len(value[i:i + 255]))) + value[i:i + 255] for i in range(0, len(value), 255))


def build(packet: Packet, order: list[int] | None = None) -> bytes:
    """Pack a reply; message type and server id first, then `order`, then the rest."""
    head = HEADER.pack(packet.op, packet.htype, packet.hlen, packet.hops, packet.xid, packet.secs, packet.flags,
                       packet.ciaddr.packed, packet.yiaddr.packed, packet.siaddr.packed, packet.giaddr.packed,
                       packet.chaddr, b"", b"")
    codes = [MESSAGE_TYPE, SERVER_ID] + [c for c in order or [] if c != RELAY_AGENT]
    codes += sorted(c for c in packet.options if c not in codes and c != RELAY_AGENT)
    codes.append(RELAY_AGENT)  # echoed relay agent information goes last (RFC 3046 2.2)
    body = b"".join(encode_option(c, packet.options[c]) for c in dict.fromkeys(codes) if c in packet.options)
    out = head + MAGIC + body + bytes((END,))
    return out + b"\0" * max(0, 300 - len(out))  # BOOTP minimum size, some clients insist


def addresses(*addrs: ipaddress.IPv4Address) -> bytes:
    return b"".join(a.packed for a in addrs)
