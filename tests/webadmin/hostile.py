"""Hostile web clients for the web server test and benchmark, and an admin signing in over HTTPS.

    with Hostile("127.0.0.1", port, 200):       # idle TCP, TLS never finished, slowloris headers, slow body
        seconds = sign_in("127.0.0.1", port, "admin", "secret")

Hostile connections the server closes are opened again (as real attackers do) until the block ends.
Loopback only; every loop is bounded by the block's lifetime and a deadline.
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
import urllib.parse

KINDS = ("idle", "half-tls", "slowloris", "slow-body")
SLOW_BODY_HEAD = (b"POST /login HTTP/1.1\r\nHost: officebox\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 60000\r\n\r\nlogin=admin&password=")
TRICKLE_EVERY = 1.0
MAX_SECONDS = 300
OPEN_TIMEOUT = 3.0


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _client_hello() -> bytes:
    """The first flight of a real TLS client, to send and then never continue."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _client_context().wrap_bio(incoming, outgoing, server_hostname="officebox")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Hostile:
    def __init__(self, host: str, port: int, count: int = 200) -> None:
        self.addr = (host, port)
        self.count = count
        self.socks: list[tuple[str, socket.socket | None]] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="hostile", daemon=True)
        self._hello = _client_hello()

    def _open(self, kind: str) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.addr, timeout=OPEN_TIMEOUT)
            if kind == "half-tls":
                sock.sendall(self._hello)
            elif kind in ("slowloris", "slow-body"):
                sock = _client_context().wrap_socket(sock, server_hostname="officebox")
                sock.sendall(b"GET /login HTTP/1.1\r\nHost: officebox\r\n" if kind == "slowloris" else SLOW_BODY_HEAD)
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def __enter__(self) -> Hostile:
        kinds = sorted((KINDS[i % len(KINDS)] for i in range(self.count)), key=KINDS[::-1].index)
        self.socks = [(kind, self._open(kind)) for kind in kinds]  # TLS first: some servers stall after
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for _, sock in self.socks:
            if sock is not None:
                sock.close()

    def open_count(self) -> int:
        return sum(1 for _, sock in self.socks if sock is not None)

    def _closed_by_server(self, sock: socket.socket) -> bool:
        try:
            return sock.recv(4096) == b""
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True

    def _trickle(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.wait(TRICKLE_EVERY) and time.monotonic() < deadline:
            for i, (kind, sock) in enumerate(self.socks):
                if self._stop.is_set():
                    return
                if sock is not None and kind in ("slowloris", "slow-body"):
                    try:
                        sock.send(b"X-Slow: 1\r\n" if kind == "slowloris" else b"x")
                    except (ssl.SSLWantWriteError, BlockingIOError):
                        pass
                    except OSError:
                        sock.close()
                        sock = None
                if sock is None or self._closed_by_server(sock):
                    if sock is not None:
                        sock.close()
                    self.socks[i] = (kind, self._open(kind))
                    self.reopened += 1


def sign_in(host: str, port: int, login: str, password: str, timeout: float = 20.0) -> tuple[int, str, float]:
    """GET the sign-in form, POST the password: (status, Location, seconds taken)."""
    started = time.monotonic()
    conn = http.client.HTTPSConnection(host, port, context=_client_context(), timeout=timeout)
    try:
        conn.request("GET", "/login")
        form = conn.getresponse()
        page = form.read().decode()
        cookie = form.getheader("Set-Cookie", "").split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf_token": token, "login": login, "password": password})
        conn.request("POST", "/login", body=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheader("Location", ""), time.monotonic() - started
    finally:
        conn.close()
