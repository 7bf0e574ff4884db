"""The personal assistant (`assistant:<ext>`): call routing sends a call the extension did not answer
here when pbx.extensions.<ext>.assistant is enabled. The caller hears the user's greeting (recorded by
phone, else the typed text, else "extension ... is not available") and "press 1 to ..., press 2 ..."
for each choice: voicemail, the user's mobile, another number, a colleague, the operator. Numbers
outside are rung with the user's own permission class. No key after ATTEMPTS rounds: voicemail if it
is a choice, else goodbye.
"""
from __future__ import annotations

import asyncio
import logging

from .. import apps
from ..config import AssistantChoice, ExtensionSettings, PersonalAssistant
from ..voicemail import for_core, say
from .handover import connect, greetings, run_application

log = logging.getLogger("officebox.pbx.attendant")
ATTEMPTS = 3
KEY_WAIT = 5.0


def settings(core, ext: str) -> PersonalAssistant:
    return (core.cfg.extensions.get(ext) or ExtensionSettings()).assistant


async def assistant(channel: apps.Channel) -> None:
    core = channel.call.core
    ext = channel.name
    pa = settings(core, ext)
    if core.users.get(ext) is None or not pa.choices:
        return  # unanswered: 480
    if not await channel.answer():
        return
    vm = for_core(core)
    lang = vm.language(ext)
    menu = [*await _greeting(channel, ext, pa, lang)]
    for i, choice in enumerate(pa.choices, 1):
        menu += [*await vm.paths(lang, "press"), *await vm.digits(str(i), lang),
                 *await vm.paths(lang, f"pa-{choice.kind}")]
    for _ in range(ATTEMPTS):
        key = await say(channel, menu) or await channel.next_key(KEY_WAIT)
        if key is None:
            continue
        if not key.isdigit() or not 1 <= int(key) <= len(pa.choices):
            await say(channel, await vm.paths(lang, "invalid-option"), False)
            continue
        if await _take(channel, ext, pa, pa.choices[int(key) - 1]):
            return
        await say(channel, await vm.paths(lang, "number-unavailable"), False)
    if any(c.kind == "voicemail" for c in pa.choices):
        await run_application(channel, f"voicemail:{ext}")
        return
    await say(channel, await vm.paths(lang, "goodbye"), False)
    channel.hangup()


async def _take(channel, ext: str, pa: PersonalAssistant, choice: AssistantChoice) -> bool:
    core = channel.call.core
    if choice.kind == "voicemail":
        return await run_application(channel, f"voicemail:{ext}")
    number = {"mobile": pa.mobile, "operator": core.cfg.operator_extension() or ""}.get(choice.kind, choice.number)
    if not number:
        return False
    log.info("assistant of %s: caller %s to %s (%s)", ext, channel.call.caller, number, choice.kind)
    vm = for_core(core)
    await say(channel, await vm.paths(vm.language(ext), "transferring"), False)
    return await connect(channel, number, core.permission_of_extension(ext))


async def _greeting(channel, ext: str, pa: PersonalAssistant, lang: str) -> list:
    core = channel.call.core
    store = greetings(core)
    chosen = await asyncio.to_thread(store.chosen, store.assistant_stem(ext), pa.greeting_text, lang)
    if chosen is not None:
        return [chosen]
    vm = for_core(core)
    name = vm.box(ext).greeting("name")
    who = [name] if name else await vm.digits(ext, lang)
    return [*await vm.paths(lang, "vm-extension"), *who, *await vm.paths(lang, "vm-is-unavailable")]
