"""Passing an attendant's caller on: to a number (rung with a given permission class) or to another
application run on the same, already answered, channel."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .. import apps, dialplan
from .greetings import Greetings

log = logging.getLogger("officebox.pbx.attendant")
RING_SECONDS = 30.0


class Continued:
    """An answered channel seen by another application as its own: its destination and name are that
    application's, answer() says yes while the caller is there. Everything else is the channel."""

    def __init__(self, channel, destination: str) -> None:
        self._channel = channel
        self.destination = destination
        self.name = destination.partition(":")[2]

    async def answer(self) -> bool:
        return not self._channel.gone

    def __getattr__(self, attr: str):
        return getattr(self._channel, attr)


async def run_application(channel, destination: str) -> bool:
    """Run the application of `destination` for the caller; False if there is none."""
    app = apps.lookup(destination)
    if app is None:
        log.warning("attendant: no application %s", destination)
        return False
    await app(Continued(channel, destination))
    return True


async def connect(channel, number: str, authority: str, timeout: float = RING_SECONDS) -> bool:
    """Ring `number` (extension, group or external number, checked against `authority`) for the caller and
    hand the caller over when answered (True: the application returns); False: refused or not answered."""
    if apps.is_destination(number):
        return await run_application(channel, number)
    call = channel.call
    core = call.core
    dest = dialplan.classify(number, core.cfg, core.users.keys())
    if dest.kind == "application":
        return await run_application(channel, dest.number)
    if not dialplan.permitted(authority, dest):
        log.info("attendant: %s is not allowed for class %s", number, authority)
        return False
    leg = await core.originate(number, caller=call.caller, caller_name=call.caller_name, authority=authority,
                               timeout=timeout)
    if leg is None:
        return False
    if channel.gone:
        leg.call.media_down("caller_left")
        raise apps.ChannelGone()
    call.hand_over(real(channel), leg)
    return True


def real(channel):
    while isinstance(channel, Continued):
        channel = channel._channel
    return channel


def greetings(core) -> Greetings:
    return Greetings(Path(core.bindings_path).parent.parent.parent)


async def spoken(core, text: str, lang: str) -> Path:
    return await asyncio.to_thread(greetings(core).spoken, text, lang)
