"""A small typed RPC between the appliance and a service's child process (appliance/servicehost.py).

One Unix socket (0600) per service, one connection per call, one JSON object per line each way:

    {"op": "start"|"reload"|"stop"|"status"|"call", ...}  ->  {"ok": true, "result": ...}
                                                                  or {"ok": false, "error": "...", "kind": "ApplyError"}

Bounded: a line is at most MAX_LINE bytes, a server takes at most MAX_CONNECTIONS at once (more are
closed at once), a request must arrive within REQUEST_TIMEOUT, and every client call has a timeout.
`call_async` is for the supervisor's loop, `call_sync` for other threads (the web admin's workers).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("officebox.rpc")
MAX_LINE = 16 * 1024 * 1024
MAX_CONNECTIONS = 16
REQUEST_TIMEOUT = 10.0
KINDS = ("ApplyError", "ValueError", "KeyError", "TimeoutError", "ServiceRestarting")
UNREACHABLE = "Unreachable"  # the kind of a call that found no process, or lost it before its answer

Handler = Callable[[dict], Awaitable[Any]]


class RpcError(Exception):
    """The call failed on the other side (`kind`: the exception class there) or on the way."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


def _encode(obj: dict) -> bytes:
    line = json.dumps(obj, default=str).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise RpcError(f"message of {len(line)} bytes is over the {MAX_LINE} byte limit")
    return line


def _answer(line: bytes) -> Any:
    if not line.endswith(b"\n"):
        raise RpcError("the service process closed the connection without answering", UNREACHABLE)
    answer = json.loads(line)
    if not answer.get("ok"):
        raise RpcError(str(answer.get("error") or "failed"), str(answer.get("kind") or ""))
    return answer.get("result")


async def serve(path: Path, handler: Handler) -> asyncio.AbstractServer:
    """Answer requests on `path` with `handler(request) -> result` (an exception becomes an error answer)."""
    busy = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy
        if busy >= MAX_CONNECTIONS:
            writer.close()
            return
        busy += 1
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            try:
                answer = {"ok": True, "result": await handler(json.loads(line))}
            except Exception as exc:  # the caller gets it; the process keeps serving
                kind = type(exc).__name__
                answer = {"ok": False, "error": str(exc) or kind, "kind": kind if kind in KINDS else ""}
            writer.write(_encode(answer))
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, RpcError) as exc:
            log.warning("rpc request on %s dropped: %s", path, exc)
        finally:
            busy -= 1
            writer.close()

    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(client, str(path), limit=MAX_LINE)
    finally:
        os.umask(old)


async def call_async(path: Path, request: dict, timeout: float) -> Any:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
        try:
            writer.write(_encode(request))
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
    try:
        line = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        raise RpcError(f"no answer to {request.get('op')} within {timeout:.0f} s", "TimeoutError") from None
    except OSError as exc:
        raise RpcError(f"the service process is not reachable: {exc}", UNREACHABLE) from None
    return _answer(line)


def call_sync(path: Path, request: dict, timeout: float) -> Any:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(_encode(request))
            data = bytearray()
            while not data.endswith(b"\n") and len(data) <= MAX_LINE:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except TimeoutError:
        raise RpcError(f"no answer to {request.get('op')} within {timeout:.0f} s", "TimeoutError") from None
    except OSError as exc:
        raise RpcError(f"the service process is not reachable: {exc}", UNREACHABLE) from None
    return _answer(bytes(data))
