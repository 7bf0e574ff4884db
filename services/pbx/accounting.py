"""Call accounting: what an outgoing trunk call costs (pbx.accounting.tariffs) and the sums of the costs.

A tariff matches the number as dialled by its prefix; the longest prefix wins, a trunk's own tariff before
one for all trunks at the same length. Cost = setup + per_minute x the billed seconds (the answered
seconds rounded up to whole increments) / 60; an unanswered call costs nothing; a call no tariff
matches stays unrated (None)."""
from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Callable

from .config import Accounting, Tariff


def billed_seconds(billsec: float, increment: int) -> int:
    """Seconds charged: whole increments, rounded up (a call of 61 s in 60 s increments is 120 s)."""
    return math.ceil(round(billsec, 3) / increment) * increment if billsec > 0 else 0


def cost(tariff: Tariff, billsec: float) -> float:
    if billsec <= 0:
        return 0.0
    return round(tariff.setup + tariff.per_minute * billed_seconds(billsec, tariff.increment) / 60, 4)


def tariff_for(tariffs: list[Tariff], dialled: str, trunk: str) -> Tariff | None:
    found = [t for t in tariffs if dialled.startswith(t.prefix) and t.trunk in ("", trunk)]
    return max(found, key=lambda t: (len(t.prefix), bool(t.trunk)), default=None)


def rater(settings: Accounting) -> Callable[[dict], float | None]:
    """A CDR row (cdr.py: direction, dialled, trunk, billsec) -> its cost, None for a call not rated."""
    tariffs = list(settings.tariffs)

    def rate(row: dict) -> float | None:
        if row.get("direction") != "outbound" or not row.get("trunk"):
            return None
        tariff = tariff_for(tariffs, row.get("dialled") or "", row["trunk"])
        return None if tariff is None else cost(tariff, row.get("billsec") or 0.0)
    return rate


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def usage(rows: list[dict], timezone: str = "UTC") -> list[dict]:
    """Outgoing trunk calls summed per month (YYYY-MM in `timezone`), caller extension and trunk:
    [{"month", "extension", "trunk", "calls", "answered", "seconds", "cost", "unrated"}], sorted."""
    zone = _zone(timezone)
    sums: dict[tuple, dict] = {}
    for row in rows:
        if row.get("direction") != "outbound" or not row.get("trunk"):
            continue
        month = dt.datetime.fromtimestamp(row["start"], zone).strftime("%Y-%m")
        key = (month, row.get("caller") or "", row["trunk"])
        item = sums.setdefault(key, {"month": key[0], "extension": key[1], "trunk": key[2], "calls": 0,
                                     "answered": 0, "seconds": 0.0, "cost": 0.0, "unrated": 0})
        item["calls"] += 1
        item["answered"] += 1 if (row.get("billsec") or 0) > 0 else 0
        item["seconds"] = round(item["seconds"] + (row.get("billsec") or 0.0), 3)
        if row.get("cost") is None:
            item["unrated"] += 1
        else:
            item["cost"] = round(item["cost"] + row["cost"], 4)
    return [sums[k] for k in sorted(sums)]


def month_start(now: float, timezone: str) -> float:
    """The epoch of the first midnight of `now`'s month in `timezone`."""
    day = dt.datetime.fromtimestamp(now, _zone(timezone))
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def spend(rows: list[dict]) -> dict[str, float]:
    """Cost per caller extension of the rows (outgoing, rated)."""
    out: dict[str, float] = {}
    for item in usage(rows):
        out[item["extension"]] = round(out.get(item["extension"], 0.0) + item["cost"], 4)
    return out
