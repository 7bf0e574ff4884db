"""A CSTA XML client written from the standards for the tests, sharing nothing with the server: ECMA-323
(edition 3) messages, ECMA-354 application sessions, and the 8-byte header of CSTA XML over TCP (0x0000,
the total length big-endian, a 4-digit ASCII invoke id; 9999 for events)."""
from __future__ import annotations

import socket
import ssl
import struct
import time
import xml.etree.ElementTree as ET

CSTA = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ACSE = "http://www.ecma-international.org/standards/ecma-354/appl_session"


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Message:
    def __init__(self, invoke: str, raw: bytes) -> None:
        self.invoke, self.raw = invoke, raw
        self.root = ET.fromstring(raw)
        self.name = local(self.root.tag)

    def value(self, *path: str) -> str:
        node = self.root
        for name in path:
            node = next((c for c in node if local(c.tag) == name), None)
            if node is None:
                return ""
        return (node.text or "").strip()

    def all(self, name: str) -> list[str]:
        return [(e.text or "").strip() for e in self.root.iter() if local(e.tag) == name]

    def __repr__(self) -> str:
        return f"<{self.invoke} {self.raw.decode()[:300]}>"


class CstaClient:
    def __init__(self, port: int, tls: bool = False, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the box's own certificate
            sock = context.wrap_socket(sock)
        self.sock = sock
        self.timeout = timeout
        self.invoke = 0
        self.events: list[Message] = []
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "CstaClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- wire -------------------------------------------------------------------------------------
    def send_raw(self, body: bytes, invoke: str | None = None) -> str:
        if invoke is None:
            self.invoke = self.invoke % 9998 + 1
            invoke = f"{self.invoke:04d}"
        self.sock.sendall(b"\x00\x00" + struct.pack(">H", 8 + len(body)) + invoke.encode() + body)
        return invoke

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read(self, timeout: float | None = None) -> Message:
        self.sock.settimeout(timeout or self.timeout)
        header = self._read(8)
        assert header[:2] == b"\x00\x00", header
        (length,) = struct.unpack(">H", header[2:4])
        return Message(header[4:8].decode(), self._read(length - 8))

    def request(self, xml: str) -> Message:
        invoke = self.send_raw(('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode())
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self.read(max(0.1, deadline - time.monotonic()))
            if msg.invoke == invoke:
                return msg
            self.events.append(msg)
        raise TimeoutError("no response")

    def wait_event(self, name: str, timeout: float = 10.0, keep: bool = False, **fields: str) -> Message:
        """The first event `name` (seen or to come) whose fields (local element names) have these values;
        taken out of `events` unless `keep`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.name == name and all(v in ev.all(k) for k, v in fields.items()):
                    return ev if keep else self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} {fields}; have {[e.name for e in self.events]}")
            try:
                self.events.append(self.read(left))
            except TimeoutError:
                continue

    def drain(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(self.read(left))
            except TimeoutError:
                break

    # -- ECMA-354 / ECMA-323 messages ----------------------------------------------------------------
    def start_session(self, user: str, password: str) -> Message:
        return self.request(
            f'<StartApplicationSession xmlns="{ACSE}"><applicationInfo><applicationID>tests</applicationID>'
            f"<applicationSpecificInfo><userName>{user}</userName><password>{password}</password>"
            f"</applicationSpecificInfo></applicationInfo><requestedProtocolVersions>"
            f"<protocolVersion>{CSTA}</protocolVersion></requestedProtocolVersions>"
            f"<requestedSessionDuration>60</requestedSessionDuration></StartApplicationSession>")

    def csta(self, name: str, inner: str = "") -> Message:
        return self.request(f'<{name} xmlns="{CSTA}">{inner}</{name}>')

    def monitor(self, device: str) -> str:
        msg = self.csta("MonitorStart", f"<monitorObject><deviceObject>{device}</deviceObject></monitorObject>")
        assert msg.name == "MonitorStartResponse", msg
        return msg.value("monitorCrossRefID")


def conn(tag: str, call: str, device: str) -> str:
    return f"<{tag}><callID>{call}</callID><deviceID>{device}</deviceID></{tag}>"
