"""The owner's menu: `app:voicemail-own` (feature code *97: the caller's own box) and `app:voicemail-any`
(*98: box number asked). The PIN (the user's voicemail_pin_hash, argon2, set by the admin) is asked
unless the call comes from the box's own extension and its settings say so
(pbx.extensions.<ext>.voicemail_pin_from_own false). Three wrong attempts end the call; they are logged
and counted by the abuse guard as failed authentications of the caller's address.

"Your mailbox is almost full" when it holds 90 % of a limit, "You have N new messages", then the new
messages and the old ones; after (or during) each: 5 replay, 7 delete, 9 save, 8 forward to another
box (with a recorded introduction before it), 2 call the caller back (a known number, dialled with the
owner's permission class), # next. A message played moves from INBOX to Old. Then 0 for the mailbox
options: record the unavailable greeting (1), the busy greeting (2), the name (3), a temporary greeting
(4: callers hear it instead of the others until it is removed with 5 or until its end date, asked after
it as 8 digits YYYYMMDD in the box's time zone, # for none), change the PIN (6: twice, 4 to
12 digits, not the extension number; hashed here and applied as a configuration change, changes.py).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import re
import secrets
import wave
from pathlib import Path

from appliance.users import verify_password

from .. import apps
from ..config import ExtensionSettings
from . import BoxFull, Voicemail, for_core, say
from .pin import PIN, hash_pin
from .store import MIN_SECONDS, WARN_AT, Mailbox, Message

log = logging.getLogger("officebox.pbx.voicemail")
ATTEMPTS = 3
PIN_DIGITS = 12
KEY_WAIT = 8.0  # seconds for a key after a message's options


def _key_wait() -> float:
    """KEY_WAIT; OFFICEBOX_VM_KEY_WAIT (seconds) lets a lab test shorten what it would wait out."""
    return float(os.environ.get("OFFICEBOX_VM_KEY_WAIT") or KEY_WAIT)


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
                if await _message(channel, vm, box, msg, lang) == LEFT:
                    return  # handed over to the caller called back
        key = await say(channel, await vm.paths(lang, "vm-no-more-messages", "vm-options-offer"))
        key = key or await channel.next_key(_key_wait())
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
    warning = await vm.paths(lang, "vm-almost-full") if box.fill() >= WARN_AT else []
    if new == 0 and not box.messages("Old"):
        files = await vm.paths(lang, "vm-no-messages")
    else:
        files = [*await vm.paths(lang, "vm-you-have"), *await vm.number(new, lang),
                 *await vm.paths(lang, "vm-new-message" if new == 1 else "vm-new-messages")]
    key = await say(channel, warning + files)
    channel.flush_keys()
    return key


LEFT = "left"  # _message: the owner was handed over to the caller called back


async def _message(channel, vm: Voicemail, box: Mailbox, msg: Message, lang: str) -> str | None:
    """Play one message and act on its keys until it is deleted, saved or skipped (LEFT: called back)."""
    key = await channel.play(msg.wav)
    if msg.folder == "INBOX":
        msg = box.move(msg, "Old")
    for _ in range(10):  # bounded: a caller replaying forever still ends
        if key is None:
            key = await say(channel, await vm.paths(lang, "vm-message-keys", "vm-message-more-keys")) \
                or await channel.next_key(_key_wait())
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
        if key == "8":
            await _forward(channel, vm, box, msg, lang)
            key = None
            continue
        if key == "2":
            if await _call_back(channel, vm, msg, lang):
                return LEFT
            key = None
            continue
        if key in ("#", None):
            return None
        key = None  # another key: the options again
    return None


async def _forward(channel, vm: Voicemail, box: Mailbox, msg: Message, lang: str) -> None:
    """8: the box number, an introduction (# at once: none), then intro + message into that box."""
    target = await _ask(channel, vm, lang, "vm-forward-to", 6)
    if not target or vm.user(target) is None or target == box.extension:
        await say(channel, await vm.paths(lang, "invalid-option"), False)
        return
    other = vm.box(target)
    try:
        other.room_seconds()
    except BoxFull:
        await say(channel, await vm.paths(lang, "vm-mailbox-full"), False)
        return
    await say(channel, await vm.paths(lang, "vm-record-introduction"), False)
    intro = box.dir / f".intro-{secrets.token_hex(4)}.wav"
    try:
        rec = await channel.record(intro, max_seconds=GREETING_SECONDS, silence_stop=3.0, beep=True)
        seconds = rec.seconds
    except apps.MediaError as err:
        log.warning("mailbox %s: recording an introduction failed: %s", box.extension, err)
        seconds = 0.0
    finally:
        if channel.gone:
            intro.unlink(missing_ok=True)
    try:
        pending = other.begin(msg.envelope.get("caller", ""), msg.envelope.get("caller_name", ""))
        pending.envelope["forwarded_by"] = box.extension
        parts = [intro, msg.wav] if seconds >= MIN_SECONDS else [msg.wav]
        await asyncio.to_thread(join_wavs, parts, pending.wav)
        kept = vm.deposit(other, pending)
    finally:
        intro.unlink(missing_ok=True)
    await say(channel, await vm.paths(lang, "vm-forwarded" if kept else "vm-not-stored"), False)


async def _call_back(channel, vm: Voicemail, msg: Message, lang: str) -> bool:
    """2: ring the caller's number for the owner (the dial plan checks the owner's permission class);
    True once answered (the owner is handed over)."""
    number = str(msg.envelope.get("caller", ""))
    if not CALLABLE.match(number):
        await say(channel, await vm.paths(lang, "vm-cannot-call-back"), False)
        return False
    await say(channel, await vm.paths(lang, "please-hold"), False)
    if await channel.bridge(number):
        return True
    await say(channel, await vm.paths(lang, "vm-cannot-call-back"), False)
    return False


OPTIONS = {"1": ("unavailable", "vm-record-greeting"), "2": ("busy", "vm-record-greeting"),
           "3": ("name", "vm-record-name"), "4": ("temporary", "vm-record-greeting")}
CALLABLE = re.compile(r"^[0-9+][0-9]{1,31}$")
GREETING_SECONDS = 60.0


async def _options(channel, vm: Voicemail, box: Mailbox, lang: str) -> None:
    for _ in range(10):
        key = await say(channel, await vm.paths(lang, "vm-options-menu", "vm-options-more")) \
            or await channel.next_key(_key_wait())
        if key in (None, "*"):
            return
        if key == "5":
            removed = box.remove_greeting("temporary")
            await say(channel, await vm.paths(lang, "vm-temporary-removed" if removed else "invalid-option"), False)
            continue
        if key == "6":
            await _change_pin(channel, vm, box, lang)
            continue
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
    if kind == "temporary":
        await _temporary_until(channel, vm, box, lang)


async def _temporary_until(channel, vm: Voicemail, box: Mailbox, lang: str) -> None:
    """The temporary greeting's last day (YYYYMMDD, today or later), # for none: a configuration change."""
    typed = await _ask(channel, vm, lang, "vm-temporary-until", 8)
    until = parse_day(typed, vm.today()) if typed else None
    if typed and until is None:
        await say(channel, await vm.paths(lang, "invalid-option"), False)
        return
    data = {"extension": box.extension, "until": until.isoformat() if until else None}
    error = await channel.call.core.change_config("voicemail_temporary_until", data, by=box.extension)
    if error is not None:
        log.warning("mailbox %s: the temporary greeting's end date was not applied: %s", box.extension, error)
        await say(channel, await vm.paths(lang, "setting-not-changed"), False)
    elif until is not None:
        await say(channel, await vm.paths(lang, "vm-temporary-until-set"), False)


def parse_day(digits: str, today: datetime.date) -> datetime.date | None:
    """YYYYMMDD from today to a year ahead; None for anything else."""
    try:
        day = datetime.datetime.strptime(digits, "%Y%m%d").date() if re.fullmatch(r"[0-9]{8}", digits) else None
    except ValueError:
        return None
    return day if day is not None and today <= day <= today + datetime.timedelta(days=366) else None


async def _change_pin(channel, vm: Voicemail, box: Mailbox, lang: str) -> None:
    """6: the new PIN twice; 4 to 12 digits, not the extension number; its argon2 hash is applied as a
    configuration change (the PIN itself never leaves this process)."""
    first = await _ask(channel, vm, lang, "vm-new-pin", PIN_DIGITS)
    if not PIN.match(first) or first == box.extension:
        await say(channel, await vm.paths(lang, "vm-pin-refused"), False)
        return
    again = await _ask(channel, vm, lang, "vm-repeat-pin", PIN_DIGITS)
    if again != first:
        await say(channel, await vm.paths(lang, "vm-pin-mismatch"), False)
        return
    hashed = await asyncio.to_thread(hash_pin, first)
    error = await channel.call.core.change_config("voicemail_pin", {"extension": box.extension, "pin_hash": hashed},
                                                  by=box.extension)
    if error is not None:
        log.warning("mailbox %s: the new PIN was not applied: %s", box.extension, error)
        await say(channel, await vm.paths(lang, "setting-not-changed"), False)
        return
    log.info("mailbox %s: PIN changed by phone", box.extension)
    await say(channel, await vm.paths(lang, "vm-pin-changed"), False)


def join_wavs(parts: list[Path], dest: Path) -> None:
    """Write the WAVs one after the other into `dest` (16-bit mono; a part at another rate is resampled
    to the first one's by repeating or dropping samples: 8 <-> 16 kHz only, as recordings are)."""
    with wave.open(str(parts[0]), "rb") as first:
        rate = first.getframerate()
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for part in parts:
            with wave.open(str(part), "rb") as w:
                frames = w.readframes(w.getnframes())
                if w.getframerate() * 2 == rate:
                    frames = b"".join(frames[i:i + 2] * 2 for i in range(0, len(frames), 2))
                elif w.getframerate() == rate * 2:
                    frames = b"".join(frames[i:i + 2] for i in range(0, len(frames), 4))
                out.writeframes(frames)
