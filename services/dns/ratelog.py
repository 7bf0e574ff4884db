"""Logging of what LAN clients cause, rate-limited: a flood of bad queries writes a few lines, then a
count of what was left out, never a log line per packet."""
from __future__ import annotations

import logging
import time

BURST = 10  # lines at once
PER_MINUTE = 10  # lines per minute after the burst


class LimitedLog:
    def __init__(self, logger: logging.Logger, burst: int = BURST, per_minute: int = PER_MINUTE) -> None:
        self.logger, self.burst, self.rate = logger, burst, per_minute / 60.0
        self.tokens, self.last, self.suppressed = float(burst), time.monotonic(), 0

    def _allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            self.suppressed += 1
            return False
        self.tokens -= 1
        if self.suppressed:
            self.logger.warning("%d similar log lines suppressed (rate limit)", self.suppressed)
            self.suppressed = 0
        return True

    def log(self, level: int, msg: str, *args, exc_info: bool = False) -> None:
        if self.logger.isEnabledFor(level) and self._allow():
            self.logger.log(level, msg, *args, exc_info=exc_info)

    def info(self, msg: str, *args) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args) -> None:
        self.log(logging.WARNING, msg, *args)

    def exception(self, msg: str, *args) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True)
