"""Caller names from the box's contacts (appliance/contacts.py) in the From of the INVITEs to phones.

A call from a trunk always shows the contact's name when its number is in the contacts (carriers send the
bare number, a stale name or nothing); the called user's personal contacts win over the shared ones. A
number not in the contacts keeps what the carrier sent. Internal calls keep the colleague's directory name.
The books are read in place (their files are readable by the PBX's user, appliance/contactshare.py), in
a worker thread at start and every POLL seconds when they changed; a call's lookup only reads memory."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from appliance import contacts

log = logging.getLogger("officebox.pbx")
MAX_DISPLAY = 60
POLL = 2.0  # an edited book shows on phones within this time


def attach(core, data_dir: Path) -> None:
    """Tell the PBX core where the box's contacts are and keep them loaded (the service, at start)."""
    core.contacts_dir = Path(data_dir)
    core._spawn(_keep_loaded(core))  # cancelled with the core's other tasks at stop


async def refresh(core) -> None:
    """Read again the books that changed (the shared one, the users' own)."""
    await asyncio.to_thread(contacts.load, core.contacts_dir, tuple(core.logins.values()))


async def _keep_loaded(core) -> None:
    while True:
        try:
            await refresh(core)
        except (OSError, ValueError) as exc:
            log.warning("contacts cannot be read: %s", exc)
        await asyncio.sleep(POLL)


def display_name(call, extension: str | None) -> str:
    """The display name of the INVITE `call` sends to the phone of `extension`."""
    data_dir = getattr(call.core, "contacts_dir", None)
    if data_dir is None or call.record.direction != "inbound" or not call.caller:
        return call.caller_name
    found = contacts.lookup_loaded(data_dir, call.caller, call.core.logins.get(extension or ""))
    return found.name[:MAX_DISPLAY] if found else call.caller_name
