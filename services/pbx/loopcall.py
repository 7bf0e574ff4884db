"""Run a function on the PBX's event loop from wherever the web admin's call arrives: at once on the loop
itself (the service's own process), else from another thread (a service run in the web admin's process)."""

from __future__ import annotations

import asyncio


def call_on(loop: asyncio.AbstractEventLoop, fn, timeout: float = 5.0):
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        return fn()

    async def run():
        return fn()
    return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)
