"""Web call-back requests (the public page, webadmin/blueprints/public.py): a visitor leaves a number and
optionally a name and a subject for a queue that takes them (CallQueue.web_callback). The request waits in
the queue as a caller who asked to be called back does (a Waiter without a channel: position by priority,
then time): when an agent is free the box rings the agent first, then calls the visitor and joins them
(Acd._call_back); the turn is written like any other (outcome "callback" or "callback_failed").

Only numbers matching one of the queue's patterns are accepted, and the call goes out with the box's
default permission class (national by default), so the page cannot place calls to arbitrary numbers; at
most `web_callback_pending` requests of a queue wait at once.
"""
from __future__ import annotations

import re
import time

from .store import QueueCall

NAME_MAX, SUBJECT_MAX = 40, 120


def pattern_regex(pattern: str) -> re.Pattern:
    """0ZXXXXXXXX -> ^0[1-9][0-9]{8}$ (X any digit, N 2-9, Z 1-9, [..] a class, the rest literal)."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            end = pattern.index("]", i)
            out.append(pattern[i:end + 1])
            i = end + 1
            continue
        out.append({"X": "[0-9]", "N": "[2-9]", "Z": "[1-9]"}.get(char, re.escape(char)))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def allowed_number(q, number: str) -> bool:
    return any(pattern_regex(p).match(number) for p in q.web_callback_numbers)


def clean_text(raw: str, limit: int) -> str:
    """A visitor's name or subject as the agent's phone shows it: no quotes, angle brackets, backslashes
    or control characters (they would end the SIP display name), spaces collapsed."""
    text = "".join(" " if not c.isprintable() or c in '<>"\\' else c for c in raw or "")
    return " ".join(text.split())[:limit]


def clean_number(raw: str) -> str:
    """The number as typed, without spaces, dots, dashes and brackets."""
    return re.sub(r"[\s.\-()/]", "", raw or "")[:40]


def request(acd, queue: str, number: str, name: str = "", subject: str = "") -> dict:
    """Queue a web call-back (on the PBX's loop): {"position", "id"} or {"error": why, "reason": a code}."""
    from . import CALLBACK_KEEP, Waiter  # the package's (it calls this module)
    q = acd.queue(queue)
    if q is None or not q.web_callback:
        return {"error": "this queue takes no call-back requests", "reason": "queue"}
    number = clean_number(number)
    if not number or not allowed_number(q, number):
        return {"error": "this number cannot be called back", "reason": "number"}
    waiters = acd.waiting.setdefault(q.name, [])
    pending = [w for w in waiters if w.channel is None and w.web]
    if any(w.caller == number for w in pending):
        return {"error": "this number is already waiting to be called back", "reason": "duplicate"}
    if len(pending) >= q.web_callback_pending or len(waiters) >= q.max_length:
        return {"error": "too many requests are waiting; try again later", "reason": "full"}
    acd._ids += 1
    name, subject = clean_text(name, NAME_MAX), clean_text(subject, SUBJECT_MAX)
    label = " ".join(part for part in (name, f"({subject})" if subject else "") if part)
    record = QueueCall(q.name, number, q.priority, time.time(), callback=True)
    waiter = Waiter(acd._ids, q.name, None, number, label[:80] or "Web call-back",
                    acd.core.cfg.default_permission, record, web=True)
    waiters.append(waiter)
    acd.later(CALLBACK_KEEP, acd._callback_expired, waiter)
    acd._publish_queue(q.name)
    acd.dispatch()
    return {"position": acd.position(waiter), "id": waiter.id}

