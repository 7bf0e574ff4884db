"""A small HTTP/1.1 server for the JSON API: bounded request heads and bodies, keep-alive with an idle
timeout, JSON answers, and the upgrade to a WebSocket (RFC 6455, through the `websockets` package's
sans-I/O protocol) on the same port."""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger("officebox.cti.http")
MAX_HEAD = 8192
KEEP_ALIVE = 30.0  # seconds an idle HTTP connection stays open
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           411: "Length Required", 413: "Content Too Large", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable"}
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Allow-Methods": "GET, POST, PUT, OPTIONS", "Access-Control-Max-Age": "600"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code or REASONS.get(status, "error").lower().replace(" ", "_")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    raw: bytes = b""  # the head as received (the WebSocket handshake reads it again)

    def json(self) -> dict:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not JSON: {exc}", "bad_json") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object", "bad_json")
        return data


Response = tuple[int, object]  # (status, a JSON-able body or bytes)
Handler = Callable[[Request], Awaitable[Response]]
Upgrade = Callable[[Request, "WebSocket"], Awaitable[None]]


def _parse_head(raw: bytes) -> Request:
    try:
        lines = raw.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400, "not an HTTP request") from None
    if not version.startswith("HTTP/1."):
        raise HttpError(400, "HTTP/1.x only")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise HttpError(400, "a bad header line")
        headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    return Request(method.upper(), url.path, dict(parse_qsl(url.query)[:20]), headers, raw=raw)


def encode(status: int, body: object, keep: bool) -> bytes:
    if isinstance(body, bytes):
        data, kind = body, "application/json"
    elif body is None:
        data, kind = b"", ""
    else:
        data, kind = json.dumps(body, separators=(",", ":")).encode(), "application/json"
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}",
            "Cache-Control: no-store", "X-Content-Type-Options: nosniff",
            f"Connection: {'keep-alive' if keep else 'close'}", *(f"{k}: {v}" for k, v in CORS.items())]
    if kind:
        head.append(f"Content-Type: {kind}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler, upgrade: Upgrade,
                max_body: int) -> None:
    """Requests of one connection until it closes, idles or errs."""
    try:
        while True:
            request = None
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEP_ALIVE)
            except (asyncio.LimitOverrunError, ValueError):
                writer.write(encode(431, {"error": "request head too large", "code": "too_large"}, False))
                return
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                request = _parse_head(raw)
                if request.headers.get("upgrade", "").lower() == "websocket":
                    await upgrade(request, WebSocket(reader, writer, max_body))
                    return
                if "chunked" in request.headers.get("transfer-encoding", "").lower():
                    raise HttpError(411, "send a Content-Length, not chunks")
                length = request.headers.get("content-length", "0")
                if not length.isdigit():
                    raise HttpError(400, "a bad Content-Length")
                if int(length) > max_body:
                    raise HttpError(413, f"the body is larger than {max_body} bytes", "too_large")
                request.body = await asyncio.wait_for(reader.readexactly(int(length)), 10.0) if int(length) else b""
                status, body = (204, None) if request.method == "OPTIONS" else await handler(request)
            except HttpError as exc:
                status, body = exc.status, {"error": str(exc), "code": exc.code}
            keep = request is not None and request.headers.get("connection", "").lower() != "close"
            keep = keep and status < 500 and status not in (413, 431)
            writer.write(encode(status, body, keep))
            await writer.drain()
            if not keep:
                return
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        log.debug("JSON API connection ends: %r", exc)
    finally:
        writer.close()


def text_frame(text: str) -> bytes:
    """A server's text frame (unmasked): the same bytes for every WebSocket without extensions, so an
    event sent to many is encoded once."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class WebSocket:
    """One WebSocket after the upgrade: text messages in, text messages out, bounded both ways."""

    WRITE_BUFFER = 1 << 20  # bytes a slow reader may leave queued before it is dropped

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_size: int) -> None:
        self.reader, self.writer = reader, writer
        self.proto = ServerProtocol(max_size=max_size)
        self.pending: deque[str] = deque()
        self.closed = False
        self.too_slow = False  # closed for not reading its messages
        self._out: list[bytes] = []  # messages of this loop turn, not yet written
        self._queued = 0
        self._scheduled = False

    def accept(self, request: Request) -> bool:
        """Answers the handshake; False (after a 400) if it is not a valid WebSocket opening."""
        self.proto.receive_data(request.raw)
        events = self.proto.events_received()
        ws_request = events[0] if events and isinstance(events[0], WsRequest) else \
            WsRequest(request.path, Headers(request.headers))
        response = self.proto.accept(ws_request)
        self.proto.send_response(response)
        self._flush()
        return response.status_code == 101

    def _flush(self) -> None:
        """What the protocol has to send (handshake, pongs, close), after the messages queued before it."""
        self._write_out()
        for data in self.proto.data_to_send():
            if data:
                self.writer.write(data)
            else:
                self.closed = True
                self.writer.close()

    def _write_out(self) -> None:
        """The messages queued since the last loop turn, in one write."""
        self._scheduled = False
        if self._out:
            data, self._out, self._queued = b"".join(self._out), [], 0
            if not self.writer.transport.is_closing():
                self.writer.write(data)

    def send(self, text: str, frame: bytes | None = None) -> bool:
        """Queues a message (`frame`: it already encoded by text_frame, for a broadcast); False if the peer
        is gone or reads too slowly (then it is closed). Messages of one loop turn go out in one write."""
        if self.closed or self.proto.state is not State.OPEN:
            return False
        transport = self.writer.transport
        if transport.is_closing():  # the peer went away: nothing more can be written
            self.closed = True
            return False
        if transport.get_write_buffer_size() + self._queued > self.WRITE_BUFFER:
            self.too_slow = True
            self.close(1008, "too slow: events are not read")
            return False
        if frame is None or self.proto.extensions:
            self.proto.send_text(text.encode())
            frame = b"".join(self.proto.data_to_send())
        self._out.append(frame)
        self._queued += len(frame)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write_out)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed and self.proto.state is State.OPEN:
            self.proto.send_close(code, reason)
            self._flush()
        self.closed = True
        self.writer.close()

    async def recv(self, timeout: float) -> str | None:
        """The next text message; None when the connection closed (or stayed silent past `timeout`)."""
        while not self.pending:
            if self.closed or self.proto.state is State.CLOSED:
                return None
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except (TimeoutError, ConnectionError):
                self.close(1001, "idle")
                return None
            if not data:
                self.proto.receive_eof()
                self._flush()
                self.closed = True
                return None
            self.proto.receive_data(data)
            for frame in self.proto.events_received():
                if frame.opcode is Opcode.TEXT and frame.fin:
                    try:
                        self.pending.append(frame.data.decode())
                    except UnicodeDecodeError:
                        self.proto.fail(1007, "not UTF-8")
                elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    self.proto.fail(1003, "one text frame per message")
            self._flush()
            if self.proto.state is State.CLOSED or self.proto.close_expected():
                self.closed = True
                self.writer.close()
        return self.pending.popleft()
