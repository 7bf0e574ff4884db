"""The state of a time profile at a moment: "open", "break" (between two opening ranges of the day),
"closed" or "holiday" (a public holiday of the profile's country, from the `holidays` package, or one
of the company's dates). The night service override makes it "closed" whatever the hours say.
"""
from __future__ import annotations

import datetime
import functools

import holidays

from ..config import WEEKDAYS, TimeProfile, minutes


@functools.lru_cache(maxsize=64)
def public_holidays(country: str, year: int) -> dict[datetime.date, str]:
    """date -> name of the country's public holidays in `year` (English names)."""
    return dict(holidays.country_holidays(country, years=year, language="en_US"))


def holiday_name(profile: TimeProfile, day: datetime.date) -> str | None:
    """Why the company is closed on `day` (a company date or a public holiday), else None."""
    for entry in profile.dates:
        if entry.date <= day <= (entry.end or entry.date):
            return entry.name or str(entry.date)
    if profile.public_holidays:
        return public_holidays(profile.country, day.year).get(day)
    return None


def state(profile: TimeProfile | None, when: datetime.datetime) -> str:
    if profile is None:
        return "open"
    if profile.night_service:
        return "closed"
    if holiday_name(profile, when.date()) is not None:
        return "holiday"
    ranges = profile.hours.get(WEEKDAYS[when.weekday()], [])
    now = when.hour * 60 + when.minute
    if any(minutes(r.start) <= now < minutes(r.end) for r in ranges):
        return "open"
    if ranges and minutes(ranges[0].start) <= now < minutes(ranges[-1].end):
        return "break"
    return "closed"
