"""Timer queues: each timer fires once, at its time, in order; cancelled ones never; a failing one stops none."""
import asyncio

from services.pbx.sip.timers import TimerQueues


def test_timers_fire_in_time_order_once_and_cancel():
    async def main():
        q = TimerQueues()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fired: list[tuple[str, float]] = []

        def note(name: str) -> None:
            fired.append((name, loop.time() - t0))
        q.call_later(0.3, note, "a300")  # far after the others: a loaded machine keeps the order
        q.call_later(0.03, note, "b30")
        gone = q.call_later(0.03, note, "cancelled")
        q.call_later(0.03, note, "c30")
        q.call_later(0.0, note, "now")  # below the queued minimum: a plain loop timer
        gone.cancel()
        await asyncio.sleep(0.01)
        q.call_later(0.03, note, "d30")  # same delay, set later: fires later
        for _ in range(300):  # bounded: up to 3 s for all five
            if len(fired) >= 5:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # a cancelled timer that wrongly fires would show now
        assert [n for n, _ in fired] == ["now", "b30", "c30", "d30", "a300"]
        for name, at in fired:
            if name != "now":
                assert at >= int(name[1:]) / 1000 - 0.002
        assert q._queues == {} and q._heads == {}  # nothing left behind
    asyncio.run(main())


def test_a_failing_callback_does_not_stop_the_others(caplog):
    async def main():
        q = TimerQueues()
        fired = []
        q.call_later(0.02, lambda: 1 / 0)
        q.call_later(0.02, fired.append, 1)
        await asyncio.sleep(0.05)
        return fired
    assert asyncio.run(main()) == [1]
    assert "ZeroDivisionError" in caplog.text


def test_a_timer_set_by_a_callback_and_close():
    async def main():
        q = TimerQueues()
        fired = []

        def again() -> None:
            fired.append("first")
            q.call_later(0.02, fired.append, "second")  # same queue, from its own expiry
        q.call_later(0.02, again)
        await asyncio.sleep(0.07)
        assert fired == ["first", "second"]
        q.call_later(0.02, fired.append, "closed")
        q.call_later(0.02, q.close)
        q.call_later(0.03, fired.append, "after close")
        q.call_later(0.02, fired.append, "behind close")  # same queue, after the close(): never fires
        await asyncio.sleep(0.06)
        assert fired == ["first", "second", "closed"]
    asyncio.run(main())


def test_a_new_event_loop_starts_afresh():
    q = TimerQueues()
    fired = []

    async def arm(name: str, delay: float, wait: float) -> None:
        q.call_later(delay, fired.append, name)
        await asyncio.sleep(wait)
    asyncio.run(arm("lost with its loop", 10.0, 0))
    asyncio.run(arm("fires", 0.02, 0.05))
    assert fired == ["fires"]
