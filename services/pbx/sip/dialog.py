"""The state both ends of a SIP dialog keep (RFC 3261 12): ids, remote target, route set, CSeq, the
flow to the peer; and building the requests we send in it. Call legs and subscriptions are dialogs."""
from __future__ import annotations

import random
from collections.abc import Callable

from .message import NameAddr, Request, Response, Uri, new_tag
from .stack import ClientTx
from .transport import Dest

CONTACTED = ("INVITE", "REFER", "UPDATE", "SUBSCRIBE", "NOTIFY")  # requests that carry our Contact


class Dialog:
    def __init__(self, stack, *, call_id: str, local: NameAddr, remote: NameAddr, target: Uri, flow: Dest) -> None:
        self._stack = stack
        self.call_id = call_id
        self.local = local  # our From/To, with our tag
        self.remote = remote  # theirs (tag once known)
        self.target = target  # remote target (Contact) for in-dialog requests
        self.flow = flow  # where requests to this party are sent (its NAT flow / TCP connection)
        self.route_set: list[str] = []
        self.cseq = random.randint(1, 10000)
        self.remote_cseq = 0
        self.local.params.setdefault("tag", new_tag())

    @property
    def stack(self):
        return self._stack

    @staticmethod
    def fresh_tag() -> str:
        return new_tag()

    @property
    def local_tag(self) -> str:
        return self.local.params["tag"] or ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.local_tag)

    def contact(self) -> str:
        ip = self.stack.local_ip(self.flow[1])
        tp = ";transport=tcp" if self.flow[0] == "tcp" else ""
        return f"<sip:pbx@{ip}:{self.stack.port}{tp}>"

    def new_request(self, method: str, body: bytes = b"", content_type: str | None = None) -> Request:
        req = Request(method, self.target)
        for route in self.route_set:
            req.add("Route", route)
        req.add("From", str(self.local))
        req.add("To", str(self.remote))
        req.add("Call-ID", self.call_id)
        if method not in ("ACK", "CANCEL"):
            self.cseq += 1
        req.add("CSeq", f"{self.cseq} {method}")
        if method in CONTACTED:
            req.add("Contact", self.contact())
        if body:
            req.add("Content-Type", content_type or "application/sdp")
            req.body = body
        return req

    def send(self, req: Request, on_response: Callable[[Response], None] | None = None,
             timeout: float | None = None) -> ClientTx:
        return self.stack.send_request(req, self.flow, on_response or (lambda r: None), timeout)
