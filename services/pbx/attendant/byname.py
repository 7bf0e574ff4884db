"""`app:dial-by-name` (feature code pbx.feature_codes.dial_by_name, and attendant menus): the caller types
the first letters of a surname or a first name on the keypad (2 ABC ... 9 WXYZ, accents ignored), hears
each match (the user's recorded voicemail name, else the full name by espeak-ng) and presses 1 to be
put through, 2 for the next one. Bounded: ATTEMPTS searches, MAX_MATCHES names each.
"""
from __future__ import annotations

import logging
import unicodedata

from .. import apps
from ..voicemail import for_core, say
from .handover import connect, spoken

KEYPAD = {c: d for d, letters in {"2": "abc", "3": "def", "4": "ghi", "5": "jkl", "6": "mno", "7": "pqrs",
                                  "8": "tuv", "9": "wxyz"}.items() for c in letters}
log = logging.getLogger("officebox.pbx.attendant")
MIN_KEYS, MAX_KEYS = 1, 8
ATTEMPTS = 3
MAX_MATCHES = 9
CHOICE_WAIT = 6.0


def keypad(word: str) -> str:
    """The digits that type a word: 'Durand' -> '387263'."""
    plain = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()
    return "".join(KEYPAD.get(c, "") for c in plain)


def matches(users, digits: str) -> list:
    """Enabled users with an extension whose surname (last word) or first name starts with the keys,
    by surname then first name."""
    found = []
    for user in users:
        if not user.enabled or not user.extension:
            continue
        words = user.full_name.split()
        if words and (keypad(words[-1]).startswith(digits) or keypad(words[0]).startswith(digits)):
            found.append(user)
    return sorted(found, key=lambda u: (u.full_name.split()[-1].lower(), u.full_name.lower()))[:MAX_MATCHES]


async def dial_by_name(channel: apps.Channel) -> None:
    if not await channel.answer():
        return
    core = channel.call.core
    vm = for_core(core)
    lang = vm.language(None)
    for _ in range(ATTEMPTS):
        key = await say(channel, await vm.paths(lang, "dbn-instructions"))
        digits = ((key or "") + await channel.collect(MAX_KEYS, timeout=4.0, terminator="#")).strip("*#")
        found = matches(core.users.values(), digits) if len(digits) >= MIN_KEYS and digits.isdigit() else []
        log.info("dial by name, call %s: %r matches %d names", channel.call.id, digits, len(found))
        for user in found:
            name = vm.box(user.extension).greeting("name")
            files = [name or await spoken(core, user.full_name, lang), *await vm.paths(lang, "dbn-confirm")]
            choice = await say(channel, files) or await channel.next_key(CHOICE_WAIT)
            if choice == "1":
                await say(channel, await vm.paths(lang, "transferring"), False)
                if await connect(channel, user.extension, "internal"):
                    return
                await say(channel, await vm.paths(lang, "number-unavailable"), False)
                break
            if choice != "2":
                break
        else:  # no name, or none taken: search again
            await say(channel, await vm.paths(lang, "dbn-no-match"), False)
    await say(channel, await vm.paths(lang, "goodbye"), False)
    channel.hangup()
