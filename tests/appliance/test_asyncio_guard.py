"""The suite's guard against blocking calls on an event loop (tests/asyncio_guard.py) is armed."""
import asyncio
import time

from tests import asyncio_guard


def test_loops_are_in_debug_mode_and_a_blocking_step_is_caught():
    loop = asyncio.new_event_loop()
    try:
        assert loop.get_debug() and loop.slow_callback_duration == asyncio_guard.SLOW_CALLBACK

        async def blocks():
            time.sleep(asyncio_guard.SLOW_CALLBACK + 0.1)
        loop.run_until_complete(blocks())
    finally:
        loop.close()
    caught, asyncio_guard._handler.seen[:] = list(asyncio_guard._handler.seen), []
    assert len(caught) == 1 and "blocks()" in caught[0] and " took " in caught[0]
