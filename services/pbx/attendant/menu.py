"""`attendant:<name>`: the auto attendant. The time profile's state (timeprofile.py) picks the entry menu
(Attendant.entry) and each menu's greeting: that state's own (recorded or uploaded, else its typed text,
Menu.state_texts), else the menu's (recorded or uploaded, else its typed text by espeak-ng), else the
generated welcome; then the menu waits for a key. A digit followed within DIGIT_GAP by more digits is an
extension or ring group number dialled directly (Menu.dial_extensions). Unknown keys and timeouts replay
the menu until Attendant.attempts, then the caller goes to the fallback (or hears goodbye). Every loop
is bounded (MAX_STEPS): a caller can never keep a channel forever.
"""
from __future__ import annotations

import asyncio
import logging

from .. import apps
from ..config import Attendant, Menu, MenuOption
from ..voicemail import for_core, say
from . import clock, timeprofile
from .handover import connect, greetings, run_application

log = logging.getLogger("officebox.pbx.attendant")
DIGIT_GAP = 1.5  # seconds between the digits of a number dialled directly
MAX_STEPS = 40  # menus played, options taken and retries, in all, for one caller
MAX_NUMBER = 6


async def attendant(channel: apps.Channel) -> None:
    core = channel.call.core
    att = core.cfg.attendant(channel.name)
    if att is None:
        return  # unanswered: 480
    if not await channel.answer():
        return
    await Session(channel, att).run()


class Session:
    def __init__(self, channel, att: Attendant) -> None:
        self.channel, self.att = channel, att
        self.core = channel.call.core
        self.vm = for_core(self.core)
        base = self.vm.language(None)  # also follows the box's prompt language
        self.lang = self.vm.prompts.language(att.language) if att.language else base
        profile = self.core.cfg.time_profile(att.profile) if att.profile else None
        self.state = timeprofile.state(profile, clock.now())  # for the whole call

    def entry_menu(self) -> Menu:
        log.info("attendant %s: %s, call %s", self.att.name, self.state, self.channel.call.id)
        return self.att.menu(self.att.entry.get(self.state, "")) or self.att.menus[0]

    async def run(self) -> None:
        menu, failures = self.entry_menu(), 0
        for _ in range(MAX_STEPS):
            key = await say(self.channel, await self.greeting(menu)) or await self.channel.next_key(self.att.timeout)
            if key is None:
                failures += 1
            else:
                number = await self.more_digits(menu, key)
                option = next((o for o in menu.options if o.key == key), None)
                if number is not None:
                    if await self.transfer(number):
                        return
                    failures += 1
                elif option is None:
                    await say(self.channel, await self.vm.paths(self.lang, "invalid-option"), False)
                    failures += 1
                else:
                    outcome = await self.take(option)
                    if outcome == "done":
                        return
                    if outcome == "failed":
                        failures += 1
                    elif isinstance(outcome, Menu):
                        menu, failures = outcome, 0
            if failures >= self.att.attempts:
                break
        await self.fall_back()

    async def more_digits(self, menu: Menu, key: str) -> str | None:
        """A number dialled directly: the key and the digits that follow it quickly, if they make one."""
        if not (menu.dial_extensions and key.isdigit()):
            return None
        rest = await self.channel.collect(MAX_NUMBER - 1, timeout=DIGIT_GAP, terminator="#")
        if not rest:
            return None
        number = key + rest
        known = number in self.core.users or any(g.number == number for g in self.core.cfg.groups)
        if not known:
            await say(self.channel, await self.vm.paths(self.lang, "invalid-option"), False)
            return ""  # a failure, not a transfer
        return number

    async def take(self, option: MenuOption):
        """'done' (the caller has gone on), 'failed', 'again' or the next Menu."""
        action, target = option.action, option.target
        if action == "repeat":
            return "again"
        if action == "hangup":
            await say(self.channel, await self.vm.paths(self.lang, "goodbye"), False)
            self.channel.hangup()
            return "done"
        if action == "menu":
            return self.att.menu(target) or "failed"
        destination = {"voicemail": f"voicemail:{target}", "attendant": f"attendant:{target}",
                       "dial_by_name": "app:dial-by-name"}.get(action)
        if destination:
            return "done" if await run_application(self.channel, destination) else "failed"
        if action == "operator":
            target = self.att.operator or self.core.cfg.operator_extension() or ""
        return "done" if await self.transfer(target) else "failed"

    async def transfer(self, number: str) -> bool:
        if not number:
            return False
        await say(self.channel, await self.vm.paths(self.lang, "transferring"), False)
        if await connect(self.channel, number, self.att.permission):
            return True
        await say(self.channel, await self.vm.paths(self.lang, "number-unavailable"), False)
        return False

    async def fall_back(self) -> None:
        if self.att.fallback and not self.channel.gone:
            log.info("attendant %s: to the fallback %s", self.att.name, self.att.fallback)
            if await connect(self.channel, self.att.fallback, self.att.permission):
                return
        await say(self.channel, await self.vm.paths(self.lang, "goodbye"), False)
        self.channel.hangup()

    async def greeting(self, menu: Menu) -> list:
        store = greetings(self.core)

        def choose():
            return (store.chosen(store.menu_stem(self.att.name, menu.name, self.state),
                                 menu.state_texts.get(self.state, ""), self.lang)
                    or store.chosen(store.menu_stem(self.att.name, menu.name), menu.greeting_text, self.lang))
        chosen = await asyncio.to_thread(choose)
        if chosen is not None:
            return [chosen]
        keys = ["att-welcome", "att-dial-extension"]
        if any(o.action == "operator" and o.key == "0" for o in menu.options):
            keys.append("att-operator")
        return await self.vm.paths(self.lang, *keys)
