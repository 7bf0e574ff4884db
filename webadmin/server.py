"""The web admin's HTTPS server: cheroot's bounded WSGI thread pool behind a non-blocking front.

Plain cheroot does the TLS handshake on its accept loop (one silent client stalls every other for the
socket timeout) and hands each new connection to a worker thread, where an idle or slowloris client
holds the thread. Here the selector thread does the handshake and buffers the request head without ever
blocking; only a connection with a complete head (and its body, up to READ_AHEAD_BODY) reaches one of
the WORKERS threads. A connection has TIMEOUT seconds from accept (or from the first byte of its next
request) to deliver that; when more than MAX_WAITING connections wait (or PER_SOURCE from one address),
the oldest waiting one is closed. Larger bodies (uploads) stream in a worker, at most BIG_BODIES at once,
so slow uploads can never take every worker; past that the client gets 503.
"""
from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import ssl
import threading
import time
from pathlib import Path

from cheroot import errors, server, wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger("officebox.webadmin")
WORKERS = 8  # threads running Flask views
TIMEOUT = 10  # s: handshake + request head, keep-alive idle, each blocking read/write of a worker
MAX_HEAD = 32 * 1024  # request line + headers; cheroot answers 431/414 beyond
READ_AHEAD_BODY = 64 * 1024  # request bodies up to this (every form but uploads) are read by the front
BIG_BODIES = WORKERS - 2
MAX_WAITING = 512
PER_SOURCE = 128
SHUTDOWN_TIMEOUT = 3  # s for the workers to finish, then their sockets are shut
BACKLOG = 128
RECV_CHUNK = 16384
READY, WAIT, CLOSED = "ready", "wait", "closed"
CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
HEAD_END = re.compile(rb"\r?\n\r?\n")
EXPECT = re.compile(rb"^expect[ \t]*:", re.IGNORECASE | re.MULTILINE)
BUSY_UPLOADS = b"The box is receiving other uploads. Please try again in a moment.\n"
PLAIN_HTTP_ANSWER = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: 47\r\n\r\nThis is an HTTPS port: open https:// instead.\r\n")


class _WithoutServerHeader(list):
    """Response headers that drop the `Server: Cheroot/...` banner cheroot adds."""

    def append(self, item: tuple[bytes, bytes]) -> None:
        if item[0].lower() != b"server":
            super().append(item)


class _Request(server.HTTPRequest):
    def send_headers(self) -> None:
        self.outheaders = _WithoutServerHeader(self.outheaders)
        if self.status[:3] == b"503":  # shedding load: close instead of reading the rest of the body
            self.close_connection = True
        super().send_headers()


class _Connection(server.HTTPConnection):
    RequestHandlerClass = _Request

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fresh = True  # not yet counted against the waiting limits
        self.handshaken = False
        self.waiting_since: float | None = None


class DeferredHandshakeAdapter(BuiltinSSLAdapter):
    """TLS without a handshake at accept: the server drives it without blocking."""

    def __init__(self, cert: Path | str, key: Path | str) -> None:
        super().__init__(str(cert), str(key))
        self.context = self.new_context(cert, key)

    @staticmethod
    def new_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        return context

    def wrap(self, sock):
        try:
            return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), {}
        except OSError as exc:  # the client left already
            raise errors.FatalSSLAlert(*exc.args) from exc


def _request_buffered(reader) -> bool:
    """The head is in, and so is the body unless it is an upload (a worker streams those)."""
    buffered = reader._read_buf[reader._read_pos:].lstrip(b"\r\n")
    end = HEAD_END.search(buffered, 0, MAX_HEAD + 4)
    if end is None:
        return len(buffered) > MAX_HEAD
    if EXPECT.search(buffered, 0, end.start()):  # the client waits for "100 Continue": an upload
        return True
    length = CONTENT_LENGTH.search(buffered, 0, end.start())
    body = int(length.group(1)) if length else 0
    return body > READ_AHEAD_BODY or len(buffered) - end.end() >= body


class _BoundedUploads:
    """WSGI middleware: at most BIG_BODIES requests with a large, chunked or expected body at once."""

    def __init__(self, app) -> None:
        self.app = app
        self._slots = threading.BoundedSemaphore(BIG_BODIES)

    def __call__(self, environ, start_response):
        big = (int(environ.get("CONTENT_LENGTH") or 0) > READ_AHEAD_BODY or "HTTP_EXPECT" in environ
               or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower())
        if not big:
            return self.app(environ, start_response)
        if not self._slots.acquire(blocking=False):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Retry-After", "10")])
            return [BUSY_UPLOADS]
        try:
            return _ReleasedOnClose(self.app(environ, start_response), self._slots.release)
        except BaseException:
            self._slots.release()
            raise


class _ReleasedOnClose:
    def __init__(self, body, release) -> None:
        self.body, self.release = body, release

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.release()


