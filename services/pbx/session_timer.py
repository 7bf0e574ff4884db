"""Session timers (RFC 4028) per SIP leg, and the maximum call duration per permission class.

Each leg negotiates its own session interval: as UAS we accept the caller's Session-Expires (422 with
our Min-SE if it is too small) and name the refresher (the caller if it supports timers, else us); as
UAC we ask for `session_expires` and follow the callee's choice in its 2xx (a callee without timers
is refreshed by us). The refresher refreshes at half the interval (we send UPDATE if the party allows
it, else a re-INVITE with the same SDP); when the party is the refresher and no refresh comes by
interval - min(32, interval/3), or our refresh fails (408/481), the call is hung up on both sides
(CDR end_reason "session_expired"). A vanished phone thus frees its trunk channel even when its
partner keeps sending media.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .leg import Leg
    from .sip.message import Request, Response

FAILED = (408, 481)  # a refresh answered so: the party is gone (RFC 4028 10)


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def supports_timer(msg) -> bool:
    return "timer" in _tokens(msg.get("Supported")) | _tokens(msg.get("Require"))


def parse_session_expires(msg) -> tuple[int, str] | None:
    """(interval, refresher "uac"/"uas"/"") from a Session-Expires (or its compact form x)."""
    raw = msg.get("Session-Expires") or msg.get("x")
    if not raw:
        return None
    value, *params = [p.strip() for p in raw.split(";")]
    if not value.isdigit() or len(value) > 9:
        return None
    refresher = next((p.partition("=")[2].lower() for p in params if p.lower().startswith("refresher=")), "")
    return int(value), refresher if refresher in ("uac", "uas") else ""


def too_small(req: "Request", min_se: int) -> bool:
    """An INVITE asking for a session interval below ours: answer 422 with Min-SE."""
    asked = parse_session_expires(req)
    return asked is not None and asked[0] < min_se


def uas_headers(leg: "Leg", req: "Request", wanted: int, min_se: int) -> dict[str, str]:
    """The Session-Expires (and Require) of our 2xx to `req` from `leg`'s party; arms the leg's timer."""
    asked = parse_session_expires(req)
    if asked is None and not wanted:
        return {}
    interval = max(asked[0] if asked else wanted, min_se)
    theirs = supports_timer(req)
    refresher = (asked[1] if asked and asked[1] else "uac") if theirs else "uas"
    leg.arm_session(interval, we_refresh=refresher == "uas")
    headers = {"Session_Expires": f"{interval};refresher={refresher}"}
    if theirs:
        headers["Require"] = "timer"
    return headers


def uac_headers(wanted: int, min_se: int) -> dict[str, str]:
    if not wanted:
        return {}
    return {"Supported": "timer", "Session-Expires": str(max(wanted, min_se)), "Min-SE": str(min_se)}


def uac_answered(leg: "Leg", resp: "Response", wanted: int) -> None:
    """Our INVITE's 2xx: the interval and refresher the callee chose. A callee without session timers
    (no Session-Expires) is refreshed by us all the same: RFC 4028 needs no refresh then, but a refresh
    that fails is how a vanished phone is found while its partner keeps the media flowing."""
    got = parse_session_expires(resp)
    if got is not None:
        leg.arm_session(got[0], we_refresh=got[1] != "uas")
    elif wanted:
        leg.arm_session(wanted, we_refresh=True)


class SessionTimer:
    """One leg's session timer: refresh (ours) or watch (theirs); `on_expired(leg)` when it lapses."""

    time_scale = 1.0  # loop seconds per second of interval: tests shorten it; the headers keep the intervals

    def __init__(self, leg: "Leg", interval: int, we_refresh: bool, on_expired: Callable[["Leg"], None]) -> None:
        self.leg, self.interval, self.we_refresh = leg, interval, we_refresh
        self.on_expired = on_expired
        self._handle: asyncio.TimerHandle | None = None
        self.refreshes = 0
        self.restart()

    def restart(self) -> None:
        self.stop()
        later = asyncio.get_running_loop().call_later
        if self.we_refresh:
            self._handle = later(self.time_scale * self.interval / 2, self._refresh)
        else:
            self._handle = later(self.time_scale * (self.interval - min(32, self.interval / 3)), self._expire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        self._handle = None
        if not self.leg.ended:
            self.on_expired(self.leg)

    def _refresh(self) -> None:
        self._handle = None
        if self.leg.ended:
            return
        self.refreshes += 1
        self.leg.refresh_session(self._refreshed)

    def _refreshed(self, resp: "Response") -> None:
        if resp.status in FAILED:
            self.on_expired(self.leg)
        elif not self.leg.ended:
            self.restart()
