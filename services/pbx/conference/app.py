"""The conference applications: `conference:<room>` (a meet-me room, or an ad-hoc room a three-party
conference made) and `app:conference-join` (the feature code: the caller's other calls and the caller
meet in an ad-hoc room). See the package docstring."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from appliance.users import verify_password

from .. import apps
from ..calls import refer_replaces
from ..endpoint import voice_data_dir
from ..moh import MohLibrary
from ..prompts import PromptError
from ..sdp import Sdp, SdpError
from . import ENTRY_TONE, EXIT_TONE, MUTED_TONE, UNMUTED_TONE, Conferences, Room, for_core

log = logging.getLogger("officebox.pbx.conference")
ATTEMPTS = 3
PIN_DIGITS = 12
MAX_JOINED = 4  # other calls a three-party conference takes in at once
RESUME_WAIT = 10.0  # seconds a held party has to answer our re-INVITE
REFER_WAIT = 15.0  # seconds a party brought in by REFER has to reach the room
ADHOC_WAIT = 20.0  # seconds the caller of a three-party conference waits for the others to come


async def room_app(channel: apps.Channel) -> None:
    """`conference:<name>`: a configured room (PIN, limits) or an ad-hoc room this call was invited to."""
    confs = for_core(channel.call.core)
    cfg = channel.call.core.cfg.room(channel.name)
    live = confs.rooms.get(channel.name)
    if cfg is None and (live is None or live.invited is None or channel.call.id not in live.invited):
        return  # no such room (or not invited to it): unanswered, the caller gets 480
    if not await channel.answer():
        return
    await _held_party_back(channel)
    lang = channel.language()
    if cfg is not None and cfg.pin_hash and not await _pin(channel, cfg.pin_hash, lang):
        return
    room = confs.room(channel.name)
    leader = cfg is not None and getattr(channel.caller, "extension", None) in cfg.leaders
    if room.locked and not leader:
        log.info("conference: %s refused by the locked room %s", channel.call.caller, room.name)
        await _say(channel, lang, "conf-is-locked", "goodbye", interruptible=False)
        channel.hangup()
        return
    if cfg is not None and len(room.participants) >= cfg.max_participants:
        await _say(channel, lang, "conf-full", "goodbye")
        channel.hangup()
        return
    await take_part(channel, confs, room, cfg, leader)


async def join_calls(channel: apps.Channel) -> None:
    """`app:conference-join` (the feature code): the caller's other connected calls (one held, the
    consultation, or both held) and this call meet in a new ad-hoc room."""
    call = channel.call
    core = call.core
    me = channel.caller
    ext = me.extension if me is not None else None
    if ext is None:
        return
    others = []
    for other in list(core.calls.values()):
        if other is call or other.state != "connected" or other.transferor is not None:
            continue
        mine = next((leg for leg in other.legs if leg.kind == "sip" and leg.extension == ext), None)
        theirs = other.other(mine) if mine is not None else None
        if theirs is not None and theirs.kind == "sip":
            others.append((other, mine))
    if not others:
        log.info("conference: %s dialled the conference code with no other call", ext)
        return  # nothing to join: unanswered (480)
    if not await channel.answer():
        return
    confs = for_core(core)
    room = confs.adhoc({call.id, *(c.id for c, _ in others[:MAX_JOINED])})
    for other, mine in others[:MAX_JOINED]:
        room.pulled.add(mine.call_id)  # a phone's REFER naming this dialog afterwards: done already
        asyncio.get_running_loop().create_task(other.hand_to_application(mine, f"conference:{room.name}"))
    await take_part(channel, confs, room, None, leader=True)  # who keyed it leads the room


async def take_part(channel: apps.Channel, confs: Conferences, room: Room, cfg, leader: bool = False) -> None:
    """In the room until the participant leaves, is removed, or (ad-hoc room) is the last one left; the
    room's codes (_codes) work meanwhile."""
    side = channel.media
    side.stop("play")  # hold music a transfer may have left playing
    p = confs.add(room, channel, leader)
    side.relay.send({"op": "conf_join", "side": side.id, "room": room.name, "muted": False})
    tones = cfg is None or cfg.tones
    if tones and len(room.participants) > 1:
        confs.tone(room, ENTRY_TONE)
    codes = _codes(cfg)
    lang = channel.language()
    speaking: asyncio.Task | None = None  # a code's answer being said
    loop = asyncio.get_running_loop()
    alone = loop.create_task(_while_alone(channel, room, cfg))
    keys = asyncio.ensure_future(channel.next_key())
    was_shared = False
    started = loop.time()
    try:
        while not channel.gone:
            changed = room.changed  # before looking: a change from now on wakes us
            if len(room.participants) > 1:
                was_shared = True
                alone.cancel()  # at once, so the music does not cover the entry tone
            elif room.invited is not None and (was_shared or loop.time() - started > ADHOC_WAIT):
                channel.hangup()  # the others of a three-party conference left (or never came)
                return
            elif alone.done():
                alone = loop.create_task(_while_alone(channel, room, cfg))
            if p.removed.is_set():
                channel.hangup()
                return
            events = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(p.removed.wait())]
            try:
                await asyncio.wait([keys, *events], timeout=5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for ev in events:
                    ev.cancel()
            if keys.done():
                key, keys = keys.result(), asyncio.ensure_future(channel.next_key())
                action = codes.get(key)
                if action == "mute":
                    p.set_muted(not p.muted)
                    side.play(0, tone=MUTED_TONE if p.muted else UNMUTED_TONE)
                elif action is not None:
                    if speaking is not None:
                        speaking.cancel()
                    speaking = loop.create_task(_code(channel, room, p, action, lang))
    finally:
        keys.cancel()
        alone.cancel()
        tasks = (keys, alone) if speaking is None else (keys, alone, speaking)
        if speaking is not None:
            speaking.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, apps.ChannelGone):
                await task
        confs.remove(room, p)
        if not side.closed:
            side.relay.send({"op": "conf_leave", "side": side.id})
        if tones and room.participants:
            confs.tone(room, EXIT_TONE)


