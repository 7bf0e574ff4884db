"""The agents' feature codes (pbx.feature_codes): log in to every queue one is an agent of (*51), log out
(*52), pause with a reason digit (*53: 1 break, 2 lunch, 3 meeting, 4 training, 5 paperwork; none: "other")
and resume (*54). Each answers, says the new state and hangs up. The web agent panel does the same
through the PBX service (agent_action)."""
from __future__ import annotations

from .. import apps
from . import PAUSE_REASONS, for_core
from .queue import _say

REASON_WAIT = 6.0  # seconds for the pause reason digit


def _extension(channel) -> str | None:
    leg = channel.caller
    return leg.extension if leg is not None else None


async def _done(channel, *keys: str) -> None:
    await _say(channel, *keys, interruptible=False)
    channel.hangup()


async def _answered(channel, logged_in: bool = False):
    """(the ACD, the caller's extension) once answered; None (and said so for `logged_in`) otherwise."""
    ext = _extension(channel)
    if not ext or not await channel.answer():
        return None
    acd = for_core(channel.call.core)
    if logged_in and acd.agent(ext).status == "logged_out":
        await _done(channel, "acd-agent-logged-out")
        return None
    return acd, ext


async def login(channel: apps.Channel) -> None:
    if (found := await _answered(channel)) is not None:
        acd, ext = found
        await _done(channel, "acd-agent-logged-in" if acd.login(ext) else "acd-not-agent")


async def logout(channel: apps.Channel) -> None:
    if (found := await _answered(channel)) is not None:
        acd, ext = found
        acd.logout(ext)
        await _done(channel, "acd-agent-logged-out")


async def pause(channel: apps.Channel) -> None:
    if (found := await _answered(channel, logged_in=True)) is not None:
        acd, ext = found
        key = await _say(channel, "acd-agent-pause-reason") or await channel.next_key(REASON_WAIT)
        acd.pause(ext, PAUSE_REASONS.get(key or "", "other"))
        await _done(channel, "acd-agent-paused")


async def resume(channel: apps.Channel) -> None:
    if (found := await _answered(channel, logged_in=True)) is not None:
        acd, ext = found
        acd.resume(ext)
        await _done(channel, "acd-agent-resumed")


APPS = {"app:agent-login": login, "app:agent-logout": logout, "app:agent-pause": pause, "app:agent-resume": resume}
