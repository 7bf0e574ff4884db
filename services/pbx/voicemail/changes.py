"""What a phone may change in the configuration (services/pbx/changes.py), always its own extension's
(`by`: the extension the PBX authenticated): forwarding of all calls (*72/*73), do not disturb (*78/*79)
and, from the owner's menu, the voicemail PIN (the PBX sends its argon2 hash, never the PIN) and the
temporary greeting's end date."""
from __future__ import annotations

import datetime
import re

from .. import changes
from ..config import TARGET

ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]{8,}\$[A-Za-z0-9+/]{16,}$")


def _user(doc: dict, ext: str) -> dict:
    for user in doc.get("users") or []:
        if isinstance(user, dict) and user.get("extension") == ext:
            return user
    raise ValueError(f"{ext} is not an extension")


def _settings(doc: dict, ext: str) -> dict:
    _user(doc, ext)
    return doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {})


@changes.kind("forwarding")
def forwarding(doc: dict, data: dict) -> str:
    """data {"extension", "target": a number or None (off)}."""
    ext, target = str(data.get("extension", "")), data.get("target")
    if target is not None and (not isinstance(target, str) or not re.fullmatch(TARGET, target)):
        raise ValueError("the forwarding target is not a number")
    if target == ext:
        raise ValueError(f"extension {ext} cannot forward to itself")
    _settings(doc, ext)["forward_always"] = target
    return f"forwarding of {ext} set by phone to {target}" if target else f"forwarding of {ext} cancelled by phone"


@changes.kind("dnd")
def dnd(doc: dict, data: dict) -> str:
    """data {"extension", "on": bool}."""
    ext, on = str(data.get("extension", "")), data.get("on")
    if not isinstance(on, bool):
        raise ValueError("do not disturb is on or off")
    _settings(doc, ext)["dnd"] = on
    return f"do not disturb of {ext} {'on' if on else 'off'} by phone"


@changes.kind("voicemail_pin")
def voicemail_pin(doc: dict, data: dict) -> str:
    """data {"extension", "pin_hash": the argon2id hash of the new PIN}."""
    ext, hashed = str(data.get("extension", "")), data.get("pin_hash")
    if not isinstance(hashed, str) or len(hashed) > 200 or not ARGON2.match(hashed):
        raise ValueError("the new PIN must come as an argon2id hash")
    _user(doc, ext)["voicemail_pin_hash"] = hashed
    return f"voicemail PIN of {ext} changed by phone"


@changes.kind("voicemail_temporary_until")
def voicemail_temporary_until(doc: dict, data: dict) -> str:
    """data {"extension", "until": "YYYY-MM-DD" or None (until removed)}."""
    ext, until = str(data.get("extension", "")), data.get("until")
    if until is not None:
        try:
            until = datetime.date.fromisoformat(until).isoformat() if isinstance(until, str) else None
        except ValueError:
            until = None
        if until is None:
            raise ValueError("the end date is a day as YYYY-MM-DD")
    _settings(doc, ext)["voicemail_temporary_until"] = until
    return f"temporary greeting of {ext} until {until}, set by phone" if until else \
        f"temporary greeting of {ext} without an end date, set by phone"
