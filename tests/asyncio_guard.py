"""pytest plugin: nothing may block an event loop. Every loop the tests create runs in asyncio debug
mode with slow-callback detection; a callback or task step that holds the loop longer than
SLOW_CALLBACK seconds (asyncio logs "Executing ... took N seconds") fails the test that ran it.

The threshold is wall-clock time, so it must stay above what an overloaded 2-core machine makes of a
short step (0.58 s seen for a step that only hands nft to a thread, with the machine running several
suites at once) and it still catches what matters: a subprocess, sleep or sync disk write on the loop
lasting a second. OFFICEBOX_SLOW_CALLBACK overrides it (lower it while hunting a blocking call; 0
switches the guard off).
"""
from __future__ import annotations

import asyncio
import logging
import os

import pytest

SLOW_CALLBACK = float(os.environ.get("OFFICEBOX_SLOW_CALLBACK", "1.0"))


class GuardedPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK
        return loop


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing ") and " took " in message and "/playwright/" not in message:
            self.seen.append(message)  # Playwright's own loop drives the browser: not a server of ours


_handler = SlowCallbacks()


def pytest_configure(config: pytest.Config) -> None:
    if SLOW_CALLBACK > 0:
        asyncio.set_event_loop_policy(GuardedPolicy())
        logging.getLogger("asyncio").addHandler(_handler)


@pytest.fixture(autouse=True)
def no_blocking_on_the_loop(request):
    """Fails a test whose loop was held; a test that holds one on purpose (to fill a socket while the
    server cannot read) says so with @pytest.mark.blocks_the_loop."""
    _handler.seen.clear()
    yield
    if request.node.get_closest_marker("blocks_the_loop"):
        _handler.seen.clear()
    if _handler.seen:
        found, _handler.seen[:] = list(_handler.seen), []
        pytest.fail("a blocking call held the event loop:\n  " + "\n  ".join(found[:5]), pytrace=False)
