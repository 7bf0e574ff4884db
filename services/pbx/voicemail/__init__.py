"""Voicemail: boxes per extension (store.py), callers leaving messages (`voicemail:<ext>`, deposit.py) and
the owner's menu (menu.py: the feature codes, pbx.feature_codes, *97 own box and *98 any box).

Call routing (calls.py) sends a caller to `voicemail:<ext>` on no answer, busy and do not disturb when
the extension has voicemail on (pbx.extensions.<ext>.voicemail, default on) and no forwarding of that
case; `Call.voicemail_greeting` says which greeting ("busy" or "unavailable") the caller hears.
Boxes live in <state>/pbx/voicemail/<ext>; counts go to the bus (store.TOPIC, `pbx.mailbox`), every
box's at PBX start (Voicemail.publish_all) and then at each change. New messages are mailed to their
users (with an MP3 copy when they chose it, compressed.py) and a box passing 90 % warns its owner
(mailer.py). Messages a crash cut short are recovered when their box is first used, and mailed as any.
A temporary greeting plays until removed or, when pbx.extensions.<ext>.voicemail_temporary_until is set,
until the end of that day in the box's time zone (system.timezone).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import ExtensionSettings
from ..percore import PerCore
from ..prompts import PromptError, PromptLibrary, normalise_language
from .compressed import mp3_copy
from .mailer import Mailer, MailTarget
from .store import TOPIC, BoxFull, Mailbox, Message, Pending

__all__ = ["TOPIC", "BoxFull", "MailTarget", "Mailbox", "Message", "Voicemail", "for_core"]
log = logging.getLogger("officebox.pbx.voicemail")


class Voicemail:
    """What the applications of one PBX core share: its boxes, its prompts, its bus."""

    def __init__(self, core) -> None:
        self.core = core
        state = Path(core.bindings_path).parent  # <data>/state/pbx
        self.root = state / "voicemail"
        self.prompts = PromptLibrary(state.parent.parent, core.cfg.prompt_language)
        self._boxes: dict[str, Mailbox] = {}
        self.mailer = Mailer(self)
        self.timezone = "UTC"  # the box's (system.timezone), from configure_mail
        self._copies: set[asyncio.Task] = set()

    def box(self, ext: str) -> Mailbox:
        """The box of an extension (made and recovered after a crash on first use)."""
        box = self._boxes.get(ext)
        if box is None:
            box = self._boxes[ext] = Mailbox(self.root, ext, self.core.cfg.voicemail.limits, self.core.events.bus)
            recovered = box.recover()
            for msg in recovered:
                log.info("mailbox %s: message %s recovered after a crash", ext, msg.id)
                self.kept(box, msg)
            if recovered:
                box.publish()
        box.limits = self.core.cfg.voicemail.limits  # follows a reload
        return box

    def deposit(self, box: Mailbox, pending: Pending, seconds: float | None = None) -> Message | None:
        """Keep a recorded message (store.Mailbox.deposit), then queue its mail and the 90 % warning."""
        msg = box.deposit(pending, seconds)
        if msg is not None:
            self.kept(box, msg)
        return msg

    def kept(self, box: Mailbox, msg: Message) -> None:
        """A new message in a box (left, forwarded or recovered after a crash): its MP3 copy, its mail."""
        if self.settings(box.extension).voicemail_compressed:
            try:
                task = asyncio.get_running_loop().create_task(asyncio.to_thread(mp3_copy, msg.wav))
            except RuntimeError:
                pass  # no loop (a tool): the mailer makes the copy when it needs it
            else:
                self._copies.add(task)
                task.add_done_callback(self._copies.discard)
        self.mailer.message_deposited(box, msg)

    def settings(self, ext: str) -> ExtensionSettings:
        return self.core.cfg.extensions.get(ext) or ExtensionSettings()

    def greeting(self, box: Mailbox, kind: str):
        """The recorded greeting callers hear now: the temporary one while it lasts, else `kind`'s."""
        temporary = box.greeting("temporary")
        until = self.settings(box.extension).voicemail_temporary_until
        if temporary is not None and (until is None or self.today() <= until):
            return temporary
        return box.greeting(kind)

    def today(self) -> datetime.date:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = datetime.UTC
        return datetime.datetime.now(zone).date()

    def configure_mail(self, config, lab: bool) -> None:
        """The mail service to submit to and the box's time zone, from the whole configuration (at PBX
        start and each reload)."""
        self.timezone = config.system.timezone
        self.mailer.configure(MailTarget.of(config, lab))

    def publish_all(self) -> int:
        """At PBX start: finish recordings a crash cut short and publish every box's counts (retained),
        so message-waiting knows them before the first change. Returns how many boxes."""
        boxes = [d.name for d in self.root.iterdir() if d.is_dir() and d.name in self.core.users] \
            if self.root.is_dir() else []
        for ext in boxes:
            self.box(ext).publish()
        return len(boxes)

    def user(self, ext: str):
        return self.core.users.get(ext)

    def language(self, ext: str | None) -> str:
        """The called user's language, else the box default (followed across reloads)."""
        self.prompts.default_language = normalise_language(self.core.cfg.prompt_language) or "en"
        user = self.user(ext) if ext else None
        return self.prompts.language(user.language if user else None)

    async def paths(self, lang: str, *keys: str) -> list[Path]:
        """Prompt files (generated on first use: in a thread)."""
        return await asyncio.to_thread(lambda: [self.prompts.prompt_path(k, lang) for k in keys])

    async def number(self, n: int, lang: str) -> list[Path]:
        return await asyncio.to_thread(self.prompts.say_number, n, lang, 8000, True)

    async def digits(self, digits: str, lang: str) -> list[Path]:
        return await asyncio.to_thread(self.prompts.say_digits, digits, lang)


for_core: PerCore[Voicemail] = PerCore(Voicemail)


async def say(channel, files: list[Path], interruptible: bool = True) -> str | None:
    """Play files in turn; a key stops it (returned)."""
    for path in files:
        key = await channel.play(path, interruptible=interruptible)
        if key is not None:
            return key
    return None


__all__ += ["PromptError", "say"]
