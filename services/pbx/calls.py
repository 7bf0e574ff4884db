"""Call control (B2BUA): route a call, ring targets, bridge the two legs through the relay, handle
in-dialog requests (BYE, re-INVITE/UPDATE hold and resume, REFER blind transfer) and write the CDR."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import apps, callername, dialplan, features, holdmusic, recording, secretary, session_timer
from .cdr import CallRecord
from .config import ExtensionSettings, Trunk
from .endpoint import ChannelGone, Endpoint, MediaEndpoint, local_answer
from .leg import Leg
from .sdp import Media, Sdp, SdpError, filter_offer, is_hold
from .sip.message import NameAddr, Request, Response, Uri, new_call_id
from .sip.stack import ServerTx
from .sip.transport import Dest

if TYPE_CHECKING:
    from .core import PbxCore

log = logging.getLogger("officebox.pbx.calls")
MAX_RING = 120.0
MAX_DEPTH = 6
FAILOVER = lambda status: status >= 500 or status == 408  # noqa: E731
ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'  # RFC 3326: losing forks log no missed call
FORWARDED = ("INFO", "MESSAGE")  # in-dialog requests passed to the other party (DTMF relay, chat)
PASSED_HEADERS = ("Info-Package", "Content-Disposition")  # what a forwarded INFO/MESSAGE keeps
DISPOSITION = {"answered": "answered", "busy": "busy", "noanswer": "missed", "unavailable": "missed",
               "cancelled": "missed", "notfound": "failed", "forbidden": "failed", "failed": "failed"}


@dataclass
class Outcome:
    kind: str  # answered, busy, noanswer, unavailable, cancelled, notfound, forbidden, failed
    status: int
    leg: Leg | None = None
    answer: Sdp | None = None
    trunk: str = ""
    to_caller: Sdp | None = None  # what the caller is answered, if not `answer` (a transcoded pickup)


@dataclass
class Target:
    label: str
    uri: Uri
    flow: Dest
    extension: str | None = None
    trunk: Trunk | None = None


class Call:
    """A call: the bridge of its endpoints (`legs`: SIP legs and media endpoints, endpoint.py). It starts
    from an incoming INVITE (`tx`, `req`; `a` is the caller's leg) or, without them, from the box
    itself (originate(): `a` is None and the first answered leg is the call's first endpoint)."""

    def __init__(self, core: "PbxCore", tx: ServerTx | None, req: Request | None, *, caller: str,
                 caller_name: str, dialled: str, authority: str, direction: str, trunk: str = "",
                 extension: str | None = None) -> None:
        self.core = core
        self.tx = tx
        self.id = new_call_id()[:12]
        self.caller, self.caller_name, self.dialled = caller, caller_name, dialled
        self.authority = authority
        self.state = "setup"  # setup -> connected -> ended
        self.a: Leg | None = None
        self.hops = 70  # Max-Forwards of the INVITEs we send on (loops stop)
        self.legs: list[Endpoint] = []  # the connected parties once answered
        if req is not None:
            self.a = Leg.from_invite(core, self, req, caller)
            self.a.extension = extension
            tx.to_tag = self.a.local_tag  # a CANCEL's 200 carries the tag of our answers to the INVITE
            self.hops = req.max_forwards - 1
            self.legs = [self.a]
        self.events: asyncio.Queue = asyncio.Queue()
        self.record = CallRecord(call_id=self.id, direction=direction, caller=caller, caller_name=caller_name,
                                 dialled=dialled, trunk=trunk)
        self.offer: Sdp | None = None  # what callees are offered
        self.ring_side = None  # the relay side a new callee will talk to
        self.ringing_sent = False
        self.renegotiating = False
        self.transferor: Leg | None = None
        self.transfer_app: MediaEndpoint | None = None  # the application a transfer is handing over to
        self.replacing: Leg | None = None  # attended transfer to an application call: that call's leg
        self.quiet_transfer = False  # hand_to_application: the leaving party sent no REFER, gets no NOTIFY
        self.cancelled = False
        self.early: Leg | None = None  # the callee whose early media the caller hears
        self.done = asyncio.Event()
        self.started = time.time()
        self.answered_at: float | None = None
        self.callee_label = ""
        self.was_held = False
        self.hold_music: holdmusic.HoldMusic | None = None  # while one of two phones holds
        self.alert_announced = False
        self.voicemail_greeting = "unavailable"  # which greeting a voicemail box plays (busy, unavailable)
        self._limit: asyncio.TimerHandle | None = None  # the maximum call duration
        self.invite_headers: dict[str, str] = {}  # extra headers of the INVITEs it sends (auto-answer)
        self.recording: recording.CallRecording | None = None  # once bridged (recording/)
        self.auto_answer = False  # an intercom call (secretary.py): callees are asked to answer on the speaker
        if self.a is not None:
            core.remember(self.a)

    # -- life cycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            log.exception("call %s failed", self.id)
            if self.state == "setup" and self.a is not None:
                self.a.answer(self.tx, 500)
            else:
                for leg in self.legs:
                    leg.bye()
            self.finish("failed", 500)

    async def _run(self) -> None:
        if session_timer.too_small(self.tx.request, self.core.cfg.min_se):
            self.a.answer(self.tx, 422, Min_SE=str(self.core.cfg.min_se))
            self.finish("failed", 422)
            return
        if await features.intercept(self):
            return  # a pickup or a page: the feature module runs it
        delayed = not self.tx.request.body  # offerless INVITE: we offer to the callee, the caller answers in ACK
        try:
            if delayed:
                offer = _our_offer(self.core.cfg.codecs)
            else:
                offer = filter_offer(Sdp.parse(self.tx.request.body), self.core.cfg.codecs)
        except SdpError:
            self.a.answer(self.tx, 488)
            self.finish("failed", 488)
            return
        try:
            side_a, side_b = await self.core.relay.pair()
        except OSError:
            self.a.answer(self.tx, 503)
            self.finish("failed", 503)
            return
        self.a.side = side_a
        if not delayed:
            self.a.sdp = offer
            self._set_peer(self.a, offer)
        self.offer, self.ring_side = offer, side_b
        self.announce("initiated")
        out = await self.dial(self.dialled, self.authority, 0)
        if self.state == "ended" or (self.cancelled and out.kind in ("answered", "local")):
            if out.leg:
                out.leg.bye()  # answered while the caller was cancelling: the caller wins
            if self.state != "ended":
                self.a.answer(self.tx, 487)
                self.finish("cancelled", 487)
            return
        if out.kind == "local":
            return  # an application answered and passed the caller on (MediaEndpoint.bridge): call goes on
        if out.kind != "answered":
            self.record.trunk = out.trunk or self.record.trunk
            self.finish(out.kind, out.status)
            self.a.answer(self.tx, out.status)
            return
        leg = out.leg
        leg.side = side_b
        leg.sdp = out.answer
        self._set_peer(leg, out.answer)
        self.legs = [self.a, leg]
        self.state = "connected"
        self.answered_at = self.record.answer = time.time()
        self.record.callee, self.record.trunk = leg.label, out.trunk or self.record.trunk
        self.record.status = 200
        self.a.answer(self.tx, 200, self.sdp_for(self.a, out.to_caller or out.answer),
                      **self.session_headers(self.a, self.tx.request))
        self.announce("connected")
        self._watch_media()
        self.start_timers()
        recording.connected(self)
        features.incall.watch(self)
        await self.done.wait()

    # -- session timers and the maximum duration (session_timer.py) -------------------------------
    def session_headers(self, leg: Leg, req: Request) -> dict[str, str]:
        """Session-Expires for our 2xx to an INVITE/UPDATE of `leg`'s party (arms or re-arms its timer)."""
        cfg = self.core.cfg
        if req.method == "UPDATE" and session_timer.parse_session_expires(req) is None:
            if leg.session is not None:
                leg.session.restart()  # an UPDATE without Session-Expires still shows the party is there
            return {}
        return session_timer.uas_headers(leg, req, cfg.session_expires, cfg.min_se)

    def start_timers(self) -> None:
        limit = self.core.cfg.max_call_duration.get(self.authority, 0)
        if limit:
            self._limit = asyncio.get_running_loop().call_later(limit, self.media_down, "max_duration")

    def stop_timers(self) -> None:
        if self._limit is not None:
            self._limit.cancel()
            self._limit = None
        for party in self.legs:
            if isinstance(party, Leg):
                party.stop_session()

    def session_expired(self, leg: Leg) -> None:
        """A party stopped refreshing its session (or our refresh failed): both sides hang up."""
        log.info("call %s: the session of %s expired", self.id, leg.label)
        if leg not in self.legs:
            leg.bye()
            return
        self.media_down("session_expired")

    def announce(self, event: str, reason: str = "") -> None:
        """Publish a call event and the matching event of every device in the call (events.py)."""
        events = self.core.events
        events.call(self, event, reason)
        parties = [p for p in self.legs if p is not None]
        for party in parties:
            peer = next((p.label for p in parties if p is not party), self.callee_label or self.dialled)
            events.device(party.extension, self, event, initiator=party is self.a, peer=peer)

    def summary(self) -> dict:
        """What call events carry: the call without its media figures."""
        return {"call": self.id, "state": self.state, "caller": self.caller, "caller_name": self.caller_name,
                "dialled": self.dialled, "callee": self.record.callee, "direction": self.record.direction,
                "trunk": self.record.trunk, "started": self.started, "answered": self.answered_at,
                "devices": [p.extension for p in self.legs if p.extension],
                "parties": [p.label for p in self.legs],
                "on_hold": any(p.sdp is not None and is_hold(p.sdp) for p in self.legs)}

    async def originate(self, offer: Sdp | None = None) -> Leg | None:
        """Ring `dialled` for the box itself (PbxCore.originate): the answered leg, or None. `offer`: what
        the callee is offered (default: our codecs)."""
        try:
            [side] = await self.core.relay.open(1)
        except OSError:
            self.finish("failed", 503)
            return None
        self.offer, self.ring_side = offer or _our_offer(self.core.cfg.codecs), side
        self.announce("initiated")
        out = await self.dial(self.dialled, self.authority, 0)
        if out.kind != "answered" or self.state == "ended":
            if out.leg:
                out.leg.bye()
            self.record.trunk = out.trunk or self.record.trunk
            self.finish(out.kind, out.status)
            return None
        leg = out.leg
        leg.side, leg.sdp, self.ring_side = side, out.answer, None
        self._set_peer(leg, out.answer)
        self.legs = [leg]
        self.state = "connected"
        self.answered_at = self.record.answer = time.time()
        self.record.callee, self.record.trunk = leg.label, out.trunk
        self.record.status = 200
        self.announce("connected")
        self._watch_media()
        self.start_timers()
        return leg

    def join(self, leg: Leg) -> None:
        """Take `leg`, alone in its call, into this one and relay its media to our other party."""
        old = leg.call
        if old.legs != [leg] or not self.legs:
            raise ValueError("only a leg alone in its call can join another")
        old._rtp_figures()
        partner = next(p for p in self.legs if p.side is not None)
        old.legs = []
        old.record.transferred_to = partner.label
        self.core.events.device(leg.extension, old, "cleared", initiator=False, peer=partner.label)
        old.finish("transferred", 200)
        leg.call = self
        self.legs.append(leg)
        self.core.relay.link(partner.side, leg.side)
        self.record.callee = self.record.callee or leg.label
        self.record.transferred_to = leg.label if self.record.callee != leg.label else ""
        self.announce("connected")
        self._watch_media()
        features.incall.watch(self)
        if self.recording is None:
            recording.connected(self)  # an application (attendant...) put the caller through

    def ack_answer(self, leg: Leg, body: bytes) -> None:
        """The SDP answer of a delayed-offer caller, carried by its ACK."""
        try:
            answer = Sdp.parse(body)
        except SdpError:
            return
        if (leg.sdp is None or leg.awaiting_answer) and answer.audio() is not None:
            leg.sdp = answer
            self._set_peer(leg, answer)
            for party in self.legs:
                if party.kind == "media":
                    party.caller_answered(answer)  # the codec the delayed-offer caller chose
            if self.state == "connected":
                self._watch_media()
        leg.awaiting_answer = False

    def finish(self, kind: str, status: int) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        rec = self.record
        rec.disposition = DISPOSITION.get(kind, kind)
        rec.status = rec.status or status
        rec.end = time.time()
        self._rtp_figures()
        for leg in self.legs:
            if leg.side:
                leg.side.close()
            self.core.forget(leg)
        if self.ring_side:
            self.ring_side.close()
        self.stop_timers()
        self.core.call_ended(self)
        self.announce("cleared", rec.end_reason)
        self.done.set()

    def _rtp_figures(self) -> None:
        if len(self.legs) == 2:
            for leg, attr in zip(self.legs, ("rtp_a", "rtp_b"), strict=True):
                if leg.side:
                    s = leg.side.stats.summary()
                    setattr(self.record, attr, f"{s['packets']}/{s['lost']}")
                    self.core.counters["relayed_packets"] += s["forwarded"] - leg.side.stats.reported
                    self.core.counters["relay_lost_packets"] += s["lost"] - leg.side.stats.reported_lost
                    leg.side.stats.reported, leg.side.stats.reported_lost = s["forwarded"], s["lost"]

    # -- routing ----------------------------------------------------------------------------------
    async def dial(self, number: str, authority: str, depth: int) -> Outcome:
        if depth > MAX_DEPTH:
            return Outcome("failed", 482)
        cfg = self.core.cfg
        partner = secretary.intercom(self, number)
        if partner is not None:
            number = partner
        dest = dialplan.classify(number, cfg, self.core.users.keys())
        self.callee_label = dest.number
        if dest.kind == "invalid":
            return Outcome("notfound", 404)
        if dest.kind == "application":
            return await self.run_application(dest.number)
        if dest.kind == "extension":
            return await self.dial_extension(secretary.screened(self, dest.number), depth)
        if dest.kind == "group":
            return await self.dial_group(dest.number, depth)
        if not dialplan.permitted(authority, dest):
            return Outcome("forbidden", 403)
        return await self.dial_external(dest)

    async def run_application(self, destination: str) -> Outcome:
        """Hand the caller (or, in a transfer, the transferee) to the application registered for
        `destination` (apps.py)."""
        transfer = self.transferor is not None and self.state == "connected"
        if self.a is None or (self.state != "setup" and not transfer):
            return Outcome("failed", 488)
        app = apps.lookup(destination)
        self.callee_label = destination
        if app is None:
            log.info("call %s: no application %s", self.id, destination)
            self.record.end_reason = "unknown_application"
            return Outcome("notfound", 404)
        local = MediaEndpoint(self, destination)
        if transfer:
            self.transfer_app = local
        try:
            await app(local)
        except ChannelGone:
            pass  # the caller left while the application waited: the call is over already
        except Exception:
            log.exception("call %s: application %s failed", self.id, destination)
            self.record.end_reason = "application_failed"
        finally:
            if self.transfer_app is local:
                self.transfer_app = None
        if self.state == "setup" or (transfer and local not in self.legs and local.media is None):
            return Outcome("unavailable", 480)  # it never answered
        if self.state == "connected" and local in self.legs:
            local.hangup()
        return Outcome("local", 200)

    def answer_locally(self, local: MediaEndpoint) -> bool:
        """The box answers the caller as `local` (an application): 200 OK with our media."""
        if local is self.transfer_app:
            return self._transferred_to_application(local)
        if self.state != "setup" or self.cancelled or self.a is None:
            return False
        try:
            local.sdp = local_answer(self.offer, self.core.cfg.codecs)
        except SdpError:
            return False
        if self.ring_side is not None:
            self.ring_side.close()
            self.ring_side = None
        self.legs = [self.a, local]
        self.state = "connected"
        self.answered_at = self.record.answer = time.time()
        self.record.callee, self.record.status = local.label, 200
        # a delayed-offer caller gets our offer; its ACK brings the answer
        self.a.awaiting_answer = self.a.sdp is None
        self.a.answer(self.tx, 200, self.sdp_for(self.a, self.offer if self.a.sdp is None else local.sdp),
                      **self.session_headers(self.a, self.tx.request))
        self.announce("connected")
        self._watch_media()
        self.start_timers()
        return True

    def _transferred_to_application(self, local: MediaEndpoint) -> bool:
        """A transfer's application answers: it takes the transferor's place (whose side goes)."""
        transferor = self.transferor
        transferee = self.other(transferor) if transferor else None
        if self.state != "connected" or transferee is None or transferee.ended or self.offer is None:
            return False
        try:
            local.sdp = local_answer(self.offer, self.core.cfg.codecs)
        except SdpError:
            return False
        self.transfer_app = None
        self._notify(transferor, 200, "OK", True)
        self._rtp_figures()
        side, transferor.side = transferor.side, None
        if side is not None:
            side.close()
        self._complete_transfer(transferor, transferee, local, local.label)
        self.transferor = None  # done: the transferee now talks to the application
        return True

    def hand_over(self, local: MediaEndpoint, leg: Leg) -> None:
        """An application passes its caller to `leg` (answered, alone in its call) and leaves the call."""
        if self.state != "connected" or local not in self.legs:
            raise ValueError("the application is no longer in the call")
        self.legs.remove(local)
        local.bye()
        self.join(leg)
        features.bridging.handed_over(local, leg)  # another codec than the caller's: transcoded

    def local_hangup(self, local: MediaEndpoint) -> None:
        """An application ends the call: BYE to the other parties."""
        if self.state == "ended":
            return
        local.bye()
        others = [p for p in self.legs if p is not local]
        self.finish("answered", 200)
        for party in others:
            party.bye()

    async def dial_extension(self, ext: str, depth: int) -> Outcome:
        s = self.core.cfg.extensions.get(ext) or ExtensionSettings()
        owner = self.core.permission_of_extension(ext)
        if s.forward_always:
            return await self.dial(s.forward_always, owner, depth + 1)
        has_box = s.voicemail is not False and ext in self.core.users  # on unless turned off
        mailbox = f"voicemail:{ext}" if has_box else None  # voicemail/: where no forwarding is set
        assistant = f"assistant:{ext}" if s.assistant.enabled else None  # attendant/assistant.py
        busy, no_answer = s.forward_busy or mailbox, s.forward_no_answer or assistant or mailbox
        if s.dnd:
            return await self._divert(busy, "busy", owner, depth) if busy else Outcome("busy", 486)
        targets = self.core.targets_for(ext)
        if not targets:
            out = Outcome("unavailable", 480)
        else:
            out = await self.ring(targets, s.no_answer_timeout if no_answer else MAX_RING)
        if out.kind == "busy" and busy:
            return await self._divert(busy, "busy", owner, depth)
        if out.kind in ("noanswer", "unavailable") and no_answer:
            return await self._divert(no_answer, "unavailable", owner, depth)
        return out

    async def _divert(self, target: str, why: str, owner: str, depth: int) -> Outcome:
        """Forward a call the extension did not take; a voicemail box greets by `why` (busy, unavailable)."""
        self.voicemail_greeting = why
        return await self.dial(target, owner, depth + 1)

    async def dial_group(self, number: str, depth: int) -> Outcome:
        core = self.core
        group = next(g for g in core.cfg.groups if g.number == number)
        members = [m for m in group.members if not (core.cfg.extensions.get(m) or ExtensionSettings()).dnd]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + group.timeout
        out = Outcome("noanswer", 480)
        if group.strategy == "simultaneous":
            targets = [t for m in members for t in core.targets_for(m)]
            if targets:
                out = await self.ring(targets, group.timeout)
        else:
            if group.strategy == "round_robin" and members:
                start = core.round_robin.get(number, 0) % len(members)
                core.round_robin[number] = start + 1
                members = members[start:] + members[:start]
            for member in members:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                targets = core.targets_for(member)
                if not targets:
                    continue
                out = await self.ring(targets, min(group.member_timeout, remaining))
                if out.kind in ("answered", "cancelled"):
                    break
        if out.kind in ("answered", "cancelled"):
            return out
        if group.overflow:
            return await self.dial(group.overflow, core.cfg.default_permission, depth + 1)
        return Outcome("noanswer", 480)

    async def dial_external(self, dest: dialplan.Destination) -> Outcome:
        core = self.core
        route = dialplan.select_route(dest.number, core.cfg)
        if route is None:
            return Outcome("notfound", 404)
        last = Outcome("failed", 503)
        for name in route.trunks:
            trunk = next(t for t in core.cfg.trunks if t.name == name)
            if core.trunk_channels.get(name, 0) >= trunk.max_channels:
                continue  # full: overflow to the next trunk
            flow = core.trunk_flow(trunk)
            if flow is None:
                continue
            number = dialplan.number_for_trunk(dest.number, route, trunk, core.cfg, dest.kind == "emergency")
            uri = Uri("sip", number, trunk.host, trunk.port)
            out = await self.ring([Target(trunk.name, uri, flow, None, trunk)], MAX_RING)
            if out.kind in ("answered", "cancelled") or not FAILOVER(out.status):
                return out
            log.info("trunk %s failed with %s, trying the next one", name, out.status)
            last = out
        return last

    # -- ringing ----------------------------------------------------------------------------------
    def _new_leg(self, target: Target) -> Leg:
        core = self.core
        if target.trunk:
            trunk = target.trunk
            user = trunk.from_number or trunk.username or self.caller
            local = NameAddr(Uri("sip", user, trunk.host), self.caller_name)
            remote = NameAddr(Uri("sip", target.uri.user, trunk.host))
        else:
            host = core.stack.local_ip(target.flow[1])
            local = NameAddr(Uri("sip", self.caller, host), callername.display_name(self, target.extension))
            remote = NameAddr(Uri("sip", target.extension or target.label, host))
        leg = Leg(core, self, call_id=new_call_id(), local=local, remote=remote, target=target.uri,
                  flow=target.flow, uas=False, label=target.label)
        leg.trunk, leg.extension = target.trunk, target.extension
        core.remember(leg)
        return leg

    def _send_invite(self, leg: Leg, auth: str | None = None) -> None:
        req = leg.new_request("INVITE", self.sdp_for(leg, self.offer, self.ring_side))
        req.add("Allow", self.core.ALLOW)
        req.add("Max-Forwards", str(max(self.hops, 0)))
        cfg = self.core.cfg
        for name, value in session_timer.uac_headers(max(cfg.session_expires, leg.min_se), cfg.min_se).items():
            req.add(name, value)
        for name, value in self.invite_headers.items():
            req.add(name, value)
        if auth:
            req.add("Proxy-Authorization" if leg.auth_tried == 407 else "Authorization", auth)
        timeout = leg.trunk.invite_timeout if leg.trunk else None
        leg.invite_tx = leg.send(req, lambda resp: self._invite_response(leg, resp), timeout)

    def _invite_response(self, leg: Leg, resp: Response) -> None:
        if 200 <= resp.status < 300 and leg.ack is not None:
            leg.resend_ack()  # a retransmitted 2xx
            return
        if leg.abandoned:
            if 200 <= resp.status < 300:
                leg.send_ack(resp)
                leg.bye()
            elif resp.status >= 300:
                self.core.forget(leg)
            return
        if resp.status == 100:
            return  # ring() has nothing to do with a 100 Trying: no wake-up
        self.events.put_nowait((leg, resp))

    def cancel_ringing(self) -> None:
        """The caller CANCELled (or the transferee left): stop the current or next ringing."""
        self.cancelled = True
        self.events.put_nowait((None, None))

    async def ring(self, targets: list[Target], timeout: float) -> Outcome:
        legs = [self._new_leg(t) for t in targets]
        for leg in legs:
            self._send_invite(leg)
        pending = set(legs)
        statuses: list[int] = []
        if self.cancelled:
            for leg in legs:
                leg.abandoned = True
                leg.invite_tx.cancel()
            return Outcome("cancelled", 487)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def abandon(reason: str | None = None) -> None:
            for other in pending:
                other.abandoned = True
                if other.invite_tx:
                    other.invite_tx.cancel(reason)
        expired = object()  # queued at the deadline: one timer per ring() rather than one per wait
        timer = self.core.stack.timerq.call_later(timeout, self.events.put_nowait, (expired, None))
        try:
            return await self._ring(legs, pending, statuses, deadline, abandon, expired)
        finally:
            timer.cancel()
            for leg in legs:
                if leg.alerted and not (leg.confirmed and not leg.ended and not leg.abandoned):
                    self.core.events.device(leg.extension, self, "cleared", initiator=False, peer=self.caller)

    def _alerting(self, leg: Leg) -> None:
        if leg.alerted:
            return
        leg.alerted = True
        self.core.events.device(leg.extension, self, "alerting", initiator=False, peer=self.caller)
        if not self.alert_announced and self.state == "setup":
            self.alert_announced = True
            self.announce("alerting")

    async def _ring(self, legs, pending, statuses, deadline, abandon, expired) -> Outcome:
        loop = asyncio.get_running_loop()
        while pending:
            if deadline - loop.time() <= 0:
                abandon()
                return Outcome("noanswer", 480)
            leg, resp = await self.events.get()
            if leg is expired:
                abandon()
                return Outcome("noanswer", 480)
            if leg is None:
                if not self.cancelled:
                    continue  # a stale wake-up from an earlier phase
                abandon()
                return Outcome("cancelled", 487)
            if resp is features.PICKED_UP:
                out = features.taken(self, leg)  # another phone picks the call up (features/pickup.py)
                if out is not None:
                    abandon(ELSEWHERE)
                    return out
                continue
            if leg not in pending:
                continue
            if resp.status < 200:
                if resp.status in (180, 183):
                    leg.early_tag = resp.to_tag or ""  # the ringing phone's tag: BLF documents name it
                    self._alerting(leg)
                if self.a is None or self.state != "setup":
                    continue
                if resp.body and resp.status in (180, 183) and self.early is None:
                    self._early_media(leg, resp)
                elif resp.status in (180, 183) and not self.ringing_sent:
                    self.ringing_sent = True
                    self.a.answer(self.tx, 180)
                continue
            if resp.status < 300:
                pending.discard(leg)
                abandon(ELSEWHERE)
                leg.send_ack(resp)
                session_timer.uac_answered(leg, resp, max(self.core.cfg.session_expires, leg.min_se))
                try:
                    answer = Sdp.parse(resp.body)
                    if answer.audio() is None:
                        raise SdpError("no audio")
                except SdpError:
                    leg.bye()
                    return Outcome("failed", 488)
                return Outcome("answered", 200, leg, answer, leg.trunk.name if leg.trunk else "")
            if resp.status == 422 and not leg.min_se and self.core.cfg.session_expires:
                asked = (resp.get("Min-SE") or "").split(";")[0].strip()
                if asked.isdigit() and int(asked) <= 86400:
                    leg.min_se = int(asked)  # the callee wants a longer session interval: ask again
                    self._send_invite(leg)
                    continue
            if resp.status in (401, 407) and leg.trunk and not leg.auth_tried and leg.trunk.username:
                header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
                from .auth import authorization, pick_challenge
                challenge = pick_challenge(resp.get_all(header))
                value = challenge and authorization(challenge, "INVITE", str(leg.target), leg.trunk.username,
                                                    leg.trunk.auth_password)
                if value:
                    leg.auth_tried = resp.status
                    self._send_invite(leg, value)
                    continue
            pending.discard(leg)
            self.core.forget(leg)
            statuses.append(resp.status)
        return self._aggregate(statuses, legs)

    def _early_media(self, leg: Leg, resp: Response) -> None:
        """A callee (a carrier announcement, a remote ringback) sends media before answering: relay it."""
        try:
            early = Sdp.parse(resp.body)
        except SdpError:
            return
        m = early.audio()
        if m is None or self.ring_side is None:
            return
        self.early = leg
        pt = next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), 0)
        self.ring_side.set_peer(early.address(m), m.port, m.clock_rate(pt), source=leg.flow[1])
        self.core.events.media_peer(self, early.address(m), leg.flow[1])
        self.ringing_sent = True
        self.a.answer(self.tx, 183, self.sdp_for(self.a, early))

    @staticmethod
    def _aggregate(statuses: list[int], legs: list[Leg]) -> Outcome:
        trunk = legs[0].trunk.name if legs and legs[0].trunk else ""
        if any(s in (486, 600, 603) for s in statuses):
            return Outcome("busy", 486, trunk=trunk)
        if legs and legs[0].trunk:
            status = statuses[-1] if statuses else 503
            kind = {404: "notfound", 403: "forbidden", 480: "unavailable", 487: "cancelled"}.get(status, "failed")
            return Outcome(kind, status, trunk=trunk)
        if statuses and all(s in (404, 604) for s in statuses):
            return Outcome("notfound", 404)
        if any(s in (488, 606) for s in statuses):
            return Outcome("failed", 488)
        return Outcome("unavailable", 480)

    # -- media ------------------------------------------------------------------------------------
    def sdp_for(self, leg: Leg, source: Sdp, side=None) -> bytes:
        """`source` rewritten so that `leg`'s party sends its media to our relay side."""
        side = side or leg.side
        sdp = source.copy()
        ip = self.core.relay_ip(leg.flow[1])
        sdp.origin_user, sdp.origin_addr, sdp.name = "-", ip, "-"  # no product name to fingerprint
        sdp.session_id = str(int(leg.local_tag[:8], 16)) if leg.local_tag[:8].isalnum() else "1"
        leg_version = getattr(leg, "sdp_version", 0) + 1
        leg.sdp_version = leg_version
        sdp.version = leg_version
        hold_zero = (source.audio() is not None and source.address(source.audio()) == "0.0.0.0")
        sdp.connection = "0.0.0.0" if hold_zero else ip
        for m in sdp.media:
            m.connection = None
            if m.kind == "audio" and m.port:
                m.port = side.port
        data = sdp.to_bytes()
        leg.sent_sdp = data
        return data

    def _set_peer(self, leg: Leg, sdp: Sdp, relatch: bool = False, new_party: bool = False) -> None:
        """Media of `leg` is accepted from its SDP or signalling address only; `relatch`: its own new offer;
        `new_party`: `leg` took over another party's side (the one who left is refused)."""
        m = sdp.audio()
        if m is None or leg.side is None:
            return
        pt = next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), 0)
        leg.side.set_peer(sdp.address(m), m.port, m.clock_rate(pt), source=leg.flow[1], relatch=relatch,
                          new_party=new_party)
        self.core.events.media_peer(self, sdp.address(m), leg.flow[1])

    def _watch_media(self) -> None:
        """RTP timeout: each sending party of a connected call that is not on hold is watched."""
        held = any(leg.sdp is not None and is_hold(leg.sdp) for leg in self.legs)
        for leg in self.legs:
            m = leg.sdp.audio() if leg.sdp else None
            sends = m is not None and (m.direction or leg.sdp.direction) not in ("recvonly", "inactive")
            if leg.side:
                leg.side.watch(self.core.cfg.rtp_timeout if sends and not held else 0)

    def _media_changed(self) -> None:
        """After an offer/answer: RTP timeout watches, and the held/retrieved event on a change."""
        self._watch_media()
        held = any(p.sdp is not None and is_hold(p.sdp) for p in self.legs)
        if held != self.was_held:
            self.was_held = held
            self.announce("held" if held else "retrieved")

    def media_down(self, reason: str) -> None:
        """The media engine lost this call's media (no RTP for too long, engine restart): end both sides."""
        if self.state == "ended":
            return
        self.record.end_reason = reason
        if self.state == "setup":
            self.cancel_ringing()
            return
        log.info("call %s: %s, hanging up", self.id, reason)
        legs = list(self.legs)
        self.finish("answered", 200)
        for leg in legs:
            leg.bye()

    def other(self, leg: Leg) -> Leg | None:
        return next((x for x in self.legs if x is not leg), None) if leg in self.legs else None

    # -- in-dialog requests -----------------------------------------------------------------------
    def on_request(self, leg: Leg, tx: ServerTx, req: Request) -> None:
        if req.cseq[0] <= leg.remote_cseq and leg.remote_cseq:
            leg.answer(tx, 500, Retry_After="1")  # out of order (RFC 3261 12.2.2)
            return
        leg.remote_cseq = req.cseq[0]
        method = req.method
        if method == "BYE":
            leg.answer(tx, 200)
            self.hangup(leg)
        elif method in ("INVITE", "UPDATE"):
            contacts = req.contacts()
            if contacts and method == "INVITE":
                leg.target = contacts[0].uri
            asyncio.get_running_loop().create_task(self.renegotiate(leg, tx, req))
        elif method == "REFER":
            self.refer(leg, tx, req)
        elif method in FORWARDED:
            self.forward(leg, tx, req)
        elif method in ("OPTIONS", "NOTIFY"):
            leg.answer(tx, 200)
        else:
            leg.answer(tx, 501)

    def forward(self, leg: Leg, tx: ServerTx, req: Request) -> None:
        """INFO (DTMF as application/dtmf-relay or dtmf, RFC 6086) and MESSAGE to the other party; its
        final answer goes back to the sender."""
        other = self.other(leg)
        if self.state == "ended":
            leg.answer(tx, 481)
            return
        if self.state != "connected" or other is None or other.ended:
            leg.answer(tx, 480)  # nobody to pass it to yet (ringing) or any more (transfer in progress)
            return
        if req.max_forwards == 0:
            leg.answer(tx, 483)
            return
        if req.method == "INFO":
            recording.info_key(self, leg, req.body, req.get("Content-Type") or "")
            if features.incall.info(self, leg, tx, req):
                return  # a key of an in-call feature code
        if other.kind == "media":
            leg.answer(tx, other.on_request(req))  # the application reads it from its channel's inbox
            return
        fwd = self.passed_request(other, req)

        def answered(resp: Response) -> None:
            if resp.status >= 200 and not leg.ended:
                # a challenge from the far party is no question the sender can answer through us
                leg.answer(tx, 403 if resp.status in (401, 407) else resp.status)
        other.send(fwd, answered)

    def passed_request(self, other: Leg, req: Request) -> Request:
        """`req` (INFO, MESSAGE) as it goes on to `other`."""
        fwd = other.new_request(req.method, req.body, req.get("Content-Type") or "text/plain")
        for name in PASSED_HEADERS:
            if req.get(name):
                fwd.add(name, req.get(name))
        fwd.add("Max-Forwards", str(req.max_forwards - 1))
        return fwd

    def hangup(self, leg: Leg) -> None:
        leg.ended = True
        leg._stop_retransmit()
        leg.stop_session()
        self.core.forget(leg)
        if self.state != "connected":
            return
        if leg is self.transferor:
            return  # the transfer goes on without the transferor
        if features.leaving(self, leg):
            return  # a three-party conference: the two others go on talking
        other = self.other(leg)
        if self.transferor is not None and other is self.transferor:
            self.cancel_ringing()  # the transferee left: stop ringing the target
        others = [party for party in self.legs if party is not leg]
        self.finish("answered", 200)  # the record exists before the other party hears the BYE
        for party in others:
            party.bye()

    def leg_failed(self, leg: Leg) -> None:
        """A party never ACKed our 2xx: end the call."""
        leg.bye()
        if self.state == "connected":
            self.hangup(leg)

    async def renegotiate(self, leg: Leg, tx: ServerTx, req: Request) -> None:
        """Hold / resume / codec change: pass the offer to the other party, its answer back."""
        if features.reoffer(self, leg, tx, req):
            return  # a party of a three-party conference: the box answers
        other = self.other(leg)
        if self.state != "connected" or other is None or other.ended:
            leg.answer(tx, 481 if self.state == "ended" else 491)
            return
        if not req.body:
            if req.method == "UPDATE":
                leg.answer(tx, 200, **self.session_headers(leg, req))
            else:  # offerless re-INVITE: 200 with our offer, the other party's media as we relay it;
                # the answer comes in the ACK (RFC 3261 14.2, RFC 3264)
                leg.awaiting_answer = True
                leg.answer(tx, 200, self.sdp_for(leg, other.sdp or _our_offer(self.core.cfg.codecs)),
                           **self.session_headers(leg, req))
            return
        if self.renegotiating or self.transferor is not None:
            leg.answer(tx, 491)
            return
        try:
            offer = filter_offer(Sdp.parse(req.body), self.core.cfg.codecs)
            if other.kind == "media":  # the box itself answers (hold of an application...)
                other.sdp = local_answer(offer, self.core.cfg.codecs)
        except SdpError:
            leg.answer(tx, 488)
            return
        if other.kind == "media":
            leg.sdp = offer
            self._set_peer(leg, offer, relatch=True)
            leg.answer(tx, 200, self.sdp_for(leg, other.sdp), **self.session_headers(leg, req))
            other.media_changed(offer)  # the engine follows the codec; the application hears of a hold
            self._media_changed()
            return
        self.renegotiating = True
        try:
            fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

            def got(resp: Response) -> None:
                if resp.status >= 200 and not fut.done():
                    fut.set_result(resp)
                elif 200 <= resp.status < 300 and other.ack is not None:
                    other.resend_ack()
            other.ack = None
            holding = is_hold(offer)  # the held party is offered sendonly: it hears the box's music
            toward = holdmusic.offer_to_held(offer) if holding else offer
            other.send(other.with_session(other.new_request("INVITE", self.sdp_for(other, toward))), got)
            resp = await fut
            if not 200 <= resp.status < 300:
                leg.answer(tx, resp.status if resp.status in (488, 491, 500, 503) else 488)
                return
            other.send_ack(resp)
            other.session_refreshed()
            try:
                answer = Sdp.parse(resp.body)
            except SdpError:
                leg.answer(tx, 488)
                return
            leg.sdp, other.sdp = offer, answer
            self._set_peer(leg, offer, relatch=True)  # a re-INVITE of the party itself may move its media
            self._set_peer(other, answer)
            back = holdmusic.answer_to_holder(offer, answer) if holding else answer
            leg.answer(tx, 200, self.sdp_for(leg, back), **self.session_headers(leg, req))
            self._media_changed()
            self.hold_music = holdmusic.update(self, self.hold_music, leg, other)
        finally:
            self.renegotiating = False

    def refer(self, leg: Leg, tx: ServerTx, req: Request) -> None:
        other = self.other(leg)
        try:
            refer_to = NameAddr.parse(req.get("Refer-To") or "")
        except Exception:
            leg.answer(tx, 400)
            return
        if self.state != "connected" or other is None or self.transferor is not None or self.renegotiating:
            leg.answer(tx, 491)
            return
        if other.kind == "media":
            from .conference.app import refer as refer_into_room  # a phone's conference button (RFC 4579)
            if not refer_into_room(self, leg, other, tx, refer_to):
                leg.answer(tx, 403)  # an application cannot be transferred (the caller just hangs up)
            return
        replaces = refer_replaces(refer_to.uri.headers)
        if replaces is not None:
            target = self.core.find_dialog(*replaces)
            if target is None or target.call is self or target.call.state != "connected" \
                    or target.call.other(target) is None:
                leg.answer(tx, 481)
                return
            theirs = target.call.other(target)
            if theirs.kind != "sip":  # the other call is with an application: the transferee gets it
                leg.answer(tx, 202)
                self.replacing = target
                asyncio.get_running_loop().create_task(self.blind_transfer(leg, other, theirs.destination))
                return
            leg.answer(tx, 202)
            asyncio.get_running_loop().create_task(self.attended_transfer(leg, other, target))
            return
        number = refer_to.uri.user
        leg.answer(tx, 202)
        asyncio.get_running_loop().create_task(self.blind_transfer(leg, other, number))

    async def attended_transfer(self, transferor: Leg, transferee: Leg, replaced: Leg) -> None:
        """REFER with Replaces: join our other party with the other party of the transferor's second call."""
        other_call = replaced.call
        target = other_call.other(replaced)
        self._notify(transferor, 100, "Trying", False)
        self.transferor = transferor
        try:
            used, theirs = self._codec_in_use(), other_call._codec_in_use()
            if used is not None and theirs is not None and used != theirs and transferee.sdp is not None:
                # different codecs on the two calls: move the target to ours with a re-INVITE
                offer = transferee.sdp.copy()
                m = offer.audio()
                m.formats = [p for p in m.formats if p == used or m.codec(p) == "TELEPHONE-EVENT"]
                if not await self._reinvite(target, offer):
                    self._notify(transferor, 488, "Not Acceptable Here", True)
                    return
            if transferor.sdp is not None and is_hold(transferor.sdp) and transferee.sdp is not None:
                # the transferor held the transferee while it consulted: it is asked to send again
                offer = transferee.sdp.copy()
                offer.direction = None
                for m in offer.media:
                    m.direction = "sendrecv" if m.kind == "audio" else m.direction
                if not await self._reinvite(transferee, offer):
                    self._notify(transferor, 488, "Not Acceptable Here", True)
                    return
        except (TimeoutError, SdpError):
            self._notify(transferor, 500, "Server Internal Error", True)
            return
        finally:
            self.transferor = None
        if self.state != "connected" or other_call.state != "connected" or transferee.ended or target.ended:
            self._notify(transferor, 487, "Request Terminated", True)
            return
        self._notify(transferor, 200, "OK", True)
        self._rtp_figures()
        other_call._rtp_figures()
        now = time.time()
        self.record.disposition, self.record.end, self.record.transferred_to = "transferred", now, target.label
        self.core.cdr_add(self.record)
        # the other call ends for the transferor only; its remaining party joins this call
        other_call.legs = [replaced]
        other_call.ring_side = None
        other_call.record.transferred_to = transferee.label
        target.call = self
        transferor.bye()
        replaced.bye()
        if transferor.side:
            transferor.side.close()
            transferor.side = None
        self.ring_side = None
        if self.hold_music is not None:  # the held transferee's music stops: it talks to the target now
            self.hold_music.stop(relink=False)
            self.hold_music = None
        self.core.relay.link(transferee.side, target.side)
        self.core.events.device(target.extension, other_call, "cleared", initiator=target is other_call.a,
                                peer=replaced.label)  # it leaves its call for ours
        other_call.finish("transferred", 200)
        self.legs = [transferee, target]
        self.answered_at = now
        name = self.core.users[transferee.label].full_name if transferee.label in self.core.users else ""
        self.record = CallRecord(call_id=self.id, direction=self.record.direction, caller=transferee.label,
                                 caller_name=name, dialled=target.label, callee=target.label, answer=now, status=200)
        self.core.events.device(transferor.extension, self, "cleared", initiator=transferor is self.a,
                                peer=transferee.label)
        self.announce("transferred")
        self._watch_media()
        features.incall.watch(self)  # the keys of the parties now in this call

    async def _reinvite(self, leg: Leg, offer: Sdp) -> bool:
        """Re-INVITE `leg` with `offer` (its media toward our relay side): True once it accepted."""
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        leg.ack = None
        leg.send(leg.with_session(leg.new_request("INVITE", self.sdp_for(leg, offer))),
                 lambda r: fut.set_result(r) if r.status >= 200 and not fut.done() else None)
        resp = await asyncio.wait_for(fut, 40)
        if not 200 <= resp.status < 300:
            return False
        leg.send_ack(resp)
        leg.session_refreshed()
        leg.sdp = Sdp.parse(resp.body)
        self._set_peer(leg, leg.sdp)
        return True

    async def hand_to_application(self, leaving: Leg, destination: str) -> None:
        """`leaving`'s place in this call goes to the application at `destination`, as in a blind
        transfer (the three-party conference, services/pbx/conference: the other party joins a room)."""
        other = self.other(leaving)
        if self.state != "connected" or other is None or other.kind != "sip" or self.transferor is not None:
            return
        self.quiet_transfer = True
        try:
            await self.blind_transfer(leaving, other, destination)
        finally:
            self.quiet_transfer = False

    def _notify(self, leg: Leg, status: int, reason: str, final: bool) -> None:
        if leg.ended or self.quiet_transfer:
            return
        req = leg.new_request("NOTIFY", f"SIP/2.0 {status} {reason}\r\n".encode(), "message/sipfrag;version=2.0")
        req.add("Event", "refer")
        req.add("Subscription-State", "terminated;reason=noresource" if final else "active;expires=60")
        leg.send(req)

    async def blind_transfer(self, transferor: Leg, transferee: Leg, number: str) -> None:
        self.transferor = transferor
        self.cancelled = False
        self._notify(transferor, 100, "Trying", False)
        offer = transferee.sdp.copy()
        m = offer.audio()
        used = self._codec_in_use()
        if m is not None and used is not None:
            m.formats = [p for p in m.formats if p == used or m.codec(p) == "TELEPHONE-EVENT"] or m.formats
        self.offer, self.ring_side = offer, transferor.side
        if transferee is not self.a:  # the target sees who it will talk to
            self.caller = transferee.label
            user = self.core.users.get(transferee.label)
            self.caller_name = user.full_name if user else ""
        authority = self.core.permission_of_extension(transferor.label) if transferor.label in self.core.users \
            else self.core.cfg.default_permission
        try:
            out = await self.dial(number, authority, 0)
        finally:
            self.transferor = self.replacing = None
        if self.state != "connected" or transferee.ended:
            if out.leg:
                out.leg.bye()
            return
        if out.kind == "local":
            return  # an application took the transferee and handed it on (a parked call retrieved)
        if out.kind != "answered":
            self._notify(transferor, out.status, "Failed", True)
            if transferor.ended:
                transferee.bye()
                self.finish("answered", 200)
            return
        self._notify(transferor, 200, "OK", True)
        self._rtp_figures()
        side = transferor.side
        transferor.side = None
        new = out.leg
        new.side, new.sdp = side, out.answer
        self._set_peer(new, out.answer, new_party=True)  # the transferor's side now serves another party
        self._complete_transfer(transferor, transferee, new, number)

    def _complete_transfer(self, transferor: Leg, transferee: Leg, new, dialled: str) -> None:
        """`new` (a SIP leg or an application) has taken the transferor's place: the transferor goes, the
        record of the call so far is written and a new one starts; an application call being replaced
        (attended transfer to it) ends."""
        if self.hold_music is not None:  # the parties change: their sides are linked anew
            self.hold_music.stop(relink=False)
            self.hold_music = None
        transferor.bye()
        rec = self.record
        rec.disposition, rec.end, rec.transferred_to = "transferred", time.time(), new.label
        self.core.cdr_add(rec)
        self.legs = [transferee, new]
        self.answered_at = time.time()
        self.record = CallRecord(call_id=self.id, direction=self.record.direction if not new.trunk else "outbound",
                                 caller=transferee.label, caller_name=self.caller_name, dialled=dialled,
                                 callee=new.label, answer=self.answered_at,
                                 trunk=new.trunk.name if new.trunk else "", status=200)
        self.ring_side = None
        self.core.events.device(transferor.extension, self, "cleared", initiator=transferor is self.a,
                                peer=transferee.label)
        self.announce("transferred")
        self._watch_media()
        recording.transferred(self)
        features.incall.watch(self)
        replaced, self.replacing = self.replacing, None
        theirs = replaced.call.other(replaced) if replaced is not None else None
        if theirs is not None and replaced.call.state == "connected":
            replaced.call.local_hangup(theirs)

    def _codec_in_use(self) -> int | None:
        for leg in self.legs:
            if leg.sdp is not None and not leg.uas and leg is not self.a:
                m = leg.sdp.audio()
                if m:
                    return next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), None)
        for leg in self.legs:
            m = leg.sdp.audio() if leg.sdp else None
            if m:
                return next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), None)
        return None

    def snapshot(self) -> dict:
        relay = {}
        for leg in list(self.legs):
            if leg.side:
                relay[leg.label] = leg.side.stats.summary()
        summary = self.summary()
        return {"id": summary.pop("call"), **summary, "relay": relay}


