"""Timers in one FIFO queue per delay: SIP uses a few fixed delays (T1 doublings, T4, 64*T1, ring time).

Timers of one delay expire in the order they were set, so a queue needs a single event-loop timer (for its
head) instead of one heap entry per timer: at hundreds of calls per second the loop's heap would otherwise
hold ~100k entries, each push and pop comparing TimerHandles in Python.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("officebox.pbx.sip")
QUEUED_MIN_DELAY = 0.01  # shorter delays go straight to the event loop
_RESOLUTION = time.get_clock_info("monotonic").resolution  # what the loop allows a timer to fire early by


class Timer:
    """A pending call; cancel() like asyncio's TimerHandle."""

    __slots__ = ("when", "fn", "args")

    def __init__(self, when: float, fn: Callable[..., object], args: tuple) -> None:
        self.when = when
        self.fn: Callable[..., object] | None = fn
        self.args = args

    def cancel(self) -> None:
        self.fn = None  # also drops the references the callback holds
        self.args = ()


class TimerQueues:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[float, deque[Timer]] = {}
        self._heads: dict[float, asyncio.TimerHandle] = {}  # the loop timer of each non-empty queue

    def call_later(self, delay: float, fn: Callable[..., object], *args) -> Timer | asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        if delay < QUEUED_MIN_DELAY:
            return loop.call_later(delay, fn, *args)
        if loop is not self._loop:
            self.close()
            self._loop = loop
        timer = Timer(loop.time() + delay, fn, args)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(timer)
        if delay not in self._heads:
            self._heads[delay] = loop.call_at(timer.when, self._expire, delay)
        return timer

    def _expire(self, delay: float) -> None:
        queue = self._queues[delay]
        end = self._loop.time() + _RESOLUTION
        while queue:
            timer = queue[0]
            if timer.fn is not None and timer.when > end:
                break
            queue.popleft()
            fn, args = timer.fn, timer.args
            if fn is None:
                continue  # cancelled
            timer.cancel()
            try:
                fn(*args)
            except Exception:
                log.exception("timer callback %r failed", fn)
        if self._queues.get(delay) is not queue:
            return  # closed by a callback
        if queue:
            self._heads[delay] = self._loop.call_at(queue[0].when, self._expire, delay)
        else:
            del self._heads[delay]
            del self._queues[delay]

    def close(self) -> None:
        """Forget every pending timer (the stack is closing or moved to another loop)."""
        for handle in self._heads.values():
            handle.cancel()
        for queue in self._queues.values():
            for timer in queue:
                timer.cancel()
        self._heads.clear()
        self._queues.clear()
