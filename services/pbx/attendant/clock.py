"""The time the attendants read: the box's local time, or what a test injects.

    clock.now()                      # aware datetime in the box's time zone (system.timezone)
    clock.inject(lambda: datetime(2026, 12, 25, 10, 0, tzinfo=...))   # tests; inject(None): real time
"""
from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable

_injected: Callable[[], datetime.datetime] | None = None
_zone: zoneinfo.ZoneInfo | None = None


def set_zone(name: str | None) -> None:
    """The box's time zone (PBX start and reload); an unknown name keeps the host's local time."""
    global _zone
    try:
        _zone = zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        _zone = None


def inject(source: Callable[[], datetime.datetime] | None) -> None:
    global _injected
    _injected = source


def now() -> datetime.datetime:
    if _injected is not None:
        return _injected()
    return datetime.datetime.now(_zone) if _zone else datetime.datetime.now().astimezone()
