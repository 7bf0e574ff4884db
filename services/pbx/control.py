"""The PBX's end of the control socket to one of its helper processes (the media engine, the WebRTC
gateway): an AF_UNIX SOCK_SEQPACKET pair, one JSON value per datagram. A request carries "id" and is
answered by {"re": id, ...} or {"re": id, "error": text}; anything else the helper sends is an event.

With `batch`, what is sent during one turn of the event loop leaves as one datagram holding a JSON
array of the messages, in order (the media engine reads both forms): under load one system call and
one wake-up of the helper carry the control of many calls. Arrays are read here either way.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("officebox.pbx.control")
MAX_DATAGRAM = 60000  # bytes of one batch: the helpers read at most 64 KiB at a time
RECV_SIZE = 1 << 20
_encode = json.JSONEncoder(separators=(",", ":")).encode


async def spawn(script: Path) -> tuple[asyncio.subprocess.Process, socket.socket]:
    """`python -I script <fd>` with the other end of a new control socket pair as that fd."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(script), str(theirs.fileno()), pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


class ControlChannel:
    """Requests (with futures and a timeout) and events over one control socket, on the running loop.
    `on_event(msg)` gets every message that answers no request; `on_closed()` runs once when the
    helper's end closes (it exited). `name` is the helper's, for error texts."""

    def __init__(self, sock: socket.socket, name: str, on_event: Callable[[dict], None],
                 on_closed: Callable[[], None], batch: bool = False) -> None:
        self.name = name
        self.batch = batch
        self._sock: socket.socket | None = sock
        self._on_event, self._on_closed = on_event, on_closed
        self._loop = asyncio.get_running_loop()
        self._outbox: collections.deque[bytes] = collections.deque()  # datagrams the socket could not take yet
        self._queued: list[dict] = []  # messages of this loop turn (batch), encoded together when they leave
        self._writing = False
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def open(self) -> bool:
        return self._sock is not None

    def send(self, msg: dict, now: bool = False) -> None:
        """`now`: this message and those queued before it leave at once (with batch), e.g. one that must
        reach the helper before the PBX's next packet elsewhere (a party's address before its call's 200).
        With batch, `msg` is encoded when it leaves (the turn's messages in one call of the encoder): the
        caller must not change it afterwards; one that cannot be encoded is logged and left out."""
        if self._sock is None:
            return  # no helper: what it had is gone anyway
        if self.batch:
            if not self._queued and not now:
                self._loop.call_soon(self._send_queued)
            self._queued.append(msg)
            if now:
                self._send_queued()
        else:
            self._push(_encode(msg).encode())

    async def request(self, msg: dict, timeout: float) -> dict:
        """The helper's answer to `msg`; OSError if it answers an error, does not answer, or stops."""
        if self._sock is None:
            raise OSError(f"{self.name} is not running")
        msg["id"] = rid = next(self._ids)
        fut = self._pending[rid] = self._loop.create_future()
        self.send(msg)
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise OSError(f"{self.name} does not answer") from None
        finally:
            self._pending.pop(rid, None)
        if "error" in reply:
            raise OSError(reply["error"])
        return reply

    def close(self, reason: str = "stopped") -> None:
        """Fail the open requests and close our end (the helper sees it and exits)."""
        sock, self._sock = self._sock, None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(OSError(f"{self.name} {reason}"))
        self._pending.clear()
        self._queued.clear()
        self._outbox.clear()
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            if self._writing:
                self._loop.remove_writer(sock.fileno())
                self._writing = False
            sock.close()

    # -- sending ------------------------------------------------------------------------------------
    def _send_queued(self) -> None:
        queued, self._queued = self._queued, []
        if self._sock is None or not queued:
            return
        if len(queued) == 1:
            self._push(self._encoded(queued[0]))
            return
        try:
            text = _encode(queued)  # one call of the encoder for the turn, not one per message
        except (TypeError, ValueError):
            text = ""  # some message cannot be encoded: each on its own below, that one dropped and logged
        if text and len(text) <= MAX_DATAGRAM:
            self._push(text.encode())
            return
        chunk: list[str] = []
        size = 2
        for msg in queued:
            try:
                text = _encode(msg)
            except (TypeError, ValueError):
                log.exception("%s: cannot send %r", self.name, msg)
                continue
            if chunk and size + len(text) + 1 > MAX_DATAGRAM:
                self._push(("[" + ",".join(chunk) + "]").encode())
                chunk, size = [], 2
            chunk.append(text)
            size += len(text) + 1
        if chunk:
            self._push(("[" + ",".join(chunk) + "]").encode())

    def _encoded(self, msg: dict) -> bytes:
        try:
            return _encode(msg).encode()
        except (TypeError, ValueError):
            log.exception("%s: cannot send %r", self.name, msg)
            return b""

    def _push(self, datagram: bytes) -> None:
        if not datagram:
            return
        self._outbox.append(datagram)
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        sock, outbox = self._sock, self._outbox
        while outbox and sock is not None:
            try:
                sock.send(outbox[0])
            except BlockingIOError:
                if not self._writing:
                    self._loop.add_writer(sock.fileno(), self._flush)
                    self._writing = True
                return
            except OSError:
                return  # the helper died: its end closing is noticed by the reader
            outbox.popleft()
        if self._writing and sock is not None:
            self._loop.remove_writer(sock.fileno())
        self._writing = False

    # -- receiving ----------------------------------------------------------------------------------
    def _readable(self) -> None:
        for _ in range(64):
            sock = self._sock
            if sock is None:
                return
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                self._on_closed()
                return
            value = json.loads(data)
            for msg in value if isinstance(value, list) else (value,):
                self._dispatch(msg)

    def _dispatch(self, msg: dict) -> None:
        if "re" in msg:
            fut = self._pending.get(msg["re"])
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        self._on_event(msg)
