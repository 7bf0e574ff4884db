"""A bounded SIP capture for the installer (the web admin's SIP trace page).

The transport calls `tap(data, peer, direction)` for every SIP message it receives or sends. Nothing is
kept unless a capture runs; a capture ends by itself after its seconds or its packet count, whichever
comes first, and keeps at most MAX_PACKETS messages of at most MAX_MESSAGE bytes. Digest answers
(Authorization / Proxy-Authorization response= and cnonce=) are masked before they are stored, so no
trace, view or download ever holds them. Exports: readable text and pcap (raw IPv4 + UDP).
"""
from __future__ import annotations

import ipaddress
import re
import struct
import time
from collections import deque
from collections.abc import Callable

MAX_SECONDS = 600
MAX_PACKETS = 2000
MAX_MESSAGE = 16 * 1024
EXTENSION = re.compile(r"^[0-9*#+]{1,20}$")
_AUTH_HEADER = re.compile(rb"(?im)^(?:proxy-)?authorization\s*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*")
_SECRET_PARAM = re.compile(rb'(?i)\b(response|cnonce)(\s*=\s*)("[^"\r\n]*"|[^,\s]+)')
MASK = b'"********"'


def mask(data: bytes) -> bytes:
    """The message with the response and cnonce of every (Proxy-)Authorization header (folded lines
    included) replaced by MASK."""
    def header(m: re.Match) -> bytes:
        return _SECRET_PARAM.sub(lambda p: p.group(1) + p.group(2) + MASK, m.group(0))
    return _AUTH_HEADER.sub(header, data)


class SipTrace:
    def __init__(self) -> None:
        self.messages: deque[dict] = deque(maxlen=MAX_PACKETS)
        self.running = False
        self.started = self.until = 0.0
        self.limit = 0
        self.extension = self.ip = ""
        self._uri = b""

    def start(self, seconds: int, packets: int, extension: str = "", ip: str = "") -> dict:
        """A new capture (the previous one is dropped); raises ValueError on a bad limit or filter."""
        if not 1 <= int(seconds) <= MAX_SECONDS:
            raise ValueError(f"the duration is 1 to {MAX_SECONDS} seconds")
        if not 1 <= int(packets) <= MAX_PACKETS:
            raise ValueError(f"the packet count is 1 to {MAX_PACKETS}")
        if extension and not EXTENSION.match(extension):
            raise ValueError("the extension is digits (and * # +) only")
        if ip:
            ip = str(ipaddress.ip_address(ip))  # ValueError on anything else
        self.messages.clear()
        self.started = time.time()
        self.until = self.started + int(seconds)
        self.limit, self.extension, self.ip = int(packets), extension, ip
        self._uri = f"sip:{extension}@".encode() if extension else b""
        self.running = True
        return self.state()

    def stop(self) -> dict:
        self.running = False
        return self.state()

    def state(self) -> dict:
        if self.running and time.time() > self.until:
            self.running = False
        return {"running": self.running, "started": self.started, "until": self.until, "limit": self.limit,
                "extension": self.extension, "ip": self.ip, "captured": len(self.messages)}

    def tap(self, data: bytes, peer: tuple, direction: str) -> None:
        """The transport's hook: direction "in" (from peer) or "out" (to peer)."""
        if not self.running:
            return
        now = time.time()
        if now > self.until or len(self.messages) >= self.limit:
            self.running = False
            return
        if (self.ip and peer[1] != self.ip) or (self._uri and self._uri not in data[:4096]):
            return
        self.messages.append({"time": now, "direction": direction, "transport": peer[0], "ip": peer[1],
                              "port": peer[2], "text": mask(bytes(data[:MAX_MESSAGE])).decode("utf-8", "replace")})

    def snapshot(self) -> dict:
        """{"state": state(), "messages": [{time, direction, transport, ip, port, first_line, text}]}."""
        rows = [{**m, "first_line": m["text"].split("\r\n", 1)[0][:200]} for m in self.messages]
        return {"state": self.state(), "messages": rows}

    def text(self) -> str:
        out = []
        for m in self.messages:
            arrow = "<-" if m["direction"] == "in" else "->"
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m["time"])) + f".{int(m['time'] * 1000) % 1000:03d}"
            out.append(f"{stamp} UTC {arrow} {m['transport']}:{m['ip']}:{m['port']}\n{m['text'].rstrip()}\n")
        return "\n".join(out)

    def pcap(self, local_ip: Callable[[str], str], local_port: int) -> bytes:
        """The capture as a pcap file (LINKTYPE_RAW): each message one IPv4/UDP datagram between the box's
        address towards that peer (local_ip(peer)) and the peer; TCP and WebSocket messages too, so any SIP
        reader decodes them."""
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
        for m in self.messages:
            if ":" in m["ip"]:
                continue  # IPv4 only (the box's SIP listener)
            payload = m["text"].encode("utf-8")
            ends = [(local_ip(m["ip"]), local_port), (m["ip"], m["port"])]
            (src, sport), (dst, dport) = ends if m["direction"] == "out" else ends[::-1]
            udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
            head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                               ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
            packet = head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + udp
            sec, frac = divmod(m["time"], 1)
            out.append(struct.pack("<IIII", int(sec), int(frac * 1e6), len(packet), len(packet)) + packet)
        return b"".join(out)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