def refer(call, leg, channel: apps.Channel, tx, refer_to) -> bool:
    """A REFER in a participant's dialog with a room (a phone's own conference button, RFC 4579 5.5: the
    phone, in the room, asks the focus to bring in a party; Refer-To carries Replaces naming the phone's
    own dialog with that party): that party joins the room, as a blind transfer of the phone's other
    call would put it there. False if `channel` is in no room (the REFER is refused as before)."""
    room = next((r for r in for_core(call.core).rooms.values()
                 if any(p.channel is channel for p in r.participants)), None)
    replaces = refer_replaces(refer_to.uri.headers)
    if room is None or replaces is None:
        return False
    target = call.core.find_dialog(*replaces)
    if target is None and replaces[0] in room.pulled:
        leg.answer(tx, 202)  # the feature code's room took that call in already
        call._notify(leg, 200, "OK", True)
        return True
    theirs = target.call.other(target) if target is not None and target.call.state == "connected" else None
    if theirs is None or theirs.kind != "sip" or target.call is call:
        leg.answer(tx, 481)
        return True
    if not leg.extension or target.extension != leg.extension:
        leg.answer(tx, 403)  # only one's own calls
        return True
    leg.answer(tx, 202)
    if room.invited is not None:
        room.invited.add(target.call.id)
    room.pulled.add(target.call_id)
    asyncio.get_running_loop().create_task(target.call.hand_to_application(target, f"conference:{room.name}"))
    asyncio.get_running_loop().create_task(_referred(call, leg, room, theirs))
    return True


async def _referred(call, leg, room: Room, theirs) -> None:
    """The referring phone's NOTIFY: 200 once the party is in the room, 480 if it is not within REFER_WAIT."""
    call._notify(leg, 100, "Trying", False)
    loop = asyncio.get_running_loop()
    end = loop.time() + REFER_WAIT
    while loop.time() < end:
        if any(p.channel.caller is theirs for p in room.participants):
            call._notify(leg, 200, "OK", True)
            return
        changed = room.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), max(0.05, end - loop.time()))
    call._notify(leg, 480, "Temporarily Unavailable", True)


def _codes(cfg) -> dict[str, str]:
    """key -> what it does in the room ("mute", "count", "lock", "remove"); the mute key wins a clash."""
    keys = [("mute", "*"), ("count", "1"), ("lock", "2"), ("remove", "3")] if cfg is None else [
        ("mute", cfg.mute_key), ("count", cfg.count_key), ("lock", cfg.lock_key), ("remove", cfg.remove_key)]
    codes: dict[str, str] = {}
    for action, key in keys:
        if key and key not in codes:
            codes[key] = action
    return codes