def _append(reader, data: bytes) -> None:
    """Put bytes read ahead into the connection's reader (cheroot's pure-Python BufferedReader)."""
    with reader._read_lock:
        reader._read_buf = reader._read_buf[reader._read_pos:] + data
        reader._read_pos = 0


class _Wakeup:
    """A socket pair in cheroot's selector, looking enough like a connection to be skipped by its expiry."""

    last_used = float("inf")
    remote_addr = None

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._selector = None

    def arm(self, selector) -> None:
        self._selector = selector
        selector.register(self._read.fileno(), selectors.EVENT_READ, data=self)

    def ring(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._write.send(b"\0")

    def drain(self) -> None:
        """On the selector thread, which unregistered it before calling process_conn."""
        with contextlib.suppress(OSError):
            while self._read.recv(4096):
                pass
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.register(self._read.fileno(), selectors.EVENT_READ, data=self)

    def close(self) -> None:
        self._read.close()
        self._write.close()


class AdminServer(wsgi.Server):
    ConnectionClass = _Connection

    def __init__(self, host: str, port: int, app, cert: Path | str, key: Path | str) -> None:
        self.app = app
        super().__init__((host, port), _BoundedUploads(app), numthreads=WORKERS, max=WORKERS, timeout=TIMEOUT,
                         shutdown_timeout=SHUTDOWN_TIMEOUT, request_queue_size=BACKLOG)
        self.ssl_adapter = DeferredHandshakeAdapter(cert, key)
        self.max_request_header_size = MAX_HEAD
        self.keep_alive_conn_limit = MAX_WAITING
        self._wakeup = _Wakeup()

    def prepare(self) -> None:
        super().prepare()
        self._wakeup.arm(self._connections._selector)

    def put_conn(self, conn: _Connection) -> None:
        """A worker hands a kept-alive connection back: the selector watches it from now, not from its
        next wake-up (cheroot's select() only sees it after up to expiration_interval)."""
        super().put_conn(conn)
        self._wakeup.ring()

    @property
    def port(self) -> int:
        return self.bind_addr[1]

    def reload_certificate(self, cert: Path | str, key: Path | str) -> None:
        """New connections get the new certificate; open ones keep theirs."""
        self.ssl_adapter.context = DeferredHandshakeAdapter.new_context(cert, key)

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        log.log(level, "web server: %s", msg, exc_info=traceback)

    # -- the non-blocking front ------------------------------------------------------------------
    def process_conn(self, conn: _Connection) -> None:
        """Called by cheroot for a new or readable connection: to a worker only with a whole head."""
        if conn is self._wakeup:
            self._wakeup.drain()
            return
        if conn.waiting_since is None:
            conn.waiting_since = time.time()
        if conn.fresh:
            conn.fresh = False
            self._make_room(conn)
        state = self._read_ahead(conn)
        if state == READY:
            conn.waiting_since = None
            super().process_conn(conn)
        elif state == WAIT and self.ready:
            conn.last_used = conn.waiting_since  # cheroot's expiry closes it TIMEOUT s after it began
            self._connections._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)
        else:
            conn.close()

    def _read_ahead(self, conn: _Connection) -> str:
        sock = conn.socket
        try:
            sock.settimeout(0)
            if isinstance(sock, ssl.SSLSocket) and not conn.handshaken:
                sock.do_handshake()  # a failure raises after OpenSSL sent the client its alert
                conn.handshaken = True
                conn.ssl_env = self.ssl_adapter.get_environ(sock)
            while not _request_buffered(conn.rfile):
                data = sock.recv(RECV_CHUNK)
                if not data:
                    return CLOSED
                _append(conn.rfile, data)
            return READY
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return WAIT
        except ssl.SSLError as exc:
            if exc.reason == "HTTP_REQUEST":  # plain HTTP on the HTTPS port gets a word, not an alert
                with contextlib.suppress(OSError):
                    socket.socket.send(sock, PLAIN_HTTP_ANSWER)
            log.debug("TLS handshake with %s failed: %s", conn.remote_addr, exc)
            return CLOSED
        except OSError as exc:
            log.debug("web client %s dropped before its request: %s", conn.remote_addr, exc)
            return CLOSED
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.timeout)

    def _make_room(self, conn: _Connection) -> None:
        """Runs on the selector thread for each accepted connection: close the oldest waiting ones."""
        waiting = [(fd, c) for fd, c in self._connections._selector.connections
                   if c is not self and c is not self._wakeup]
        victims = []
        if len(waiting) >= MAX_WAITING:
            victims.append(min(waiting, key=lambda item: item[1].last_used))
        same = [item for item in waiting if item[1].remote_addr == conn.remote_addr]
        if len(same) >= PER_SOURCE:
            victims.append(min(same, key=lambda item: item[1].last_used))
        for fd, victim in dict(victims).items():
            self._connections._selector.unregister(fd)
            victim.close()
