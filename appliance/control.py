"""The local control socket (0600, root only): lets `officebox` commands act on the running appliance.

One JSON request per line, one JSON answer per line:
{"op": "apply"|"confirm"|"rollback"|"status"|"restart"|"restore", ...} ->
{"ok": true, ...} or {"ok": false, "error": "...", "errors": [[field path, message], ...]}.
"apply" takes "base", the revision the document was built on (compare-and-swap, see appliance/apply.py).
Bounded: at most MAX_CLIENTS connections at once (more are answered "busy"), a request must arrive
within REQUEST_TIMEOUT seconds and be at most MAX_REQUEST bytes.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import backup
from appliance.apply import ConfigError
from appliance.service import ApplyError

if TYPE_CHECKING:
    from appliance.runtime import Runtime

MAX_REQUEST = 16 * 1024 * 1024
MAX_CLIENTS = 8
REQUEST_TIMEOUT = 30.0
BUSY = {"ok": False, "error": "the appliance is busy with other console requests; try again"}


def _handle(runtime: "Runtime", request: dict) -> dict:
    op = request.get("op")
    author = str(request.get("author") or "console")
    try:
        if op == "apply":
            rev = runtime.engine.apply(request["document"], author, str(request.get("summary") or "change"),
                                       **({"base": request["base"]} if "base" in request else {}))
            pending = runtime.engine.confirmation.pending()
            return {"ok": True, "revision": rev.id,
                    **({"confirm_seconds": round(pending["seconds_left"])} if pending else {})}
        if op == "confirm":  # keep a change that waits for confirmation (appliance/confirm.py)
            return {"ok": True, "confirmed": runtime.engine.confirmation.confirm()}
        if op == "rollback":
            rev = runtime.engine.rollback(int(request["revision"]), author)
            return {"ok": True, "revision": rev.id}
        if op == "restart":
            runtime.request_restart(delay=0.2)
            return {"ok": True}
        if op == "restore":
            manifest = backup.stage_restore(runtime.ctx, runtime.engine, Path(request["file"]),
                                           request.get("passphrase") or None)
            runtime.request_restart(delay=0.2)
            return {"ok": True, "created": manifest["created"]}
        if op == "status":
            return {"ok": True, "services": {n: vars(s) for n, s in runtime.status().items()},
                    "admin_url": runtime.admin_url}
        return {"ok": False, "error": f"unknown operation {op!r}"}
    except ConfigError as exc:
        return {"ok": False, "error": str(exc), "errors": [list(problem) for problem in exc.problems]}
    except (ApplyError, backup.BackupError, OSError, KeyError, ValueError, TypeError) as exc:
        return {"ok": False, "error": str(exc)}


async def serve(runtime: "Runtime", path: Path) -> asyncio.AbstractServer:
    clients = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal clients
        if clients >= MAX_CLIENTS:
            writer.write(json.dumps(BUSY).encode() + b"\n")
            writer.close()
            return
        clients += 1
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            try:
                request = json.loads(line)
                answer = await asyncio.to_thread(_handle, runtime, request)
            except (json.JSONDecodeError, AttributeError):
                answer = {"ok": False, "error": "malformed request"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass  # idle, oversized or gone: dropped
        finally:
            clients -= 1
            writer.close()

    if path.exists():
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(client, path, limit=MAX_REQUEST)
    finally:
        os.umask(old_umask)
    return server


def request(path: Path, payload: dict, timeout: float = 180) -> dict[str, Any] | None:
    """Send one request; None if no appliance is listening."""
    if not path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
