"""Per-client and per-port message limits (token buckets), and a log that says each thing once a minute."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Hashable

MAX_KEYS = 8192


class RateLimiter:
    """`per_minute` messages a minute per key with bursts of `burst`; at most MAX_KEYS keys are
    remembered (the least recently seen is forgotten first), so memory stays bounded under a flood."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: Hashable, now: float) -> bool:
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        return allowed


class QuietLog:
    """Logs a message of one kind at most once per `every` seconds and counts what it held back:
    whatever arrives from the LAN can make a server log, but never flood the log."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self.logger, self.every = logger, every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, level: int, kind: str, message: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.every) < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({held} more like this not logged)" if held else ""
        self.logger.log(level, message + suffix, *args)
