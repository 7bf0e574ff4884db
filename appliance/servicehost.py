"""One service in its own process: the child side (`python -m appliance.servicehost`) and the
appliance side (IsolatedService, which the supervisor drives like any Service).

    appliance (supervisor, apply engine)            child process (one per isolated service)
      IsolatedService.start/reload/stop/status --rpc-->  the real Service object, its own event loop
      web admin: appliance.clients             --rpc-->  "call" of an exposed method (clients.EXPOSED)
      appliance.bus.BusHub  <--------------------bus--  RemoteBus (events cross processes)

The child runs as the service's own system user with only the capabilities it needs
(appliance/serviceusers.py, exec'd through setpriv); it gets the event bus as an inherited connection
(its user cannot open the hub's socket) and serves its RPC socket, which only root can reach.
render/validate/check/contributes/processes stay in the appliance on its own copy of the
service (the first apply runs before any child exists). The child dies with the appliance (SIGTERM
from PR_SET_PDEATHSIG); a child that exits is reported to the supervisor, which restarts it with
its usual backoff. In the child, the appliance bus (appliance_bus(ctx)) is the RemoteBus, so DHCP leases
(appliance/leases.py) and every other event reach services in other processes unchanged.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import rpc, schema, serviceusers
from appliance.bus import RemoteBus, hub_at, use_bus
from appliance.clients import ServiceRestarting
from appliance.context import Context
from appliance.service import ApplyError, Service, Status

log = logging.getLogger("officebox.servicehost")
START_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PROJECT_ROOT = Path(__file__).resolve().parent.parent




# -- the appliance side -------------------------------------------------------------------------------
class IsolatedService:
    """Stands for `inner` in the supervisor and the apply engine; its live half runs in a child."""

    def __init__(self, inner: Service, bus_path: Path) -> None:
        self.inner = inner
        self.bus_path = bus_path
        self.rpc_path = inner.ctx.run_dir(inner.name) / "service.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.on_exit: Callable[[str], None] | None = None  # set by the supervisor
        self.spawns = 0
        self.ready = False  # its process has started the service (and is not stopping it): calls go there
        self._status = Status("starting", "starting")
        self._stopping = False
        self._reaper: asyncio.Task | None = None

    def __getattr__(self, attr: str) -> Any:  # the pure half: render, validate, enabled, processes...
        return getattr(self.inner, attr)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _spawn(self) -> None:
        self.ready = False
        ctx = self.inner.ctx
        drop = await asyncio.to_thread(serviceusers.prepare, ctx, self.inner.name)
        hub = hub_at(self.bus_path)
        if hub is not None:  # a connection stamped with this service's name (appliance/bus.py)
            ours, bus = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            await hub.attach(ours, self.inner.name)
        else:
            bus = _connect_unix(self.bus_path)  # handed over: the service's user cannot open the hub's socket
        argv = [*drop, sys.executable, "-m", "appliance.servicehost", self.inner.name, str(ctx.data_dir),
                str(self.rpc_path), str(bus.fileno())] + (["--lab"] if ctx.lab else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                        os.environ.get("PYTHONPATH")]))}
        with contextlib.suppress(FileNotFoundError):
            self.rpc_path.unlink()
        try:
            with open(ctx.log_dir(self.inner.name) / "process.log", "ab") as logfile:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile, env=env,
                    pass_fds=(bus.fileno(),))
        finally:
            bus.close()
        self.spawns += 1
        self._stopping = False
        self._reaper = asyncio.create_task(self._reap(self.proc), name=f"reap:{self.inner.name}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while True:
            if not self.alive:
                raise ApplyError(f"{self.inner.name}: its process exited at start ({self.proc.returncode}); "
                                 f"see {ctx.log_dir(self.inner.name) / 'process.log'}")
            if self.rpc_path.exists():
                with contextlib.suppress(rpc.RpcError):
                    await rpc.call_async(self.rpc_path, {"op": "status"}, CALL_TIMEOUT)
                    return
            if loop.time() > deadline:
                await self._kill()
                raise ApplyError(f"{self.inner.name}: its process did not answer within {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        self.ready = False
        if not self._stopping:
            log.error("%s: its process exited (%s)", self.inner.name, code)
            if self.on_exit is not None:
                self.on_exit(self.inner.name)

    async def _call(self, op: str, timeout: float = CALL_TIMEOUT, **fields: Any) -> Any:
        try:
            return await rpc.call_async(self.rpc_path, {"op": op, **fields}, timeout)
        except rpc.RpcError as exc:
            raise ApplyError(f"{self.inner.name}: {exc}") from None

    async def start(self, config: schema.CoreConfig) -> None:
        if not self.alive:
            await self._spawn()
        await asyncio.to_thread(serviceusers.share_rendered, self.inner.ctx, self.inner.name)
        await self._call("start", START_TIMEOUT, config=schema.to_document(config))
        self.ready = self.alive
        await self.refresh_status()

    async def reload(self, config: schema.CoreConfig) -> None:
        await asyncio.to_thread(serviceusers.share_rendered, self.inner.ctx, self.inner.name)
        await self._call("reload", START_TIMEOUT, config=schema.to_document(config))
        await self.refresh_status()

    async def check(self, config: schema.CoreConfig, staged: Path) -> None:
        """The daemon's checker runs here: the staged files are root's (0600), not the service user's."""
        await self.inner.check(config, staged)

    async def refresh_status(self) -> Status:
        """Fetch the child's status (kept for status(), which must not wait)."""
        if self.alive:
            with contextlib.suppress(ApplyError):
                self._status = Status(**await self._call("status"))
        return self.status()

    async def stop(self) -> None:
        self._stopping, self.ready = True, False
        if self.alive:
            with contextlib.suppress(ApplyError):
                await self._call("stop", STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await self._kill()
        if self._reaper is not None:
            await asyncio.gather(self._reaper, return_exceptions=True)

    async def _kill(self) -> None:
        self._stopping, self.ready = True, False
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()

    def status(self) -> Status:
        if self.proc is not None and not self.alive:
            return Status("down", f"its process exited ({self.proc.returncode})")
        return self._status

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Run an exposed method in the child (from any thread but the supervisor's loop). ServiceRestarting
        when no process took it: gone, not reachable, or not (or no longer) running its service."""
        if not self.alive:
            raise ApplyError(f"{self.inner.name} is not running")
        try:
            return rpc.call_sync(self.rpc_path, {"op": "call", "method": method, "args": list(args)}, timeout)
        except rpc.RpcError as exc:
            if exc.kind in (rpc.UNREACHABLE, ServiceRestarting.__name__):
                raise ServiceRestarting(f"{self.inner.title} is restarting; try again in a moment") from None
            raise ApplyError(f"{self.inner.name}: {exc}") from None


def _connect_unix(path: Path) -> socket.socket:
    """A connection to a listening Unix socket (connect() returns once queued, before the accept)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CALL_TIMEOUT)
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ApplyError(f"the event bus is not reachable: {exc}") from None
    sock.setblocking(True)
    return sock


# -- the child side -----------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGTERM when the appliance dies; not dumpable, so a daemon of the same user (Squid's, for the
    proxy) can neither ptrace this process nor read its memory."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        libc.prctl(PR_SET_DUMPABLE, 0)


