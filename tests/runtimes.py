"""Data directories and runtimes the service users can reach, and services in their own process.

pytest's tmp root is chmodded 0700 by every pytest session on the machine, which masks the ACL entries the
appliance gives the service users on the way to their folders (appliance/serviceusers.py): tests whose
services drop to their own users keep their data in a `tempfile.mkdtemp` folder instead."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.bus import Bus, BusHub
from appliance.runtime import Runtime
from appliance.servicehost import IsolatedService


@contextmanager
def reachable_dir(prefix: str, mode: int | None = None) -> Iterator[Path]:
    """A fresh folder outside pytest's tmp root (chmodded `mode` if given), removed afterwards, also on failure."""
    top = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if mode is not None:
            top.chmod(mode)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def reachable_runtime(prefix: str) -> Iterator[Runtime]:
    """A bootstrapped lab Runtime whose data lives in a `reachable_dir`; its store closed afterwards."""
    with reachable_dir(prefix) as top:
        rt = Runtime(top / "var", lab=True)
        rt.bootstrap()
        try:
            yield rt
        finally:
            rt.store.close()


@contextmanager
def loop_thread() -> Iterator[Callable]:
    """An event loop running on a daemon thread; yields run(coro, timeout=60) -> its result."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
    try:
        yield run
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def service_process(runtime: Runtime, name: str) -> Iterator[tuple[IsolatedService, Callable]]:
    """The runtime's service `name` replaced by an IsolatedService (its own process, not started) talking to
    a BusHub, both on a loop thread; yields (service, run). Afterwards the service is stopped, the hub closed,
    runtime.supervisor cleared and the loop stopped."""
    with loop_thread() as run:
        hub = BusHub(Bus())
        bus_path = runtime.ctx.run_dir("core") / "bus.sock"
        run(hub.serve(bus_path), 10)
        service = runtime.services[name] = IsolatedService(runtime.services[name], bus_path)
        try:
            yield service, run
        finally:
            try:
                run(service.stop(), 30)
            finally:
                run(hub.close(), 10)
                runtime.supervisor = None
