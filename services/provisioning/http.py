"""A small HTTP/1.1 server for phone files (GET/HEAD only), with optional basic or digest auth."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from urllib.parse import unquote, urlsplit

log = logging.getLogger("officebox.provisioning")
MAX_HEAD = 8192
TIMEOUT = 10.0
NONCE_LIFE = 300
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout"}
REALM = "OfficeBox provisioning"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Auth:
    def __init__(self, kind: str, user: str, password: str) -> None:
        self.kind, self.user, self.password = kind, user, password
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

    def check(self, method: str, header: str | None) -> bool:
        if self.kind == "none":
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if self.kind == "basic" and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.user) & hmac.compare_digest(password.encode(), self.password.encode())
        if self.kind == "digest" and scheme.lower() == "digest":
            fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', value)}
            need = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce", "qop")
            if any(k not in fields for k in need) or fields["qop"] != "auth" or not self._nonce_ok(fields["nonce"]):
                return False
            ha1 = _md5(f"{self.user}:{REALM}:{self.password}")
            ha2 = _md5(f"{method}:{fields['uri']}")
            good = _md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
            return hmac.compare_digest(fields["username"], self.user) & hmac.compare_digest(fields["response"], good)
        return False


class HttpServer:
    def __init__(self, fetch, auth: Auth) -> None:
        self.fetch, self.auth = fetch, auth
        self.servers: list[asyncio.base_events.Server] = []

    async def open(self, host: str, port: int) -> int:
        server = await asyncio.start_server(self._client, host, port, reuse_address=True, limit=MAX_HEAD)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.get_extra_info("peername")[0]
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            status, ctype, body, extra, method = self._respond(head, client)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            status, ctype, body, extra, method = 400, "text/plain", b"bad request\n", {}, "GET"
        except TimeoutError:
            status, ctype, body, extra, method = 408, "text/plain", b"timeout\n", {}, "GET"
        except ConnectionError:
            writer.close()
            return
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

    def _respond(self, head: bytes, client: str):
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
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n", {"Allow": "GET, HEAD"}, method
        if not self.auth.check(method, headers.get("authorization")):
            return 401, "text/plain", b"authentication required\n", {"WWW-Authenticate": self.auth.challenge()}, method
        path = unquote(urlsplit(target).path)
        status, ctype, body = self.fetch(path, client)
        return status, ctype, body, {}, method
