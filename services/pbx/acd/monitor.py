"""Silent monitor, whisper and barge-in: a queue's supervisor dials a code followed by an agent's
extension (pbx.feature_codes.supervisor_monitor *55, supervisor_whisper *56, supervisor_barge *57), or is
rung by the box from the wallboard (Acd.supervise), and joins the agent's current call.

Built on the conference mixer (media/mixer.py): the two relayed sides of the agent's call become local
endpoints in one room with the supervisor's side; in monitor the supervisor is muted (hears both, nobody
hears them), in whisper only the agent's side hears the supervisor (the mixer's `only_to`), in barge all
three talk. During the session the supervisor switches with the keys 4 (monitor), 5 (whisper), 6 (barge).
When the supervisor hangs up the agent's and the caller's sides are relayed to each other again; when the
agent's call ends the supervisor's call ends too.

Only an extension listed in `supervisors` of a queue the agent is a member of may: anybody else, an agent
with no call, or a call already supervised gets no answer (the phone shows the call failed).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from .. import apps

log = logging.getLogger("officebox.pbx.acd.monitor")
MODES = ("monitor", "whisper", "barge")
KEYS = {"4": "monitor", "5": "whisper", "6": "barge"}
MAX_SESSION = 4 * 3600.0  # seconds
_watched: set[str] = set()  # ids of the calls being supervised
_ringing: set[str] = set()  # agents whose supervisor's phone the box is ringing (ring_supervisor)


def watched(call_id: str) -> bool:
    return call_id in _watched


def ringing_for(agent: str) -> bool:
    return agent in _ringing


def may_supervise(cfg, supervisor: str | None, agent: str) -> bool:
    return bool(supervisor) and supervisor != agent and any(
        q.member(agent) and supervisor in q.supervisors for q in cfg.queues)


def agent_call(core, agent: str):
    """(call, the agent's leg, the other party's leg) of the agent's connected two-party call, or None."""
    for call in list(core.calls.values()):
        if call.state != "connected" or len(call.legs) != 2 or call.hold_music is not None:
            continue
        mine = next((leg for leg in call.legs if leg.kind == "sip" and leg.extension == agent), None)
        other = call.other(mine) if mine is not None else None
        if other is not None and other.kind == "sip" and mine.side is not None and other.side is not None:
            return call, mine, other
    return None


def _codec(leg) -> tuple[str, int, int | None] | None:
    m = leg.sdp.audio() if leg.sdp is not None else None
    if m is None:
        return None
    pt = next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), None)
    event = next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None)
    return (m.codec(pt), pt, event) if pt is not None else None


def _join(channel, mode: str, room: str, agent_side: int) -> None:
    side = channel.media
    side.relay.send({"op": "conf_join", "side": side.id, "room": room, "muted": mode == "monitor",
                     "only_to": agent_side if mode == "whisper" else None})


def refusal(core, supervisor: str | None, agent: str, mode: str) -> str:
    """"" when `supervisor` may join `agent`'s call in `mode` now, else why not: mode, not_allowed,
    no_call, supervised (someone supervises it already)."""
    if mode not in MODES:
        return "mode"
    if not may_supervise(core.cfg, supervisor, agent):
        return "not_allowed"
    found = agent_call(core, agent)
    if found is None:
        return "no_call"
    return "supervised" if found[0].id in _watched else ""


async def supervise(channel: apps.Channel, supervisor: str | None, agent: str, mode: str) -> bool:
    """`channel` (the supervisor's, not answered yet) joins `agent`'s call in `mode` until one of them
    ends; False (nothing answered) when not allowed or there is no call to join."""
    return await _supervise(channel, supervisor, agent, mode, channel.answer)


