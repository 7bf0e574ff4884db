"""`app:prompt-record` (feature code pbx.feature_codes.prompt_record, *39): an admin records one of the
box's voice prompts from a phone. Their voicemail PIN (menu._login: three attempts, the abuse guard),
then a prompt number (its place in catalogue.numbered(), shown on the prompts page of the web admin),
then the prompt after the beep, # to end. It replaces the generated prompt in the admin's language, as
an upload does (PromptLibrary.replace: converted once, both rates); "restore default" on the prompts
page brings the generated one back. Several prompts in one call; # alone or silence ends it."""
from __future__ import annotations

import asyncio
import logging
import secrets

from .. import apps
from ..prompts import audio, catalogue
from . import for_core, say
from .menu import _login
from .store import MIN_SECONDS

log = logging.getLogger("officebox.pbx.voicemail")
RECORD_SECONDS = 60.0
ROUNDS = 5  # prompts per call


async def record_prompt(channel: apps.Channel) -> None:
    vm = for_core(channel.call.core)
    ext = channel.caller.extension if channel.caller is not None else None
    if not await channel.answer():
        return
    lang = vm.language(ext)
    user = vm.user(ext) if ext else None
    if user is None or user.role != "admin":
        await say(channel, await vm.paths(lang, "not-allowed", "goodbye"), False)
        channel.hangup()
        return
    if await _login(channel, vm, ext, lang) is None:
        return
    keys = catalogue.numbered()
    for _ in range(ROUNDS):
        key = await say(channel, await vm.paths(lang, "pr-enter-number"))
        typed = ((key or "") + await channel.collect(3, timeout=6.0, terminator="#")).strip("#")
        if not typed:
            break
        if not typed.isdigit() or not 1 <= int(typed) <= len(keys):
            await say(channel, await vm.paths(lang, "invalid-option"), False)
            continue
        await _record(channel, vm, keys[int(typed) - 1], lang, ext)
    await say(channel, await vm.paths(lang, "goodbye"), False)
    channel.hangup()


async def _record(channel, vm, key: str, lang: str, ext: str) -> None:
    await say(channel, await vm.paths(lang, "pr-record"), False)
    vm.root.mkdir(parents=True, exist_ok=True)
    temp = vm.root / f".prompt-{secrets.token_hex(4)}.wav"
    try:
        rec = await channel.record(temp, max_seconds=RECORD_SECONDS, silence_stop=3.0, beep=True)
        if rec.seconds < MIN_SECONDS:
            await say(channel, await vm.paths(lang, "vm-too-short"), False)
            return
        await asyncio.to_thread(vm.prompts.replace, key, lang, temp)
        log.info("prompt %s (%s) recorded by phone by %s", key, lang, ext)
        await say(channel, await vm.paths(lang, "pr-saved"), False)
    except (apps.MediaError, audio.AudioError) as err:
        log.warning("prompt %s (%s) not stored: %s", key, lang, err)
        await say(channel, await vm.paths(lang, "vm-not-stored"), False)
    finally:
        temp.unlink(missing_ok=True)