async def _code(channel: apps.Channel, room: Room, p, action: str, lang: str) -> None:
    """A code keyed by participant `p` (not the mute key): done, and its answer said to `p` alone."""
    with contextlib.suppress(apps.ChannelGone):
        if action == "count":
            count = len(room.participants)
            log.info("conference %s: %s hears the count (%d)", room.name, p.label, count)
            await _say(channel, lang, "conf-count", interruptible=False)
            await channel.say_number(count, lang, interruptible=False)
            return
        if not p.leader:
            log.info("conference %s: %s keyed a leader's code (%s)", room.name, p.label, action)
            await _say(channel, lang, "conf-leader-only", interruptible=False)
            return
        if action == "lock":
            room.locked = not room.locked
            log.info("conference %s %s by %s", room.name, "locked" if room.locked else "unlocked", p.label)
            await _say(channel, lang, "conf-locked" if room.locked else "conf-unlocked", interruptible=False)
            return
        others = [q for q in room.participants if q is not p and not q.removed.is_set()]
        if not others:
            await _say(channel, lang, "conf-alone", interruptible=False)
            return
        others[-1].removed.set()
        log.info("conference %s: %s removed %s (the last one in)", room.name, p.label, others[-1].label)
        await _say(channel, lang, "conf-removed", interruptible=False)


async def _while_alone(channel: apps.Channel, room: Room, cfg) -> None:
    """The only participant hears music (or the prompt once) until somebody joins (then cancelled)."""
    with contextlib.suppress(apps.ChannelGone):
        lang = channel.language()
        if room.invited is not None or (cfg is not None and cfg.alone == "prompt"):
            await _say(channel, lang, "conf-alone", interruptible=False)
            return
        core = channel.call.core
        rate = channel._rate()
        files = await asyncio.to_thread(MohLibrary(voice_data_dir(core)).class_files, core.cfg, "default", rate)
        for _ in range(1000):  # bounded: about a week of the built-in track
            for path in files:
                await channel.play(path, interruptible=False)


async def _pin(channel: apps.Channel, hashed: str, lang: str) -> bool:
    for attempt in range(1, ATTEMPTS + 1):
        key = await _say(channel, lang, "vm-enter-pin")
        pin = "" if key == "#" else (key or "") + await channel.collect(PIN_DIGITS, timeout=6.0, terminator="#")
        if pin and await asyncio.to_thread(verify_password, hashed, pin):
            return True
        log.warning("conference: wrong PIN for room %s from %s (attempt %d)", channel.name, channel.call.caller,
                    attempt)
        flow = getattr(channel.caller, "flow", None)
        if flow and len(flow) == 3:
            channel.call.core.guard.auth_failed(flow[1])
        if attempt < ATTEMPTS:
            await _say(channel, lang, "vm-invalid-pin", interruptible=False)
    await _say(channel, lang, "vm-too-many-attempts", "goodbye", interruptible=False)
    channel.hangup()
    return False


async def _say(channel: apps.Channel, lang: str, *keys: str, interruptible: bool = True) -> str | None:
    library = channel.prompts()
    rate = channel._rate()
    try:
        files = await asyncio.to_thread(lambda: [library.prompt_path(k, lang, rate) for k in keys])
    except PromptError as exc:
        log.warning("conference: no prompt: %s", exc)
        return None
    return await channel.play_files(files, interruptible)


async def _held_party_back(channel: apps.Channel) -> None:
    """A party moved here from a call where it was held (three-party conference, a transfer) sends no
    audio: re-INVITE it with our media sendrecv."""
    leg, call = channel.caller, channel.call
    m = leg.sdp.audio() if leg is not None and leg.sdp is not None else None
    if m is None or channel.sdp is None or not hasattr(leg, "new_request"):
        return
    direction = m.direction or leg.sdp.direction or "sendrecv"
    if direction == "sendrecv" and leg.sdp.address(m) != "0.0.0.0":
        return
    offer = channel.sdp.copy()
    offer.direction = None
    offer.audio().direction = "sendrecv"
    fut = asyncio.get_running_loop().create_future()

    def got(resp) -> None:
        if resp.status >= 200 and not fut.done():
            fut.set_result(resp)
    leg.ack = None
    leg.send(leg.with_session(leg.new_request("INVITE", call.sdp_for(leg, offer))), got)
    try:
        resp = await asyncio.wait_for(fut, RESUME_WAIT)
    except TimeoutError:
        return
    if not 200 <= resp.status < 300:
        return
    leg.send_ack(resp)
    leg.session_refreshed()
    try:
        answer = Sdp.parse(resp.body)
    except SdpError:
        return
    leg.sdp, channel.sdp = answer, offer
    call._set_peer(leg, answer, relatch=True)
    channel.media_changed()
    call._watch_media()
