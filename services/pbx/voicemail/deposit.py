"""`voicemail:<ext>`: a caller leaves a message. The user's recorded greeting (busy or unavailable, as
call routing says in Call.voicemail_greeting) or the generated one ("Extension 201 is not available";
the recorded name in place of the number when there is one), the beep, then the recording until #,
silence (pbx.voicemail.silence_stop), the box's maximum length or the caller hanging up (the message is
kept). A temporary greeting, while there is one and until its end date, replaces both. 0 ends the message and passes the
caller to the operator (pbx.voicemail.operator). Messages
shorter than store.MIN_SECONDS are discarded; a full box says so and hangs up.
"""
from __future__ import annotations

import logging

from .. import apps
from . import for_core, say
from .store import BoxFull

log = logging.getLogger("officebox.pbx.voicemail")


async def deposit(channel: apps.Channel) -> None:
    vm = for_core(channel.call.core)
    ext = channel.name
    if vm.user(ext) is None:
        return  # no such extension: unanswered, the caller gets 480
    box = vm.box(ext)
    lang = vm.language(ext)
    if not await channel.answer():
        return
    try:
        room = box.room_seconds()
    except BoxFull as full:
        log.info("%s", full)
        await say(channel, await vm.paths(lang, "vm-mailbox-full", "goodbye"), interruptible=False)
        return
    kind = "busy" if getattr(channel.call, "voicemail_greeting", "") == "busy" else "unavailable"
    await _greet(channel, vm, box, kind, lang)
    call = channel.call
    pending = box.begin(call.caller, call.caller_name)
    settings = call.core.cfg.voicemail
    operator = settings.operator
    try:
        rec = await channel.record(pending.wav, max_seconds=room, silence_stop=settings.silence_stop, beep=True,
                                   terminators="#0" if operator else "#")
    except apps.ChannelGone:
        vm.deposit(box, pending)  # hang-up keeps the message
        raise
    except apps.MediaError as err:
        log.warning("mailbox %s: recording failed: %s", ext, err)
        kept = vm.deposit(box, pending)
        await say(channel, await vm.paths(lang, "vm-message-saved" if kept else "vm-not-stored"), False)
        return
    kept = vm.deposit(box, pending, rec.seconds)
    if rec.key == "0" and operator:
        await channel.bridge(operator)
        return
    await say(channel, await vm.paths(lang, "vm-message-saved" if kept else "vm-too-short", "goodbye"), False)


async def _greet(channel, vm, box, kind: str, lang: str) -> None:
    """The greeting; a key pressed during it skips to the beep."""
    recorded = vm.greeting(box, kind)
    if recorded is not None:
        files = [recorded]
    else:
        name = box.greeting("name")
        who = [name] if name else await vm.digits(box.extension, lang)
        files = [*await vm.paths(lang, "vm-extension"), *who,
                 *await vm.paths(lang, "vm-is-busy" if kind == "busy" else "vm-is-unavailable", "vm-leave-message")]
    if await say(channel, files) is not None:
        channel.flush_keys()