async def ring_supervisor(core, supervisor: str, agent: str, mode: str, timeout: float = 30.0) -> bool:
    """From the wallboard: the box rings `supervisor`'s phone (showing the agent's number) and, once
    answered, joins it to `agent`'s call in `mode`, as the feature codes do. False: refused, nobody
    answered, or the agent's call ended meanwhile (the supervisor's call is then hung up)."""
    if refusal(core, supervisor, agent, mode):
        return False
    user = core.users.get(agent)
    _ringing.add(agent)
    try:
        leg = await core.originate(supervisor, caller=agent, caller_name=user.full_name if user else "",
                                   authority="internal", timeout=timeout)
    finally:
        _ringing.discard(agent)
    if leg is None:
        return False
    channel = _box_channel(leg, f"app:supervisor-{mode}")
    if channel is None:
        leg.call.media_down("supervise_failed")
        return False
    if not await _supervise(channel, supervisor, agent, mode, _answered):
        if not channel.gone:
            channel.hangup()
        return False
    return True


async def _answered() -> bool:
    return True


def _box_channel(leg, destination: str) -> apps.Channel | None:
    """An application channel on a leg the box called (alone in its call, answered): it talks the codec
    the phone chose from our offer, as the channel of an incoming call would."""
    from ..endpoint import MediaEndpoint
    call = leg.call
    if call.state != "connected" or call.legs != [leg] or leg.sdp is None or leg.sdp.audio() is None:
        return None
    channel = MediaEndpoint(call, destination)
    channel.sdp = leg.sdp
    call.legs.append(channel)
    channel.media_changed()
    return channel if channel.media is not None else None


async def _supervise(channel, supervisor, agent, mode, answer) -> bool:
    call = channel.call
    core = call.core
    why = refusal(core, supervisor, agent, mode)
    if why in ("mode", "not_allowed"):
        log.warning("supervision of %s refused to %s: not a supervisor of the agent's queues", agent, supervisor)
        return False
    if why:
        log.info("supervision of %s by %s: no call to join (%s)", agent, supervisor, why)
        return False
    target, mine, other = agent_call(core, agent)
    codecs = [_codec(mine), _codec(other)]
    if None in codecs or not await answer():
        return False
    if target.state != "connected" or mine.side is None or other.side is None:
        channel.hangup()
        return False
    _watched.add(target.id)
    room = f"supervise-{target.id[:40]}"
    sides = (mine.side, other.side)
    relay = core.relay
    try:
        for side, (codec, pt, event) in zip(sides, codecs, strict=True):
            side.terminate(codec, pt, event, send=True, inband=False)
            relay.send({"op": "conf_join", "side": side.id, "room": room, "muted": False})
        channel.media.stop("play")
        _join(channel, mode, room, mine.side.id)
        log.info("%s supervises %s's call %s (%s)", supervisor, agent, target.id, mode)
        await _session(channel, target, mine, other, room)
    finally:
        _watched.discard(target.id)
        if not channel.media.closed:
            relay.send({"op": "conf_leave", "side": channel.media.id})
        if target.state == "connected" and mine in target.legs and other in target.legs \
                and mine.side is sides[0] and other.side is sides[1] and not any(s.closed for s in sides):
            relay.link(sides[0], sides[1])  # relayed to each other again (link leaves the room)
        if not channel.gone:
            channel.hangup()
    return True


async def _session(channel, target, mine, other, room: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + MAX_SESSION
    keys = asyncio.ensure_future(channel.next_key())
    ended = asyncio.ensure_future(target.done.wait())
    try:
        while not channel.gone and loop.time() < end and target.state == "connected" \
                and mine in target.legs and other in target.legs:
            await asyncio.wait([keys, ended], timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            if keys.done():
                key = None if keys.cancelled() or keys.exception() is not None else keys.result()
                if key in KEYS and mine.side is not None:
                    _join(channel, KEYS[key], room, mine.side.id)
                keys = asyncio.ensure_future(channel.next_key())
    finally:
        for task in (keys, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, apps.ChannelGone):
                await task


def _app(mode: str):
    async def run(channel: apps.Channel) -> None:
        call = channel.call
        code = getattr(call.core.cfg.feature_codes, f"supervisor_{mode}")
        agent = (call.dialled or "")[len(code):]
        me = channel.caller
        await supervise(channel, me.extension if me is not None else None, agent, mode)
    run.__name__ = f"supervisor_{mode}"
    return run


APPS = {f"app:supervisor-{mode}": _app(mode) for mode in MODES}
