"""The service supervisor: services on its asyncio loop or in their own process, daemons as children.

A service is either in-process (its asyncio servers on this loop) or isolated: an
appliance.servicehost.IsolatedService, whose live half runs in a child process of its own, driven
over RPC; the supervisor treats both alike. A service whose start fails, a running service that
reports itself "down" (checked every few seconds by a watchdog), an isolated service whose process
exits (reported at once), or a daemon that exits, is restarted with exponential backoff (1 s to
60 s; the backoff resets once it has run for a minute). SIGTERM stops everything in reverse order.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field

from appliance.aio import cancel_and_wait
from appliance.context import Context
from appliance.schema import CoreConfig
from appliance.service import ApplyError, ChildSpec, Service, Status

log = logging.getLogger("officebox.supervisor")
BACKOFF_MAX = 60.0
STABLE_AFTER = 60.0
WATCH_INTERVAL = 5.0


def backoff(failures: int) -> float:
    return min(BACKOFF_MAX, 2.0 ** max(0, failures - 1))


class Child:
    """One external daemon, kept running until stopped."""

    def __init__(self, ctx: Context, service: str, spec: ChildSpec) -> None:
        self.ctx, self.service, self.spec = ctx, service, spec
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.last_exit: int | None = None
        self._stopping = False
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_running(), name=f"child:{self.spec.name}")

    async def _spawn(self) -> None:
        logfile = open(self.ctx.log_dir(self.service) / f"{self.spec.name}.log", "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv, stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                env={**os.environ, **dict(self.spec.env)}, start_new_session=True,
            )
        finally:
            logfile.close()
        self.started_at = time.monotonic()

    async def _keep_running(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._spawn()
                self.last_exit = await self.proc.wait()
            except OSError as exc:
                log.error("%s: cannot start %s: %s", self.service, self.spec.argv[0], exc)
                self.last_exit = -1
            if self._stopping:
                return
            failures = 1 if time.monotonic() - self.started_at > STABLE_AFTER else failures + 1
            self.restarts += 1
            delay = backoff(failures)
            log.warning("%s: %s exited (%s); restart in %.0f s", self.service, self.spec.name, self.last_exit, delay)
            await asyncio.sleep(delay)

    def signal(self, signum: int) -> None:
        if self.running:
            self.proc.send_signal(signum)

    async def stop(self) -> None:
        self._stopping = True
        if self.running:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), self.spec.stop_timeout)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._task:
            await cancel_and_wait(self._task)


@dataclass
class Unit:
    service: Service
    state: str = "stopped"  # stopped | starting | running | failed
    error: str = ""
    failures: int = 0
    crashes: int = 0  # stopped working since it last ran for STABLE_AFTER s
    started_at: float = 0.0
    children: dict[str, Child] = field(default_factory=dict)
    retry: asyncio.Task | None = None


class Supervisor:
    def __init__(self, ctx: Context, services: dict[str, Service]) -> None:
        self.ctx = ctx
        self.units = {name: Unit(svc) for name, svc in services.items()}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.config: CoreConfig | None = None
        self.watch_interval = WATCH_INTERVAL
        self._watchdog: asyncio.Task | None = None
        self._changing: dict[str, asyncio.Lock] = {}  # one reconfigure or admin restart of a unit at a time

    # called from other threads (web admin, control socket workers)
    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self, config: CoreConfig) -> None:
        self.loop = asyncio.get_running_loop()
        self.config = config
        for name, unit in self.units.items():
            if hasattr(unit.service, "on_exit"):
                unit.service.on_exit = self._exited
            if unit.service.enabled(config):
                await self._start_or_retry(name, config)
            else:
                unit.state = "stopped"
        self._watchdog = asyncio.create_task(self._watch(), name="watchdog")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            for name, unit in self.units.items():
                # not while a reconfigure or an admin's restart changes it: a reload (stop, then start, inside
                # its process) reports "down" meanwhile, and restarting it then cut that reload's call off
                # ("the service process closed the connection without answering")
                changing = self._changing.setdefault(name, asyncio.Lock())
                if unit.state != "running" or unit.retry is not None or changing.locked():
                    continue
                async with changing:
                    if unit.state != "running" or unit.retry is not None:
                        continue
                    try:
                        if hasattr(unit.service, "refresh_status"):  # an isolated service: ask its process
                            await unit.service.refresh_status()
                        health = unit.service.status().health
                    except Exception:
                        health = "down"
                    if health == "down":
                        log.error("%s reports itself down; restarting it", name)
                        await self._restart(name)

    def _exited(self, name: str) -> None:
        """An isolated service's process exited on its own: restart it now (with backoff)."""
        unit = self.units[name]
        if unit.state == "running" and unit.retry is None:
            unit.retry = asyncio.create_task(self._restart(name), name=f"restart:{name}")

    async def _restart(self, name: str) -> None:
        unit = self.units[name]
        unit.retry = None
        await self._stop(name)
        unit.crashes = 1 if time.monotonic() - unit.started_at > STABLE_AFTER else unit.crashes + 1
        unit.failures = max(unit.failures + 1, unit.crashes)
        unit.state, unit.error = "failed", "stopped working; restarting"
        unit.retry = asyncio.create_task(self._retry(name, self.config, backoff(unit.failures)))

    async def _start_or_retry(self, name: str, config: CoreConfig) -> None:
        try:
            await self._start(name, config)
        except Exception as exc:
            unit = self.units[name]
            unit.failures += 1
            log.error("%s failed to start: %s", name, exc)
            unit.retry = asyncio.create_task(self._retry(name, config, backoff(unit.failures)))

    async def _retry(self, name: str, config: CoreConfig, delay: float) -> None:
        await asyncio.sleep(delay)
        self.units[name].retry = None
        await self._start_or_retry(name, config)

    async def _start(self, name: str, config: CoreConfig) -> None:
        unit = self.units[name]
        unit.state, unit.error = "starting", ""
        try:
            await unit.service.start(config)
            self._reconcile_children(unit, config)
        except Exception as exc:
            unit.state, unit.error = "failed", str(exc) or exc.__class__.__name__
            await self._stop_children(unit)
            raise
        unit.state, unit.failures, unit.started_at = "running", 0, time.monotonic()

    async def restart(self, name: str) -> Status:
        """An admin's restart of one running service (its process, for an isolated one, and its daemons)
        with the configuration it runs; raises ApplyError if it is switched off or still starting."""
        unit = self.units[name]
        async with self._changing.setdefault(name, asyncio.Lock()):
            if unit.state not in ("running", "failed") or not unit.service.enabled(self.config):
                raise ApplyError(f"{name} is {unit.state}, not running")
            log.warning("%s: restarted on an admin's request", name)
            await self._stop(name)
            await self._start_or_retry(name, self.config)
        return self.status(name)

    async def reconfigure(self, name: str, config: CoreConfig) -> None:
        """Bring one service to `config` (start, stop or reload). Raises if it cannot."""
        async with self._changing.setdefault(name, asyncio.Lock()):
            await self._reconfigure(name, config)

    async def _reconfigure(self, name: str, config: CoreConfig) -> None:
        self.config = config
        unit = self.units[name]
        if unit.retry:
            unit.retry.cancel()
            unit.retry = None
        if not unit.service.enabled(config):
            await self._stop(name)
            return
        if unit.state != "running":
            await self._start(name, config)
            return
        signalled = self._reconcile_children(unit, config)
        for child in signalled:
            child.signal(child.spec.reload_signal)
        await unit.service.reload(config)

    def _reconcile_children(self, unit: Unit, config: CoreConfig) -> list[Child]:
        """Start new or changed daemons, stop removed ones; return unchanged ones to signal."""
        wanted = {spec.name: spec for spec in unit.service.processes(config)}
        unchanged = []
        for cname, child in list(unit.children.items()):
            if wanted.get(cname) != child.spec:
                asyncio.create_task(child.stop())
                del unit.children[cname]
            elif child.spec.reload_signal is not None:
                unchanged.append(child)
        for cname, spec in wanted.items():
            if cname not in unit.children:
                child = Child(self.ctx, unit.service.name, spec)
                unit.children[cname] = child
                child.start()
        return unchanged

    async def _stop_children(self, unit: Unit) -> None:
        await asyncio.gather(*(c.stop() for c in unit.children.values()), return_exceptions=True)
        unit.children.clear()

    async def _stop(self, name: str) -> None:
        unit = self.units[name]
        if unit.retry:
            unit.retry.cancel()
            unit.retry = None
        await self._stop_children(unit)
        try:
            await unit.service.stop()
        except Exception:
            log.exception("%s did not stop cleanly", name)
        unit.state = "stopped"

    async def stop(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
        # services share nothing but the bus: they stop at once, so the slowest (squid letting
        # connections finish) delays no other; the first unit (the network) last, as they may still
        # send on it while they stop (the PBX's BYEs)
        first, *rest = list(self.units) or [None]
        await asyncio.gather(*(self._stop(name) for name in rest))
        if first is not None:
            await self._stop(first)

    def status(self, name: str) -> Status:
        unit = self.units[name]
        if unit.state == "stopped":
            return Status("disabled", "switched off")
        if unit.state == "failed":
            return Status("down", unit.error or "failed to start", {"restart attempts": unit.failures})
        if unit.state == "starting":
            return Status("starting", "starting")
        try:
            status = unit.service.status()
        except Exception as exc:
            status = Status("degraded", f"status unavailable: {exc}")
        dead = [c.spec.name for c in unit.children.values() if c.proc is not None and not c.running]
        launching = [c.spec.name for c in unit.children.values() if c.proc is None]  # spawn not done yet
        if dead:
            status = Status("degraded", f"restarting {', '.join(dead)}", dict(status.figures))
        elif launching:
            status = Status("starting", f"starting {', '.join(launching)}", dict(status.figures))
        restarts = sum(c.restarts for c in unit.children.values())
        if restarts:
            status.figures = {**status.figures, "daemon restarts": restarts}
        return status
