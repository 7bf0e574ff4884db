"""The caller's side of a queue: the application `queue:<name>` (and `enter_queue` for an IVR that chose
a queue and a priority). The caller is answered and hears the queue's music on hold; every
`announce_every` seconds their position and estimated wait; every `callback_every` seconds the offer to
press 1 to be called back (they keep their place, the box calls them when an agent is free). When the
ACD (the package's Acd.serve) has an agent's answered leg for them, the music stops and the caller is
handed over. After `max_wait`, when the queue is full, or when nobody is logged in (also while they
wait): the overflow destination, or a sorry message; never silence."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .. import apps
from ..endpoint import ChannelGone, voice_data_dir
from ..moh import MohLibrary
from . import Acd, Waiter, for_core

log = logging.getLogger("officebox.pbx.acd")
FIRST_ANNOUNCEMENT = 3.0  # seconds after entry: a caller served at once hears none


async def run(channel: apps.Channel) -> None:
    acd = for_core(channel.call.core)
    q = acd.queue(channel.name)
    if q is None:
        return  # not answered: 480
    if not await channel.answer():
        return
    await enter_queue(channel, q.name, priority_of(channel, q))


def priority_of(channel, q) -> int:
    """The queue's default priority, raised by the DID the caller dialled and by the VIP list."""
    priority = q.priority
    req = getattr(channel.call.tx, "request", None)
    if req is not None and q.did_priorities:
        for called in (req.uri.user, req.to.uri.user):
            if called in q.did_priorities:
                priority = max(priority, q.did_priorities[called])
    if channel.call.caller in q.vip_callers:
        priority = max(priority, q.vip_priority)
    return priority


async def enter_queue(channel: apps.Channel, name: str, priority: int | None = None) -> None:
    """Queue an answered caller (an IVR passes the priority of the caller's choice); returns when the
    caller was handed to an agent, asked to be called back, overflowed or left."""
    acd = for_core(channel.call.core)
    q = acd.queue(name)
    if q is None:
        raise ValueError(f"no queue {name!r}")
    waiter, refused = acd.enter(q, channel, q.priority if priority is None else priority)
    if refused:
        acd.leave(waiter, refused)
        await overflow(channel, q)
        return
    try:
        await _wait(channel, acd, q, waiter)
    except ChannelGone:
        if waiter.channel is channel:
            _handed(waiter, False)  # the agent answered as the caller left: Acd hangs the agent up
            acd.leave(waiter, "abandoned")
        raise


def _handed(waiter: Waiter, done: bool) -> None:
    if waiter.handed is not None and not waiter.handed.done():
        waiter.handed.set_result(done)


async def _wait(channel, acd: Acd, q, waiter: Waiter) -> None:
    core = channel.call.core
    rate = channel._rate()
    music = await asyncio.to_thread(MohLibrary(voice_data_dir(core)).class_files, core.cfg, q.moh_class, rate)
    start = time.monotonic()
    next_announce = start + FIRST_ANNOUNCEMENT if q.announce_every else float("inf")
    next_offer = start + q.callback_every if q.callback_every else float("inf")
    deadline = start + q.max_wait
    offered, turn = False, 0
    while True:
        if waiter.leg is not None:
            leg = waiter.leg
            if leg.ended or leg.call.state != "connected" or leg.call.legs != [leg]:
                _handed(waiter, False)  # the agent hung up first: the caller keeps waiting
                waiter.leg = None
                continue
            channel.call.hand_over(channel, leg)
            _handed(waiter, True)
            return
        if waiter.overflow:
            break
        now = time.monotonic()
        if now >= deadline and not waiter.serving:
            waiter.overflow = "timeout"
            continue
        key = None
        if now >= next_announce and not waiter.serving:
            next_announce = now + q.announce_every
            key = await _during(waiter, _announce(channel, acd, waiter))
        elif now >= next_offer and not waiter.serving:
            next_offer = now + q.callback_every
            offered = True
            key = await _during(waiter, _say(channel, "acd-callback-offer"))
        else:
            until = min(next_announce, next_offer, deadline) - now
            key = await _during(waiter, channel.play(music[turn % len(music)]), max(0.05, until))
            turn += 1 if key is None and not waiter.wake.is_set() else 0
        waiter.wake.clear()
        if key == "1" and offered and waiter.leg is None and not waiter.overflow:
            acd.ask_callback(waiter)
            await _say(channel, "acd-callback-confirmed", interruptible=False)
            channel.hangup()
            return
    acd.leave(waiter, waiter.overflow)
    await overflow(channel, q)


async def _during(waiter: Waiter, coro, timeout: float | None = None) -> str | None:
    """Run a play (or announcement) until it ends, the ACD wakes the caller (an agent answered, an
    overflow) or `timeout`: the key that stopped it, else None."""
    task = asyncio.ensure_future(coro)
    wake = asyncio.ensure_future(waiter.wake.wait())
    try:
        await asyncio.wait([task, wake], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        wake.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _say(channel, *keys: str, interruptible: bool = True) -> str | None:
    lang = channel.language()
    library = channel.prompts()
    files = await asyncio.to_thread(lambda: [library.prompt_path(k, lang, channel._rate()) for k in keys])
    return await channel.play_files(files, interruptible)


async def _announce(channel, acd: Acd, waiter: Waiter) -> str | None:
    """"You are caller number N in the queue. Your estimated waiting time is about M minutes." """
    key = await _say(channel, "acd-position")
    key = key or await channel.say_number(acd.position(waiter))
    key = key or await _say(channel, "acd-in-line")
    minutes = round(acd.estimated_wait(waiter) / 60)
    if key:
        return key
    if minutes < 1:
        return await _say(channel, "acd-less-than-a-minute")
    key = await _say(channel, "acd-estimated-wait")
    key = key or await channel.say_number(minutes, counting=True)
    return key or await _say(channel, "minute" if minutes == 1 else "minutes")


async def overflow(channel, q) -> None:
    """The queue's overflow destination (an extension, group or number rung for the caller, or another
    application that goes on with the answered caller), else "sorry" and hang up."""
    target = q.overflow
    if target and apps.is_destination(target):
        app = apps.lookup(target)
        if app is not None:
            await _run_application(channel, target, app)
            return
    elif target and await channel.bridge(target, timeout=30):
        return
    await _say(channel, "acd-sorry-closed", interruptible=False)
    channel.hangup()


async def _run_application(channel, destination: str, app) -> None:
    """Another application takes the caller this queue answered (voicemail:<ext>, another queue...)."""
    async def answered() -> bool:
        return not channel.gone
    channel.answer = answered  # already answered: the next application goes on from here
    channel.destination, channel.name, channel.label = destination, destination.partition(":")[2], destination
    await app(channel)
