"""Paging (one-way announcement to a paging group) and intercom (a two-way call to one extension),
both asking the called phones to answer by themselves on their speaker, with the headers the common
vendors look for: Call-Info answer-after=0 (Yealink, Grandstream, Polycom, Snom), Alert-Info
info=alert-autoanswer (Snom, Cisco/Linksys) and "Auto Answer" (Polycom's alert class). A phone that
does not auto-answer just rings; answered by hand, it hears the page too.

The media of a page: the pager's relay side forwards to a small fan-out socket of the PBX, which sends
each packet on to every paged phone that answered. The phones are offered the pager's codec first, then
the box's others: a phone answering with the pager's gets the RTP unchanged; one answering with another
(a G.722-only phone paged by a G.711 one) gets it through a side of the engine that transcodes one way
toward the phone's own relay side (bridging.py). The page ends when the pager hangs up (the phones get
BYE, the ringing ones CANCEL), after the group's max_seconds, or when the pager's media stops (the
relay's RTP timeout)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..media import dsp
from ..sdp import Sdp, SdpError, filter_offer
from . import bridging

if TYPE_CHECKING:
    from ..calls import Call

log = logging.getLogger("officebox.pbx.paging")
MAX_MEMBERS = 100
STATIC_PT = {"PCMU": 0, "PCMA": 8, "G722": 9}


def auto_answer_headers(host: str) -> dict[str, str]:
    return {"Call-Info": f"<sip:{host}>;answer-after=0",
            "Alert-Info": f"<http://{host}/>;info=alert-autoanswer;delay=0, <http://{host}/>;info=Auto Answer"}


async def intercept(call: "Call") -> bool:
    cfg = call.core.cfg
    prefix = cfg.feature_codes.intercom
    rest = call.dialled[len(prefix):]
    if call.dialled.startswith(prefix) and rest in call.core.users:
        call.dialled = rest  # an intercom call: the extension itself, asked to answer at once
        call.invite_headers.update(auto_answer_headers(_host(call)))
        return False
    group = next((g for g in cfg.paging_groups if g.number == call.dialled), None)
    if group is None:
        return False
    await Page(call, group).run()
    return True


def _host(call: "Call") -> str:
    return call.core.stack.local_ip(call.a.flow[1]) if call.a is not None else "127.0.0.1"


class _Fanout(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.targets: set[tuple[str, int]] = set()
        self.transport = None
        self.packets = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.packets += 1
        for target in self.targets:
            self.transport.sendto(data, target)


class Page:
    """The pager's call (`call`, answered by the box, receive-only) and one call per paged phone."""

    def __init__(self, call: "Call", group) -> None:
        self.call, self.group = call, group
        self.members: list[Call] = []

    async def run(self) -> None:
        call, core = self.call, self.call.core
        try:
            offer = filter_offer(Sdp.parse(call.tx.request.body), core.cfg.codecs)
        except SdpError:
            call.a.answer(call.tx, 488)
            call.finish("failed", 488)
            return
        members = [m for m in self.group.members if m in core.users and m != call.a.extension][:MAX_MEMBERS]
        if not members:
            call.a.answer(call.tx, 480)
            call.finish("unavailable", 480)
            return
        try:
            side_a, side_b = await core.relay.pair()
        except OSError:
            call.a.answer(call.tx, 503)
            call.finish("failed", 503)
            return
        loop = asyncio.get_running_loop()
        fan_host = core.relay.host if core.relay.host not in ("", "0.0.0.0") else "127.0.0.1"
        transport, fan = await loop.create_datagram_endpoint(_Fanout, local_addr=(fan_host, 0))
        try:
            await self._page(offer, members, side_a, side_b, fan, transport.get_extra_info("sockname"))
        finally:
            transport.close()

    async def _page(self, offer: Sdp, members: list[str], side_a, side_b, fan: _Fanout, fan_addr) -> None:
        call = self.call
        m = offer.audio()
        codec = next(m.codec(p) for p in m.formats if m.codec(p) != "TELEPHONE-EVENT")
        m.formats = [p for p in m.formats if m.codec(p) in (codec, "TELEPHONE-EVENT")]
        call.a.side, call.a.sdp, call.offer, call.ring_side = side_a, offer, offer, None
        call._set_peer(call.a, offer)
        side_b.set_peer(fan_addr[0], fan_addr[1], m.clock_rate(m.formats[0]))
        answer = offer.copy()
        answer.audio().direction = "recvonly"
        call.legs = [call.a]
        call.state = "connected"
        call.answered_at = call.record.answer = time.time()
        call.record.callee, call.record.status = f"page:{self.group.number}", 200
        call.a.answer(call.tx, 200, call.sdp_for(call.a, answer), **call.session_headers(call.a, call.tx.request))
        call.announce("connected")
        call._watch_media()
        to_phones = self._offer_to_phones(offer)
        self.fan_addr = fan_addr
        tasks = [asyncio.ensure_future(self._ring(ext, to_phones, fan)) for ext in members]
        try:
            await asyncio.wait_for(call.done.wait(), self.group.max_seconds)
        except TimeoutError:
            log.info("page to %s: %s s, ended", self.group.number, self.group.max_seconds)
            call.a.bye()
            call.finish("answered", 200)
        finally:
            side_b.close()
            for member in self.members:
                if member.state == "setup":
                    member.cancel_ringing()
                elif member.state == "connected":
                    member.media_down("page_ended")
            await asyncio.gather(*tasks, return_exceptions=True)

    def _offer_to_phones(self, offer: Sdp) -> Sdp:
        """The pager's codec first, then the box's other codecs the engine can transcode to, sendonly."""
        to_phones = offer.copy()
        m = to_phones.audio()
        m.direction = "sendonly"
        audio = [p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"]
        events = [p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"]
        extra = [STATIC_PT[c] for c in self.call.core.cfg.codecs
                 if c in dsp.codecs() and c not in {m.codec(p) for p in audio} and STATIC_PT[c] not in m.formats]
        for pt in extra:
            m.rtpmap.setdefault(pt, f"{m.codec(pt)}/8000")
        m.formats = audio + extra + events
        return to_phones

    async def _ring(self, ext: str, offer: Sdp, fan: _Fanout) -> None:
        from ..calls import Call
        pager, core = self.call, self.call.core
        member = Call(core, None, None, caller=pager.caller, caller_name=pager.caller_name, dialled=ext,
                      authority="internal", direction="internal")
        member.invite_headers.update(auto_answer_headers(_host(pager)))
        core.calls[member.id] = member
        self.members.append(member)
        leg = await member.originate(offer.copy())
        if leg is None or pager.state != "connected":
            if leg is not None:
                member.media_down("page_ended")
            return
        pager_speaks, member_speaks = bridging.spec_of(pager.a.sdp), bridging.spec_of(leg.sdp)
        converter = None
        if member_speaks is not None and pager_speaks is not None and member_speaks[:2] != pager_speaks[:2]:
            try:
                [converter] = await core.relay.open(1)
            except OSError:
                member.media_down("page_ended")
                return
            converter.set_peer(self.fan_addr[0], self.fan_addr[1], 8000)
            bridging.connect(core.relay, converter, pager_speaks, leg.side, member_speaks, oneway=True)
            target = (self.fan_addr[0], converter.port)
        else:
            m = leg.sdp.audio()
            target = (leg.sdp.address(m), m.port)
        fan.targets.add(target)
        try:
            await member.done.wait()
        finally:
            fan.targets.discard(target)
            if converter is not None:
                converter.close()
