"""The parties of a call. A call (calls.Call, the bridge) holds endpoints: SIP legs (leg.Leg, UAS or
UAC, including legs the box originates itself: PbxCore.originate) and media endpoints of the box
(MediaEndpoint: the party an application speaks as).

What call control needs of every endpoint:
  label, extension, trunk   who it is (CDRs, the call list, device events)
  side                      the media engine side carrying its media (services/pbx/relay.Side), or None
  sdp                       the media description it sends (its offer/answer)
  ended                     it has left the call
  bye()                     leave the call (a SIP leg sends BYE; a media endpoint stops its application)
A media endpoint also takes the in-dialog INFO/MESSAGE its partner sends (on_request -> SIP status);
a SIP leg gets them forwarded as requests of its own dialog (Call.forward).

A media endpoint terminates media in the media engine. Today the engine can reflect a party's audio
(`echo`, the engine's "link" of a side to itself, see services/pbx/media/__init__.py); playing,
recording, DTMF and mixing come as further engine side kinds with their own ops in the same protocol,
and a MediaEndpoint then owns such a side (`side`), linked to its partner's.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .calls import Call
    from .sip.message import Request

INBOX = 32  # in-dialog requests an application has not read yet; more are refused (486)


class Endpoint:
    kind = "sip"
    label = ""
    extension: str | None = None
    trunk = None
    side = None
    sdp = None
    ended = False
    uas = False

    def bye(self) -> None:
        raise NotImplementedError


class MediaEndpoint(Endpoint):
    """The box answering a call as an application (apps.py): the `Channel` an application gets."""
    kind = "media"
    key = None  # no SIP dialog of its own

    def __init__(self, call: "Call", destination: str) -> None:
        self.call = call
        self.destination = destination
        self.name = destination.partition(":")[2]
        self.label = destination
        self.inbox: asyncio.Queue[Request] = asyncio.Queue(INBOX)
        self._gone = asyncio.Event()

    @property
    def caller(self):
        """The SIP leg this endpoint talks to."""
        return self.call.other(self) or self.call.a

    async def answer(self) -> bool:
        """Answer the call (200 OK, media through the engine); False if the caller left or it was answered."""
        return self.call.answer_locally(self)

    def echo(self) -> None:
        """Send the caller's audio back to it (the engine reflects the caller's side)."""
        side = self.caller.side
        if side is not None:
            self.call.core.relay.link(side, side)

    def hangup(self) -> None:
        self.call.local_hangup(self)

    async def wait_gone(self, timeout: float) -> bool:
        """Wait until the call ends (True) or `timeout` seconds pass (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), timeout)
        return self._gone.is_set()

    def bye(self) -> None:
        self.ended = True
        self._gone.set()

    def on_request(self, req: "Request") -> int:
        try:
            self.inbox.put_nowait(req)
        except asyncio.QueueFull:
            return 486
        return 200
