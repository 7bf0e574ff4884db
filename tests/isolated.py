"""One service in its own process for a test, as the appliance runs it (appliance.servicehost): a loop
thread (in a namespace of the test's when given: the child starts there), the bus hub, the apply engine and
the supervisor; `until` waits for what the child does, bounded in time."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from appliance.apply import ApplyEngine
from appliance.bus import Bus, BusHub
from appliance.servicehost import IsolatedService
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor


def until(predicate: Callable[[], Any], seconds: float = 30.0) -> Any:
    """predicate()'s first true value within `seconds` (polled every 0.1 s), else its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


@dataclass
class Running:
    service: IsolatedService
    supervisor: Supervisor
    engine: ApplyEngine
    hub: BusHub
    loop: asyncio.AbstractEventLoop

    def call(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def restarted(self, old_pid: int, seconds: float = 30.0) -> bool:
        """Whether the supervisor has the service running again in another process within `seconds`."""
        unit = self.supervisor.units[self.service.inner.name]
        return bool(until(lambda: unit.state == "running" and self.service.proc.pid != old_pid, seconds))


@contextmanager
def isolated(ctx, inner, document: dict, host=None, bus: Bus | None = None) -> Iterator[Running]:
    """`inner` (a Service) applied with `document` and started in its own process; stopped afterwards. Its
    events cross to `bus` (another service's appliance_bus, in-process) when given."""
    loop = asyncio.new_event_loop()

    def serve() -> None:
        if host is None:
            loop.run_forever()
            return
        with host.enter():
            loop.run_forever()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    hub = BusHub(bus if bus is not None else Bus())
    service = IsolatedService(inner, ctx.run_dir("core") / "bus.sock")
    store = ConfigStore(ctx.db_path)
    supervisor = Supervisor(ctx, {inner.name: service})
    run = Running(service, supervisor, ApplyEngine(ctx, store, {inner.name: service}), hub, loop)
    try:
        run.call(hub.serve(ctx.run_dir("core") / "bus.sock"))
        run.engine.apply(document, "test", "start")
        run.call(supervisor.start(run.engine.current_config()))
        unit = supervisor.units[inner.name]
        assert unit.state == "running", unit.error
        yield run
    finally:
        run.call(supervisor.stop())
        run.call(hub.close())
        store.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
