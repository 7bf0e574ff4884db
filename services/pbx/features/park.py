"""Call park: a phone transfers its call to the park code (the first free slot) or to a slot number
(pbx.park: first_slot and on); the parker hears the slot number (prompts "park-parked-on" + digits),
then the parked party hears music on hold (the parker's class) until someone dials the slot (the
retriever takes the call), or until the park timeout: then the parker's phone rings (`ring_back`
seconds), and if nobody answers there the call goes to pbx.park.fallback, else to the operator
(pbx.voicemail.operator), else to the number the caller first dialled. The parked party hanging up
frees the slot. A slot shows on busy lamp fields (the dialog package, resource = the slot number):
confirmed while a call is parked there, terminated when it leaves.

Applications (apps.py): app:park (the park code) and app:park-<slot> (each slot number; configure()
registers those of the configuration)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field

from .. import apps
from ..endpoint import ChannelGone, voice_data_dir
from ..moh import MohLibrary
from ..prompts import PromptLibrary

log = logging.getLogger("officebox.pbx.park")
ANNOUNCE_LIMIT = 10.0  # seconds the parker's announcement may take
_lots: "weakref.WeakKeyDictionary[object, dict[str, Parked]]" = weakref.WeakKeyDictionary()


@dataclass
class Parked:
    slot: str
    channel: apps.Channel
    parker: str  # extension (or label) of who parked it
    first_dialled: str
    announced: list[str] = field(default_factory=list)  # prompt files played to the parker
    retrieved: asyncio.Future | None = None  # set to the retriever's leg


def lot(core) -> dict[str, Parked]:
    """slot number -> the call parked there, for one PBX."""
    return _lots.setdefault(core, {})


def slots(core) -> list[str]:
    """The park slots in use: those that are no extension or ring group number (those keep theirs)."""
    groups = {g.number for g in core.cfg.groups}
    return [n for n in core.cfg.park.numbers() if n not in core.users and n not in groups]


def configure(cfg) -> None:
    for number in cfg.park.numbers():
        apps.register(f"app:park-{number}", park_or_retrieve)


async def park_or_retrieve(channel: apps.Channel) -> None:
    """A slot: a transfer to it parks there (if free); a call to it takes the call parked there."""
    call = channel.call
    slot = channel.name.partition("-")[2]
    if call.transferor is not None:
        await _park(channel, slot if slot not in lot(call.core) else None)
    else:
        await _retrieve(channel, slot)


async def park_code(channel: apps.Channel) -> None:
    """The park code: a transfer parks in the first free slot; a call to it has nothing to park."""
    if channel.call.transferor is not None:
        free = [n for n in slots(channel.call.core) if n not in lot(channel.call.core)]
        await _park(channel, free[0] if free else None)
        return
    if await channel.answer():
        await _say(channel, ["park-empty"])
        channel.hangup()


async def _park(channel: apps.Channel, slot: str | None) -> None:
    call = channel.call
    core = call.core
    parker = call.transferor
    if slot is None or slot not in slots(core):
        log.info("call %s: no free park slot", call.id)
        return  # unanswered: the transfer fails, the parker keeps the call
    parked = Parked(slot, channel, parker.extension or parker.label, call.dialled)
    lot(core)[slot] = parked  # taken at once: a second park in the same instant gets another slot
    try:
        parked.announced = await _announce(call, parker, slot)
        if not await channel.answer():
            return
        core.events.device(slot, call, "connected", initiator=False, peer=channel.caller.label)
        log.info("call %s parked on %s by %s", call.id, slot, parked.parker)
        await _wait_parked(channel, parked)
    except ChannelGone:
        pass
    finally:
        if lot(core).get(slot) is parked:
            del lot(core)[slot]
        core.events.device(slot, call, "cleared", initiator=False, peer="")


async def _announce(call, parker, slot: str) -> list[str]:
    """Play "parked on <slot>" to the parker on its own relay side (it still waits for the transfer's
    outcome); the files played to their end."""
    side = parker.side
    m = parker.sdp.audio() if parker.sdp else None
    if side is None or m is None or parker.ended:
        return []
    pt = next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), None)
    if pt is None:
        return []
    rate = 16000 if m.codec(pt) == "G722" else 8000
    user = call.core.users.get(parker.extension or "")
    library = PromptLibrary(voice_data_dir(call.core), call.core.cfg.prompt_language)

    def files():
        lang = library.language(user.language if user else None)
        return [library.prompt_path("park-parked-on", lang, rate), *library.say_digits(slot, lang, rate)]
    try:
        paths = await asyncio.to_thread(files)
    except Exception:
        log.exception("no park announcement")
        return []
    played: list[str] = []
    done: asyncio.Queue = asyncio.Queue()
    side.listener = lambda msg: done.put_nowait(msg) if msg.get("ev") == "play_done" else None
    side.terminate(m.codec(pt), pt, next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None),
                   send=True, inband=False)
    loop = asyncio.get_running_loop()
    end = loop.time() + ANNOUNCE_LIMIT
    try:
        for n, path in enumerate(paths, start=1 << 22):
            side.play(n, file=str(path))
            msg = await asyncio.wait_for(done.get(), max(0.1, end - loop.time()))
            if msg.get("reason") != "end" or parker.ended:
                break
            played.append(str(path))
    except TimeoutError:
        pass
    finally:
        side.listener = None
    return played


async def _wait_parked(channel: apps.Channel, parked: Parked) -> None:
    call = channel.call
    settings = call.core.cfg.park
    parked.retrieved = asyncio.get_running_loop().create_future()
    music = asyncio.ensure_future(_music(channel, parked.parker))
    gone = asyncio.ensure_future(channel.wait_gone(settings.timeout))
    try:
        await asyncio.wait([parked.retrieved, gone], timeout=settings.timeout, return_when=asyncio.FIRST_COMPLETED)
        if parked.retrieved.done():
            return  # _retrieve hands the caller over
        if channel.gone:
            raise ChannelGone()  # the parked caller hung up
        del lot(call.core)[parked.slot]  # ringing back: nobody can take it from the slot any more
        fallback = settings.fallback or call.core.cfg.voicemail.operator or parked.first_dialled
        for target in dict.fromkeys(t for t in (parked.parker, fallback) if t):
            log.info("call %s: park timeout on %s, ringing %s", call.id, parked.slot, target)
            if await channel.bridge(target, timeout=settings.ring_back):
                return
        channel.hangup()
    finally:
        gone.cancel()
        music.cancel()
        with contextlib.suppress(asyncio.CancelledError, ChannelGone):
            await music


async def _music(channel: apps.Channel, holder: str) -> None:
    core = channel.call.core
    settings = core.cfg.extensions.get(holder)
    rate = 16000 if channel._rate() == 16000 else 8000
    files = await asyncio.to_thread(MohLibrary(voice_data_dir(core)).class_files, core.cfg,
                                    settings.moh_class if settings else "default", rate)
    for turn in range(100000):
        await channel.play(files[turn % len(files)], interruptible=False)


async def _retrieve(channel: apps.Channel, slot: str) -> None:
    call = channel.call
    parked = lot(call.core).get(slot)
    if not await channel.answer():
        return
    if parked is None or parked.retrieved is None or parked.retrieved.done() or parked.channel.gone:
        await _say(channel, ["park-empty"])
        channel.hangup()
        return
    retriever = channel.caller
    parked.retrieved.set_result(retriever)
    del lot(call.core)[slot]
    call.legs.remove(channel)  # the retriever, alone in its call, joins the parked one
    channel.bye()
    parked.channel.call.hand_over(parked.channel, retriever)
    log.info("call %s taken from park slot %s by %s", parked.channel.call.id, slot, retriever.label)


async def _say(channel: apps.Channel, keys: list[str]) -> None:
    library = channel.prompts()
    files = await asyncio.to_thread(lambda: [library.prompt_path(k, channel.language(), channel._rate()) for k in keys])
    await channel.play_files(files, interruptible=False)


apps.register("app:park", park_code)