def media_down(core: "PbxCore", sides: list, reason: str) -> None:
    """End the calls whose relay sides the media engine reports gone (PbxCore gives this to the relay)."""
    lost = set(sides)
    for call in list(core.calls.values()):
        if call.ring_side in lost or any(leg.side in lost for leg in call.legs):
            call.media_down(reason)


def _our_offer(codecs: list[str]) -> Sdp:
    """An offer of the codecs we relay (+ telephone-event); addresses are filled in by sdp_for()."""
    pts = {"PCMU": 0, "PCMA": 8, "G722": 9}
    formats = [pts[c] for c in codecs] + [101]
    rtpmap = {pts[c]: f"{c}/8000" for c in codecs} | {101: "telephone-event/8000"}
    # the address is a placeholder (0.0.0.0 would mean hold): sdp_for() puts the relay's in
    return Sdp(connection="127.0.0.1", media=[Media("audio", 9, "RTP/AVP", formats, rtpmap, {101: "0-16"})])


def refer_replaces(headers: str) -> tuple[str, str, str] | None:
    """Replaces=callid;to-tag=..;from-tag=.. from a Refer-To URI's headers (RFC 3891), unescaped."""
    from urllib.parse import unquote
    for part in headers.split("&"):
        name, _, value = part.partition("=")
        if name.lower() == "replaces":
            fields = unquote(value).split(";")
            params = dict(f.strip().partition("=")[::2] for f in fields[1:])
            return fields[0].strip(), params.get("to-tag", ""), params.get("from-tag", "")
    return None
