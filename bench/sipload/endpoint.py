"""One UDP SIP endpoint on loopback, both UAC (client transactions) and UAS (answers INVITEs).

UAC: `await ep.request(...)` sends a request, retransmits it (RFC 3261 timer A/E, capped) until a
final response, answers 401/407 once with digest credentials, and returns the final response.
UAS: every INVITE is answered 100 / 180 / 200 (SDP from `answer_sdp`), 200 retransmitted until ACK;
BYE and CANCEL are answered; an optional `users` dict makes it challenge like a registrar/proxy
(self-test without a PBX). Calls to `on_answered(call_id, remote_sdp)` let media start.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from bench.sipload import sip

T1 = 0.5
T2 = 4.0


class Failed(Exception):
    """A transaction ended without a usable final response (timeout or error status)."""


class _ClientTx:
    __slots__ = ("data", "dest", "future", "invite", "on_provisional", "provisional", "timer")

    def __init__(self, future, data, dest, invite, on_provisional) -> None:
        self.future, self.data, self.dest, self.invite = future, data, dest, invite
        self.on_provisional = on_provisional
        self.provisional = False
        self.timer = None


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: tuple[str, int] | None = None, *, users: dict[str, str] | None = None,
                 realm: str = "sipload", timeout: float = 8.0) -> None:
        self.server = server             # where requests go (the PBX); None: per-request destination
        self.users = users               # self-test: challenge requests and check these passwords
        self.realm = realm
        self.timeout = timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.addr: tuple[str, int] = ("127.0.0.1", 0)
        self.pending: dict[str, _ClientTx] = {}             # branch -> client transaction
        self.answer_sdp: Callable[[str, str], str] | None = None     # (call_id, offer) -> answer
        self.on_answered: Callable[[str, str], None] | None = None   # UAS: (call_id, offer) after ACK
        self.on_bye: Callable[[str], None] | None = None
        self.dialogs: dict[str, dict] = {}                  # UAS side, by Call-ID
        self.stats = {"rx": 0, "tx": 0, "retransmits": 0, "parse_errors": 0, "invites": 0, "byes": 0}
        self._nonces: set[str] = set()

    @classmethod
    async def open(cls, host: str = "127.0.0.1", **kw) -> Endpoint:
        loop = asyncio.get_running_loop()
        ep = cls(**kw)
        await loop.create_datagram_endpoint(lambda: ep, local_addr=(host, 0))
        return ep

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.addr = transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for tx in self.pending.values():
            if not tx.future.done():
                tx.future.cancel()

    @property
    def hostport(self) -> str:
        return f"{self.addr[0]}:{self.addr[1]}"

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        self.stats["tx"] += 1
        self.transport.sendto(data, dest)

    # ---- receive ---------------------------------------------------------------------------
    def datagram_received(self, data: bytes, peer) -> None:
        self.stats["rx"] += 1
        if len(data) < 4 or data in (b"\r\n\r\n", b"\r\n"):
            return   # keep-alive
        try:
            msg = sip.parse(data)
        except (sip.SipError, ValueError):
            self.stats["parse_errors"] += 1
            return
        if msg.status:
            tx = self.pending.get(msg.branch)
            if tx is None or tx.future.done():
                if msg.status >= 200 and msg.cseq[1] == "INVITE":
                    self._ack_stray(msg, peer)
                return
            if msg.status >= 200:
                tx.future.set_result(msg)
            else:
                tx.provisional = True    # stops INVITE retransmission
                if tx.on_provisional is not None:
                    tx.on_provisional(msg)
            return
        try:
            self._serve(msg, peer)
        except (sip.SipError, ValueError, KeyError):
            self.stats["parse_errors"] += 1

    def error_received(self, exc) -> None:
        pass

    def _ack_stray(self, resp: sip.Msg, peer) -> None:
        """A retransmitted 2xx whose transaction is over: ACK it again (our ACK was lost)."""
        if resp.status < 300:
            num, _ = resp.cseq
            self.send(sip.build_request("ACK", sip.uri_of(resp.get("contact")) or f"sip:{peer[0]}:{peer[1]}", [
                ("Via", f"SIP/2.0/UDP {self.hostport};branch={sip.new_branch()};rport"),
                ("From", resp.get("from")), ("To", resp.get("to")), ("Call-ID", resp.call_id),
                ("CSeq", f"{num} ACK"), ("Max-Forwards", "70")]), peer)

    # ---- client side -----------------------------------------------------------------------
    async def request(self, method: str, uri: str, headers: list[tuple[str, str]], body: str = "", *,
                      dest: tuple[str, int] | None = None, auth: tuple[str, str] | None = None,
                      cseq: int = 1, on_provisional: Callable[[sip.Msg], None] | None = None) -> sip.Msg:
        """Send and wait for the final response; answers one 401/407 challenge with `auth`."""
        dest = dest or self.server
        resp = await self._transaction(method, uri, headers, body, dest, cseq, on_provisional)
        if resp.status in (401, 407) and auth is not None:
            if method == "INVITE":
                self._ack_error(resp, uri, cseq, dest)
            hname = "www-authenticate" if resp.status == 401 else "proxy-authenticate"
            challenge = sip.parse_challenge(resp.get(hname))
            answer = sip.digest_answer(challenge, method, uri, auth[0], auth[1])
            hdr = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            resp = await self._transaction(method, uri, [*headers, (hdr, answer)], body, dest, cseq + 1,
                                           on_provisional)
        return resp

    async def _transaction(self, method, uri, headers, body, dest, cseq, on_provisional) -> sip.Msg:
        branch = sip.new_branch()
        data = sip.build_request(method, uri, [
            ("Via", f"SIP/2.0/UDP {self.hostport};branch={branch};rport"), *headers,
            ("CSeq", f"{cseq} {method}"), ("Max-Forwards", "70")], body)
        loop = asyncio.get_running_loop()
        tx = _ClientTx(loop.create_future(), data, dest, method == "INVITE", on_provisional)
        self.pending[branch] = tx
        self.send(data, dest)
        tx.timer = loop.call_later(T1, self._retransmit, tx, T1)
        try:
            return await asyncio.wait_for(tx.future, self.timeout)
        except TimeoutError:
            raise Failed(f"{method}: no final response in {self.timeout:g} s") from None
        finally:
            tx.timer.cancel()
            self.pending.pop(branch, None)

    def _retransmit(self, tx: _ClientTx, interval: float) -> None:
        if tx.future.done() or (tx.invite and tx.provisional):
            return
        self.stats["retransmits"] += 1
        self.send(tx.data, tx.dest)
        interval = min(interval * 2, T2)
        tx.timer = asyncio.get_running_loop().call_later(interval, self._retransmit, tx, interval)

    def _ack_error(self, resp: sip.Msg, uri: str, cseq: int, dest) -> None:
        """ACK for a non-2xx final response: same branch, To with the response's tag."""
        self.send(sip.build_request("ACK", uri, [
            ("Via", resp.get("via")), ("From", resp.get("from")), ("To", resp.get("to")),
            ("Call-ID", resp.call_id), ("CSeq", f"{cseq} ACK"), ("Max-Forwards", "70")]), dest)

    def ack(self, resp: sip.Msg, cseq: int, dest=None) -> None:
        """ACK for a 2xx: a new transaction to the remote target."""
        host, port = dest or self.server
        target = sip.uri_of(resp.get("contact")) or f"sip:{host}:{port}"
        routes = [("Route", r) for r in reversed(resp.all("record-route"))]
        self.send(sip.build_request("ACK", target, [
            ("Via", f"SIP/2.0/UDP {self.hostport};branch={sip.new_branch()};rport"), *routes,
            ("From", resp.get("from")), ("To", resp.get("to")), ("Call-ID", resp.call_id),
            ("CSeq", f"{cseq} ACK"), ("Max-Forwards", "70")]), dest or self.server)

    # ---- server side -----------------------------------------------------------------------
    def _challenge(self, msg: sip.Msg, peer, proxy: bool) -> bool:
        """Self-test mode: True when the request carries valid credentials, else answers 401/407."""
        if self.users is None:
            return True
        header = msg.get("proxy-authorization" if proxy else "authorization")
        if header:
            nonce = sip.parse_challenge(header).get("nonce", "")
            if nonce in self._nonces and sip.check_digest(header, msg.method, self.users.get, self.realm):
                return True
        nonce = secrets.token_hex(8)
        self._nonces.add(nonce)
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        status, reason = (407, "Proxy Authentication Required") if proxy else (401, "Unauthorized")
        self.send(sip.build_response(msg, status, reason, sip.new_tag(), [
            (name, f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"')]), peer)
        return False

    def _serve(self, msg: sip.Msg, peer) -> None:
        method, call_id = msg.method, msg.call_id
        dialog = self.dialogs.get(call_id)
        if method == "INVITE":
            if dialog is not None and dialog.get("invite_branch") == msg.branch:
                self.send(dialog["last"], peer)    # retransmitted INVITE
                return
            if dialog is None and not self._challenge(msg, peer, proxy=True):
                return
            self.stats["invites"] += 1
            tag = dialog["tag"] if dialog else sip.new_tag()
            answer = self.answer_sdp(call_id, msg.body) if self.answer_sdp else ""
            contact = [("Contact", f"<sip:uas@{self.hostport}>")]
            self.send(sip.build_response(msg, 100, "Trying"), peer)
            self.send(sip.build_response(msg, 180, "Ringing", tag, contact), peer)
            ok = sip.build_response(msg, 200, "OK", tag, contact, answer)
            self.dialogs[call_id] = {"tag": tag, "invite_branch": msg.branch, "last": ok, "acked": False,
                                     "offer": msg.body, "peer": peer}
            self.send(ok, peer)
            asyncio.get_running_loop().call_later(T1, self._retransmit_ok, call_id, T1, 0)
        elif method == "ACK":
            if dialog is not None and not dialog["acked"]:
                dialog["acked"] = True
                if self.on_answered is not None:
                    self.on_answered(call_id, dialog["offer"])
        elif method == "BYE":
            self.stats["byes"] += 1
            self.dialogs.pop(call_id, None)
            self.send(sip.build_response(msg, 200, "OK"), peer)
            if dialog is not None and self.on_bye is not None:
                self.on_bye(call_id)
        elif method == "CANCEL":
            self.send(sip.build_response(msg, 200, "OK"), peer)
        elif method == "REGISTER":
            if self._challenge(msg, peer, proxy=False):
                self.send(sip.build_response(msg, 200, "OK", sip.new_tag(),
                                             [("Contact", msg.get("contact") + ";expires=3600")]), peer)
        else:   # OPTIONS, re-INVITE refreshes, NOTIFY...: accept
            self.send(sip.build_response(msg, 200, "OK", sip.new_tag()), peer)

    def _retransmit_ok(self, call_id: str, interval: float, count: int) -> None:
        dialog = self.dialogs.get(call_id)
        if dialog is None or dialog["acked"] or count >= 6:
            return
        self.stats["retransmits"] += 1
        self.send(dialog["last"], dialog["peer"])
        asyncio.get_running_loop().call_later(min(interval * 2, T2), self._retransmit_ok, call_id,
                                              min(interval * 2, T2), count + 1)
