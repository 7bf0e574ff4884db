"""One SIP dialog of a call, seen from the B2BUA: the caller's leg (we are UAS) or a callee's (we are UAC)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from .endpoint import Endpoint
from .sdp import Sdp
from .sip.dialog import Dialog
from .sip.message import NameAddr, Request, Response, Uri, response_to
from .sip.stack import ClientTx, ServerTx
from .sip.transport import Dest

if TYPE_CHECKING:
    from .calls import Call
    from .core import PbxCore


class Leg(Dialog, Endpoint):
    def __init__(self, core: "PbxCore", call: "Call", *, call_id: str, local: NameAddr, remote: NameAddr,
                 target: Uri, flow: Dest, uas: bool, label: str) -> None:
        super().__init__(None, call_id=call_id, local=local, remote=remote, target=target, flow=flow)
        self.core = core
        self.call = call
        self.uas = uas
        self.label = label  # extension, number or trunk shown in CDRs and the call list
        self.side = None  # relay Side this party talks to
        self.sdp: Sdp | None = None  # the party's last SDP
        self.invite_tx: ClientTx | None = None
        self.server_tx: ServerTx | None = None
        self.ack: Request | None = None
        self.confirmed = False
        self.ended = False
        self.abandoned = False  # a fork we gave up on: answer late -> ACK + BYE
        self.alerted = False  # it rang (180/183): its device was told
        self.awaiting_answer = False  # we offered in a 2xx (offerless re-INVITE): the ACK brings the answer
        self.trunk = None
        self.auth_tried = False
        self.extension: str | None = None
        self.allow = ""  # the methods the party allows (its Allow header)
        self.sent_sdp = b""  # the last SDP we sent this party (a session refresh re-INVITE resends it)
        self.session = None  # its session_timer.SessionTimer, if one was negotiated
        self.min_se = 0  # the Min-SE of the party's 422 (we ask again with at least that)
        self._retrans = None  # Timer of the 2xx retransmission
        self._unacked_cseq: int | None = None

    @property
    def stack(self):
        return self.core.stack

    def bye(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._stop_retransmit()
        self.stop_session()
        if self.confirmed or (not self.uas and self.remote.tag):
            self.send(self.new_request("BYE"))
        self.core.forget(self)

    def send_ack(self, resp: Response) -> None:
        """ACK a 2xx to our INVITE (a new transaction, RFC 3261 13.2.2.4); resent on 2xx retransmissions."""
        self.update_from_2xx(resp)
        ack = self.new_request("ACK")
        ack.set("CSeq", f"{resp.cseq[0]} ACK")
        ack.remove("Contact")
        self.ack = ack
        self.core.stack.send_stateless(ack, self.flow)

    def resend_ack(self) -> None:
        if self.ack is not None:
            self.core.stack.send_stateless(self.ack, self.flow)

    def update_from_2xx(self, resp: Response) -> None:
        if resp.to_tag:
            self.remote.params["tag"] = resp.to_tag
        self.allow = resp.get("Allow") or self.allow
        contacts = resp.contacts()
        if contacts:
            self.target = contacts[0].uri
        if not self.confirmed:
            self.route_set = list(reversed(resp.get_all("Record-Route")))
        self.confirmed = True

    # -- answering as UAS -------------------------------------------------------------------------
    def answer(self, tx: ServerTx, status: int, body: bytes = b"", **headers: str) -> Response:
        resp = response_to(tx.request, status, to_tag=self.local_tag)
        if 100 < status < 300:
            resp.add("Contact", self.contact())
        for name, value in headers.items():
            resp.add(name.replace("_", "-"), value)
        if body:
            resp.add("Content-Type", "application/sdp")
            resp.body = body
        tx.respond(resp)
        if tx.invite and 200 <= status < 300:
            self.confirmed = True
            self._start_retransmit(resp.to_bytes(), tx.request.cseq[0])
        return resp

    def _start_retransmit(self, data: bytes, cseq: int) -> None:
        """Resend our 2xx until the ACK comes (RFC 3261 13.3.1.4); no ACK after 64*T1 ends the call."""
        self._stop_retransmit()
        self._unacked_cseq = cseq
        timers = self.core.stack.timers
        later = self.core.stack.timerq.call_later
        loop = asyncio.get_running_loop()
        start = loop.time()

        def fire(interval: float) -> None:
            if self._unacked_cseq != cseq or self.ended:
                return
            if loop.time() - start >= 64 * timers.T1:
                self._unacked_cseq = None
                self.call.leg_failed(self)
                return
            self.core.stack.transports.send(data, self.flow)
            self._retrans = later(min(2 * interval, timers.T2), fire, min(2 * interval, timers.T2))
        if self.flow[0] == "udp":
            self._retrans = later(timers.T1, fire, timers.T1)
        else:
            self._retrans = later(64 * timers.T1, fire, 64 * timers.T1)

    def _stop_retransmit(self) -> None:
        if self._retrans:
            self._retrans.cancel()
            self._retrans = None

    def on_ack(self, req: Request) -> None:
        if self._unacked_cseq is not None and req.cseq[0] == self._unacked_cseq:
            self._unacked_cseq = None
            self._stop_retransmit()
            if req.body:
                self.call.ack_answer(self, req.body)

    @classmethod
    def from_invite(cls, core: "PbxCore", call: "Call", req: Request, label: str) -> "Leg":
        contacts = req.contacts()
        leg = cls(core, call, call_id=req.call_id, local=req.to, remote=req.from_,
                  target=contacts[0].uri if contacts else req.from_.uri, flow=req.source, uas=True, label=label)
        leg.route_set = req.get_all("Record-Route")
        leg.remote_cseq = req.cseq[0]
        leg.allow = req.get("Allow") or ""
        return leg

    # -- session timer (session_timer.py) ---------------------------------------------------------
    def arm_session(self, interval: int, we_refresh: bool) -> None:
        from .session_timer import SessionTimer
        self.stop_session()
        self.session = SessionTimer(self, interval, we_refresh, lambda leg: leg.call.session_expired(leg))

    def stop_session(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.session = None

    def with_session(self, req: Request) -> Request:
        """A re-INVITE we pass on keeps the negotiated session timer (RFC 4028 7.4: none would end it)."""
        if self.session is not None:
            refresher = "uac" if self.session.we_refresh else "uas"  # uac: us, the sender of this re-INVITE
            req.add("Session-Expires", f"{self.session.interval};refresher={refresher}")
        return req

    def session_refreshed(self) -> None:
        """A re-INVITE of ours succeeded: it refreshed the session too."""
        if self.session is not None:
            self.session.restart()

    def refresh_session(self, done: Callable[[Response], None]) -> None:
        """Refresh the session: UPDATE without SDP if the party allows it, else re-INVITE with our last SDP."""
        interval = self.session.interval if self.session else 0
        if "UPDATE" in self.allow.upper():
            req = self.new_request("UPDATE")
        else:
            req = self.new_request("INVITE", self.sent_sdp)
            self.ack = None
        req.add("Session-Expires", f"{interval};refresher=uac")  # uac: the sender of this refresh, us
        req.add("Supported", "timer")

        def answered(resp: Response) -> None:
            if resp.status < 200:
                return
            if req.method == "INVITE" and 200 <= resp.status < 300:
                if self.ack is not None:
                    self.resend_ack()
                    return
                self.send_ack(resp)
            done(resp)
        self.send(req, answered)
