"""Caller names from the box's contacts (appliance/contacts.py) in the From of the INVITEs to phones.

A call from a trunk always shows the contact's name when its number is in the contacts (carriers send the
bare number, a stale name or nothing); the called user's personal contacts win over the shared ones. A
number not in the contacts keeps what the carrier sent. Internal calls keep the colleague's directory name.
The books are read in place (their files are readable by the PBX's user, appliance/contactshare.py); a
lookup is a stat of two files, a book is parsed again only when it changed."""
from __future__ import annotations

from pathlib import Path

from appliance import contacts

MAX_DISPLAY = 60


def attach(core, data_dir: Path) -> None:
    """Tell the PBX core where the box's contacts are (the service does this at start)."""
    core.contacts_dir = Path(data_dir)


def display_name(call, extension: str | None) -> str:
    """The display name of the INVITE `call` sends to the phone of `extension`."""
    data_dir = getattr(call.core, "contacts_dir", None)
    if data_dir is None or call.record.direction != "inbound" or not call.caller:
        return call.caller_name
    found = contacts.lookup(data_dir, call.caller, call.core.logins.get(extension or ""))
    return found.name[:MAX_DISPLAY] if found else call.caller_name
