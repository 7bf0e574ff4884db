"""Feature codes that change the caller's own settings (pbx.feature_codes): `app:forward-on` (*72: forward
all calls to the number dialled after the code, *72 0612345678, or asked), `app:forward-off` (*73),
`app:dnd-on` (*78), `app:dnd-off` (*79). Only a phone of an extension (its user authenticated by the
registrar) may use them, for that extension only; the change goes to the appliance through
core.change_config (changes.py) as a revision by pbx:<extension>, and the phone hears whether it held."""
from __future__ import annotations

import logging
import re

from .. import apps
from . import for_core, say

log = logging.getLogger("officebox.pbx.voicemail")
NUMBER = re.compile(r"^[0-9+][0-9]{1,31}$")


async def _change(channel: apps.Channel, kind: str, data: dict, done: str, ask_number: bool = False) -> None:
    ext = channel.caller.extension if channel.caller is not None else None
    vm = for_core(channel.call.core)
    if ext is None or vm.user(ext) is None:
        return  # a trunk or an unknown caller: unanswered (480)
    if not await channel.answer():
        return
    lang = vm.language(ext)
    if ask_number:
        key = await say(channel, await vm.paths(lang, "fwd-enter-number"))
        number = (key or "") + await channel.collect(32, timeout=8.0, terminator="#")
        data = {"target": number}
    if kind == "forwarding" and data["target"] is not None and not NUMBER.match(data["target"]):
        await say(channel, await vm.paths(lang, "invalid-option", "goodbye"), False)
        return
    error = await channel.call.core.change_config(kind, {"extension": ext, **data}, by=ext)
    if error is not None:
        log.warning("%s of %s by phone not applied: %s", kind, ext, error)
        await say(channel, await vm.paths(lang, "setting-not-changed", "goodbye"), False)
        return
    await say(channel, await vm.paths(lang, done, "goodbye"), False)


async def forward_on(channel: apps.Channel) -> None:
    code = channel.call.core.cfg.feature_codes.forward_on
    dialled = channel.call.dialled or ""
    number = dialled[len(code):] if dialled.startswith(code) else ""
    await _change(channel, "forwarding", {"target": number or None}, "fwd-on", ask_number=not number)


async def forward_off(channel: apps.Channel) -> None:
    await _change(channel, "forwarding", {"target": None}, "fwd-off")


async def dnd_on(channel: apps.Channel) -> None:
    await _change(channel, "dnd", {"on": True}, "dnd-on")


async def dnd_off(channel: apps.Channel) -> None:
    await _change(channel, "dnd", {"on": False}, "dnd-off")
