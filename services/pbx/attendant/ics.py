"""Import of company closing dates from an iCalendar file (RFC 5545), parsed here with limits: only
VEVENTs' DTSTART, DTEND and SUMMARY are read; all-day dates and date-times alike give the days covered.
Anything malformed is an IcsError saying where."""
from __future__ import annotations

import datetime
import re

MAX_BYTES = 512 * 1024
MAX_EVENTS = 500
MAX_DAYS = 366  # one event covers at most a year


class IcsError(ValueError):
    pass


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})(T\d{6}Z?)?$")


def _date(value: str, line: int) -> datetime.date:
    m = _DATE.match(value.strip())
    if not m:
        raise IcsError(f"line {line}: {value[:40]!r} is not an iCalendar date")
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise IcsError(f"line {line}: {value[:40]!r} is not a real date") from None


def _text(value: str) -> str:
    return value.replace("\\n", " ").replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\").strip()[:80]


def parse(data: bytes) -> list[dict]:
    """[{"date", "end", "name"}] (end None for one day), in the file's order."""
    if len(data) > MAX_BYTES:
        raise IcsError(f"the file is larger than {MAX_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IcsError("the file is not UTF-8 text") from None
    lines = _unfold(text)
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        raise IcsError("this is not an iCalendar file (no BEGIN:VCALENDAR)")
    events: list[dict] = []
    event: dict | None = None
    for number, line in enumerate(lines, 1):
        name, _, value = line.partition(":")
        key = name.split(";")[0].strip().upper()
        if key == "BEGIN" and value.strip().upper() == "VEVENT":
            event = {}
        elif key == "END" and value.strip().upper() == "VEVENT" and event is not None:
            events.append(_event(event, number))
            if len(events) > MAX_EVENTS:
                raise IcsError(f"more than {MAX_EVENTS} events")
            event = None
        elif event is not None and key in ("DTSTART", "DTEND", "SUMMARY"):
            event[key] = (value, number, "VALUE=DATE" in name.upper())
    return events


def _event(event: dict, line: int) -> dict:
    if "DTSTART" not in event:
        raise IcsError(f"line {line}: an event without DTSTART")
    value, at, _ = event["DTSTART"]
    start = _date(value, at)
    end = start
    if "DTEND" in event:
        value, at, all_day = event["DTEND"]
        end = _date(value, at)
        if all_day or len(value.strip()) == 8:
            end -= datetime.timedelta(days=1)  # DTEND of an all-day event is the day after
        end = max(end, start)
    if (end - start).days >= MAX_DAYS:
        raise IcsError(f"line {line}: an event longer than a year")
    name = _text(event["SUMMARY"][0]) if "SUMMARY" in event else ""
    return {"date": start, "end": end if end != start else None, "name": name}
