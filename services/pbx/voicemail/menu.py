"""The owner's menu: `app:voicemail-own` (feature code *97: the caller's own box) and `app:voicemail-any`
(*98: box number asked). The PIN (the user's voicemail_pin_hash, argon2, set by the admin) is asked
unless the call comes from the box's own extension and its settings say so
(pbx.extensions.<ext>.voicemail_pin_from_own false). Three wrong attempts end the call; they are logged
and counted by the abuse guard as failed authentications of the caller's address.

"You have N new messages", then the new messages and the old ones; after (or during) each: 5 replay,
7 delete, 9 save, # next. A message played moves from INBOX to Old. Then 0 for the mailbox options:
record the unavailable greeting (1), the busy greeting (2), the name (3). The PIN is part of the
configuration (the admin sets it): the PBX has no way to change the configuration, so not from here.
"""
from __future__ import annotations

import asyncio
import logging
import secrets

from appliance.users import verify_password

from .. import apps
from ..config import ExtensionSettings
from . import Voicemail, for_core, say
from .store import MIN_SECONDS, Mailbox, Message

log = logging.getLogger("officebox.pbx.voicemail")
ATTEMPTS = 3
PIN_DIGITS = 12
KEY_WAIT = 8.0  # seconds for a key after a message's options


async def own_box(channel: apps.Channel) -> None:
    await _menu(channel, own=True)


async def any_box(channel: apps.Channel) -> None:
    await _menu(channel, own=False)


async def _menu(channel: apps.Channel, own: bool) -> None:
    vm = for_core(channel.call.core)
    caller_ext = channel.caller.extension if channel.caller is not None else None
    if not await channel.answer():
        return
    lang = vm.language(caller_ext)
    ext = await _login(channel, vm, caller_ext if own else None, lang)
    if ext is None:
        return
    box = vm.box(ext)
    lang = vm.language(ext)
    key = await _summary(channel, vm, box, lang)  # 0 during it: straight to the options
    if key != "0":
        for folder in ("INBOX", "Old"):
            for msg in box.messages(folder):
                await _message(channel, vm, box, msg, lang)
        key = await say(channel, await vm.paths(lang, "vm-no-more-messages", "vm-options-offer"))
        key = key or await channel.next_key(KEY_WAIT)
    if key == "0":
        await _options(channel, vm, box, lang)
    await say(channel, await vm.paths(lang, "goodbye"), False)


async def _login(channel, vm: Voicemail, ext: str | None, lang: str) -> str | None:
    """The box number (asked unless `ext`) once the PIN is right; None after three wrong attempts."""
    if ext is not None and vm.user(ext) is not None:
        settings = vm.core.cfg.extensions.get(ext) or ExtensionSettings()
        if not settings.voicemail_pin_from_own:
            return ext
    for attempt in range(1, ATTEMPTS + 1):
        box = ext or await _ask(channel, vm, lang, "vm-enter-mailbox", 6)
        pin = await _ask(channel, vm, lang, "vm-enter-pin", PIN_DIGITS)
        user = vm.user(box) if box else None
        hashed = user.voicemail_pin_hash if user else None
        if pin and hashed and await asyncio.to_thread(verify_password, hashed, pin):
            return box
        log.warning("voicemail: wrong PIN for box %s from %s (attempt %d)", box or "?", channel.call.caller, attempt)
        _count_failure(channel)
        if attempt < ATTEMPTS:
            await say(channel, await vm.paths(lang, "vm-invalid-pin"), False)  # keys typed now: the next PIN
    await say(channel, await vm.paths(lang, "vm-too-many-attempts", "goodbye"), False)
    channel.hangup()
    return None


async def _ask(channel, vm: Voicemail, lang: str, prompt: str, digits: int) -> str:
    key = await say(channel, await vm.paths(lang, prompt))
    if key == "#":
        return ""
    return (key or "") + await channel.collect(digits, timeout=6.0, terminator="#")


def _count_failure(channel) -> None:
    flow = getattr(channel.caller, "flow", None)
    if flow and len(flow) == 3:
        channel.call.core.guard.auth_failed(flow[1])


async def _summary(channel, vm: Voicemail, box: Mailbox, lang: str) -> str | None:
    new = box.counts()["new"]
    if new == 0 and not box.messages("Old"):
        files = await vm.paths(lang, "vm-no-messages")
    else:
        files = [*await vm.paths(lang, "vm-you-have"), *await vm.number(new, lang),
                 *await vm.paths(lang, "vm-new-message" if new == 1 else "vm-new-messages")]
    key = await say(channel, files)
    channel.flush_keys()
    return key


async def _message(channel, vm: Voicemail, box: Mailbox, msg: Message, lang: str) -> None:
    """Play one message and act on its keys until it is deleted, saved or skipped."""
    key = await channel.play(msg.wav)
    if msg.folder == "INBOX":
        msg = box.move(msg, "Old")
    for _ in range(10):  # bounded: a caller replaying forever still ends
        if key is None:
            key = await say(channel, await vm.paths(lang, "vm-message-keys")) or await channel.next_key(KEY_WAIT)
        if key == "5":
            key = await channel.play(msg.wav)
            continue
        if key == "7":
            box.delete(msg)
            await say(channel, await vm.paths(lang, "vm-deleted"), False)
            return
        if key == "9":
            box.move(msg, "Saved")
            await say(channel, await vm.paths(lang, "vm-saved"), False)
            return
        if key in ("#", None):
            return
        key = None  # another key: the options again


OPTIONS = {"1": ("unavailable", "vm-record-greeting"), "2": ("busy", "vm-record-greeting"),
           "3": ("name", "vm-record-name")}
GREETING_SECONDS = 60.0


async def _options(channel, vm: Voicemail, box: Mailbox, lang: str) -> None:
    for _ in range(10):
        key = await say(channel, await vm.paths(lang, "vm-options-menu")) or await channel.next_key(KEY_WAIT)
        if key in (None, "*"):
            return
        if key not in OPTIONS:
            await say(channel, await vm.paths(lang, "invalid-option"), False)
            continue
        kind, prompt = OPTIONS[key]
        await say(channel, await vm.paths(lang, prompt), False)
        await _record_greeting(channel, vm, box, kind, lang)


async def _record_greeting(channel, vm: Voicemail, box: Mailbox, kind: str, lang: str) -> None:
    """Record into a temporary name, kept as the greeting only when it is long enough."""
    temp = box.dir / f".greet-{secrets.token_hex(4)}.wav"
    try:
        rec = await channel.record(temp, max_seconds=GREETING_SECONDS, silence_stop=3.0, beep=True)
    except apps.ChannelGone:
        temp.unlink(missing_ok=True)
        raise
    except apps.MediaError as err:
        log.warning("mailbox %s: recording the %s greeting failed: %s", box.extension, kind, err)
        temp.unlink(missing_ok=True)
        await say(channel, await vm.paths(lang, "vm-not-stored"), False)
        return
    if rec.seconds < MIN_SECONDS:
        temp.unlink(missing_ok=True)
        await say(channel, await vm.paths(lang, "vm-too-short"), False)
        return
    box.save_greeting(kind, temp)
    await say(channel, await vm.paths(lang, "vm-greeting-saved"), False)