async def host(name: str, ctx: Context, rpc_path: Path, bus_fd: int) -> None:
    from appliance.clients import ACTIONS, BLOCKING, EXPOSED
    from appliance.netservice import NetworkService
    from services import discover

    bus = RemoteBus()
    await bus.connect(sock=socket.socket(fileno=bus_fd))
    use_bus(ctx, bus)  # the service's appliance_bus(ctx) is the appliance's, through the hub
    service: Service = {NetworkService.name: NetworkService, **discover()}[name](ctx)  # the core's too
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)

    started = False  # an action before the start (or after the stop) would go to an idle service

    async def handle(request: dict) -> Any:
        nonlocal started
        op = request.get("op")
        if op == "start":
            await service.start(schema.parse(request["config"]))
            started = True
            return None
        if op == "reload":
            return await service.reload(schema.parse(request["config"]))
        if op == "stop":
            started = False
            return await service.stop()
        if op == "status":
            return vars(service.status())
        if op == "call" and request.get("method") in EXPOSED.get(name, ()):
            if request["method"] in ACTIONS.get(name, ()) and not started:
                raise ServiceRestarting(f"{service.title} is not running its service yet")
            value = getattr(service, request["method"])
            if not callable(value):  # an exposed attribute or property (the firewall's live), as clients read it
                return value
            if request["method"] in BLOCKING.get(name, ()):
                return await asyncio.to_thread(value, *request.get("args", []))
            return value(*request.get("args", []))
        raise ValueError(f"unknown request {op!r} {request.get('method') or ''}".strip())

    server = await rpc.serve(rpc_path, handle)
    try:
        await done.wait()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await service.stop()
        await bus.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one OfficeBox service in this process.")
    parser.add_argument("name")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("rpc_path", type=Path)
    parser.add_argument("bus_fd", type=int, help="an open connection to the appliance's event bus")
    parser.add_argument("--lab", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {args.name}[%(process)d] %(levelname)s %(message)s")
    asyncio.run(host(args.name, Context(args.data_dir, lab=args.lab), args.rpc_path, args.bus_fd))


if __name__ == "__main__":
    main()
