"""A small HTTP/1.1 server (plain and TLS) for phone files (GET/HEAD only), with optional basic or digest
auth: one shared account, or one account per phone (user = its MAC digits, its own secret)."""
from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import logging
import re
import secrets
import ssl
import time
from urllib.parse import unquote, urlsplit

log = logging.getLogger("officebox.provisioning")
MAX_HEAD = 8192
TIMEOUT = 10.0
MAX_CLIENTS = 512  # connections at once, all sources; past it (or MAX_PER_SOURCE from one host): 503
MAX_PER_SOURCE = 32
NONCE_LIFE = 300
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 503: "Service Unavailable"}
REALM = "OfficeBox provisioning"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Auth:
    """check() answers who is asking: None (refused), "" (no authentication configured), a user name."""

    def __init__(self, kind: str, user: str, password: str, phones: dict[str, str] | None = None) -> None:
        self.kind, self.user, self.password = kind, user, password
        self.phones = phones or {}  # per-phone: MAC digits -> secret
        self._key = secrets.token_bytes(16)

    def nonce(self) -> str:
        stamp = str(int(time.time()))
        return stamp + "." + hmac.new(self._key, stamp.encode(), "sha256").hexdigest()[:32]

    def _nonce_ok(self, nonce: str) -> bool:
        stamp, _, mac = nonce.partition(".")
        good = hmac.new(self._key, stamp.encode(), "sha256").hexdigest()[:32]
        return stamp.isdigit() and hmac.compare_digest(mac, good) and time.time() - int(stamp) < NONCE_LIFE

    def challenge(self) -> str:
        if self.kind == "basic":
            return f'Basic realm="{REALM}"'
        return f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{self.nonce()}"'

    def _password(self, user: str) -> str | None:
        if self.kind == "per-phone":
            return self.phones.get(user.lower())
        return self.password if hmac.compare_digest(user, self.user) else None

    def check(self, method: str, header: str | None) -> str | None:
        if self.kind == "none":
            return ""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if self.kind == "basic" and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            good = self._password(user)
            return user if good is not None and hmac.compare_digest(password.encode(), good.encode()) else None
        if self.kind in ("digest", "per-phone") and scheme.lower() == "digest":
            fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', value)}
            need = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce", "qop")
            if any(k not in fields for k in need) or fields["qop"] != "auth" or not self._nonce_ok(fields["nonce"]):
                return None
            user, password = fields["username"], self._password(fields["username"])
            if password is None:
                return None
            ha1 = _md5(f"{user}:{REALM}:{password}")
            ha2 = _md5(f"{method}:{fields['uri']}")
            good = _md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
            return user.lower() if hmac.compare_digest(fields["response"], good) else None
        return None


class HttpServer:
    """fetch(path, client, identity, transport) -> (status, content type, body); record(client, path,
    status, transport) is told of every answer, refusals included."""

    def __init__(self, fetch, auth: Auth, record=None) -> None:
        self.fetch, self.auth, self.record = fetch, auth, record
        self.servers: list[asyncio.base_events.Server] = []
        self.max_clients, self.max_per_source = MAX_CLIENTS, MAX_PER_SOURCE
        self.open_by_source: collections.Counter[str] = collections.Counter()

    async def open(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        transport = "https" if tls else "http"

        async def client(reader, writer):
            await self._client(reader, writer, transport)
        server = await asyncio.start_server(client, host, port, reuse_address=True, limit=MAX_HEAD, ssl=tls,
                                            ssl_handshake_timeout=TIMEOUT if tls else None)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        client = writer.get_extra_info("peername")[0]
        crowded = (self.open_by_source.total() >= self.max_clients
                   or self.open_by_source[client] >= self.max_per_source)
        self.open_by_source[client] += 1
        try:
            await self._answer(reader, writer, transport, client, crowded)
        finally:
            self.open_by_source[client] -= 1
            if not self.open_by_source[client]:
                del self.open_by_source[client]

    async def _answer(self, reader, writer, transport: str, client: str, crowded: bool) -> None:
        path = ""
        try:
            if crowded:
                raise OverflowError
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            # in a worker thread: a phone book of thousands of contacts takes a while to render
            status, ctype, body, extra, method, path = await asyncio.to_thread(self._respond, head, client, transport)
        except OverflowError:
            status, ctype, body, extra, method = 503, "text/plain", b"busy\n", {"Retry-After": "10"}, "GET"
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            status, ctype, body, extra, method = 400, "text/plain", b"bad request\n", {}, "GET"
        except TimeoutError:
            status, ctype, body, extra, method = 408, "text/plain", b"timeout\n", {}, "GET"
        except (ConnectionError, ssl.SSLError):
            writer.close()
            return
        if self.record is not None:
            self.record(client, path, status, transport)
        headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Connection": "close",
                   "Cache-Control": "no-store", **extra}
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"] + [f"{k}: {v}" for k, v in headers.items()]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _respond(self, head: bytes, client: str, transport: str):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("bad request line")
        method, target = parts[0], parts[1]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        path = unquote(urlsplit(target).path)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n", {"Allow": "GET, HEAD"}, method, path
        identity = self.auth.check(method, headers.get("authorization"))
        if identity is None:
            challenge = {"WWW-Authenticate": self.auth.challenge()}
            return 401, "text/plain", b"authentication required\n", challenge, method, path
        status, ctype, body = self.fetch(path, client, identity, transport)
        return status, ctype, body, {}, method, path
