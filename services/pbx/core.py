"""The PBX engine: the SIP transaction user. Registrar, authentication, abuse guard, dialog table,
call creation, trunk registrations. The Service class (services/pbx/__init__.py) wraps it."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from email.utils import formatdate
from pathlib import Path

from appliance.changerequests import ChangeRequester
from appliance.users import User

from . import blf, dialplan  # noqa: F401 (blf registers the dialog event package)
from .auth import DigestServer, authorization, pick_challenge
from .calls import Call, Target, media_down
from .cdr import CallRecord, CdrStore
from .config import PbxConfig, Trunk
from .events import CDR_TOPIC, CallEvents
from .guard import Guard
from .leg import Leg
from .registrar import BindingStore, BindingWriter, Location
from .relay import RtpRelay
from .sip.message import NameAddr, Request, Response, Uri, new_call_id, new_tag, response_to
from .sip.stack import ServerTx, SipStack
from .sip.subscribe import Subscriptions
from .sip.transport import Dest

log = logging.getLogger("officebox.pbx")


class TrunkState:
    def __init__(self, trunk: Trunk) -> None:
        self.trunk = trunk
        self.ip: str | None = None
        self.registered = False
        self.last_status = 0
        self.expires_at = 0.0
        self.task: asyncio.Task | None = None
        self.call_id = new_call_id()
        self.tag = new_tag()
        self.cseq = 0


class PbxCore:
    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, NOTIFY, UPDATE, INFO, SUBSCRIBE"  # MESSAGE: in dialog
    register_time_scale = 1.0  # of a trunk's waits between REGISTERs (tests shorten them; Expires is unchanged)

    def __init__(self, cfg: PbxConfig, users: list[User], realm: str, cdr_path, relay_host: str,
                 rtp_range: tuple[int, int], bus=None) -> None:
        self.cfg = cfg
        self.users: dict[str, User] = {}
        self.logins: dict[str, str] = {}
        self.set_users(users)
        self.auth = DigestServer(realm, self._secret, cfg.digest_algorithms, cfg.digest_md5_only_agents)
        self.location = Location()
        self.bindings_path = Path(cdr_path).with_name("registrations.sqlite")
        self.saver: BindingWriter | None = None
        self.guard = Guard(exempt=self.location.has_ip)  # a forged packet cannot get a phone banned
        self.guard.configure(cfg.abuse)
        self.relay = RtpRelay(relay_host, *rtp_range, on_down=lambda sides, why: media_down(self, sides, why))
        self.cdr = CdrStore(cdr_path)
        self.events = CallEvents(bus)
        self._cdr_off = self.events.bus.subscribe(CDR_TOPIC, self._write_cdr)
        self.subscriptions = Subscriptions(self)
        self.stack = SipStack(self, cfg.user_agent)
        self.dialogs: dict[tuple[str, str], Leg] = {}
        self.calls: dict[str, Call] = {}
        self.calls_by_tx: dict[int, Call] = {}
        self.trunks: dict[str, TrunkState] = {}
        self.trunk_channels: dict[str, int] = {}
        self.round_robin: dict[str, int] = {}
        self.counters = {"registrations": 0, "auth_failures": 0, "calls": 0, "relayed_packets": 0,
                         "relay_lost_packets": 0}
        self._tasks: set[asyncio.Task] = set()
        self.changes = ChangeRequester(self.events.bus, "pbx")

    # -- configuration ----------------------------------------------------------------------------
    def set_users(self, users: list[User]) -> None:
        self.users = {u.extension: u for u in users if u.enabled and u.extension}
        self.logins = {u.extension: u.login for u in self.users.values()}

    def _secret(self, username: str) -> str | None:
        user = self.users.get(username)
        return user.sip_secret if user else None

    async def start(self, host: str, port: int) -> int:
        self.loop = asyncio.get_running_loop()
        store = await asyncio.to_thread(BindingStore, self.bindings_path)
        self.location.restore([b for b in await asyncio.to_thread(store.load) if b.extension in self.users])
        self.saver = BindingWriter(store, self.location)
        await self.relay.start()
        actual = await self.stack.start(host, port, self.cfg.tcp, self.cfg.sip_receive_buffer)
        await self.configure_trunks()
        return actual

    async def reconfigure(self, cfg: PbxConfig, users: list[User], realm: str, relay_host: str,
                          rtp_range: tuple[int, int]) -> None:
        self.cfg = cfg
        self.set_users(users)
        self.stack.server_header = cfg.user_agent
        self.stack.transports.set_receive_buffer(cfg.sip_receive_buffer)
        self.auth.configure(realm, cfg.digest_algorithms, cfg.digest_md5_only_agents)
        self.guard.configure(cfg.abuse)
        self.relay.configure(relay_host, *rtp_range)
        for ext in list(self.location.bindings):
            if ext not in self.users:
                self.location.remove_all(ext)  # a disabled or removed user loses its phones at once
        await self.configure_trunks()

    async def change_config(self, kind: str, data: dict, by: str) -> str | None:
        """Ask the appliance to change the configuration (services/pbx/changes.py): None once applied
        (this PBX has been reloaded with it), else the reason it was not."""
        return await self.changes.request(kind, data, by)

    async def stop(self) -> None:
        self.changes.close()
        for state in self.trunks.values():
            if state.task:
                state.task.cancel()
        for call in list(self.calls.values()):
            if call.state == "setup":
                call.cancel_ringing()
                if call.a is not None:
                    call.a.answer(call.tx, 503)
            for leg in call.legs:
                leg.bye()
            call.finish("answered" if call.state == "connected" else "failed", 503)
        self.subscriptions.close()
        for package in self.subscriptions.packages.values():
            package.close()
        await asyncio.sleep(0.05)  # let the BYEs and last NOTIFYs leave
        for task in list(self._tasks):
            task.cancel()
        await self.stack.close()
        if self.saver is not None:
            await self.saver.close()
        await self.relay.close()
        self._cdr_off()
        await asyncio.to_thread(self.cdr.flush)

    async def configure_trunks(self) -> None:
        old = self.trunks
        self.trunks = {}
        for trunk in self.cfg.trunks:
            state = old.pop(trunk.name, None)
            if state is not None and state.trunk == trunk:
                self.trunks[trunk.name] = state
                continue
            if state and state.task:
                state.task.cancel()
            state = TrunkState(trunk)
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(trunk.host, trunk.port, family=socket.AF_INET)
                state.ip = infos[0][4][0]
            except OSError:
                log.warning("trunk %s: cannot resolve %s", trunk.name, trunk.host)
            self.trunks[trunk.name] = state
            if trunk.registration and state.ip:
                state.task = self._spawn(self._register_trunk(state))
        for state in old.values():
            if state.task:
                state.task.cancel()
        self.guard.trusted |= {s.ip for s in self.trunks.values() if s.ip}
        self.stack.public_ip = str(self.cfg.public_address) if self.cfg.public_address else None
        self.stack.public_peers = frozenset(s.ip for s in self.trunks.values() if s.ip)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- helpers used by calls ----------------------------------------------------------------------
    def remember(self, leg: Leg) -> None:
        self.dialogs[leg.key] = leg
        if leg.trunk is not None:
            self.trunk_channels[leg.trunk.name] = self.trunk_channels.get(leg.trunk.name, 0) + 1

    def forget(self, leg: Leg) -> None:
        if self.dialogs.pop(leg.key, None) is not None and leg.trunk is not None:
            self.trunk_channels[leg.trunk.name] = max(0, self.trunk_channels.get(leg.trunk.name, 1) - 1)

    def call_ended(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        self.calls_by_tx.pop(id(call.tx), None)
        self.cdr_add(call.record)

    def cdr_add(self, rec: CallRecord) -> None:
        """A finished call record goes on the bus (events.CDR_TOPIC); the CDR writer is its subscriber."""
        self.events.record(rec)

    def _write_cdr(self, event) -> None:
        if event.data is None:
            return
        try:
            self.cdr.add(CallRecord(**event.data))
        except Exception:
            log.exception("could not write the call record")

    def permission_of_extension(self, ext: str) -> str:
        login = self.logins.get(ext)
        return self.cfg.permissions.get(login, self.cfg.default_permission) if login else self.cfg.default_permission

    def targets_for(self, ext: str) -> list[Target]:
        if ext not in self.users:
            return []
        return [Target(ext, Uri.parse(b.contact), b.flow, ext) for b in self.location.lookup(ext)]

    def trunk_flow(self, trunk: Trunk) -> Dest | None:
        state = self.trunks.get(trunk.name)
        if state is None or state.ip is None:
            return None
        return (trunk.transport, state.ip, trunk.port)

    def relay_ip(self, peer_ip: str) -> str:
        if self.stack.outside(peer_ip):
            return self.stack.public_ip
        host = self.relay.host
        return host if host not in ("0.0.0.0", "") else self.stack.local_ip(peer_ip)

    # -- transaction user ---------------------------------------------------------------------------
    def allow(self, source: Dest, request: Request | None) -> bool:
        if request is None:
            return not self.guard.is_banned(source[1])
        return self.guard.request(source[1])

    def on_malformed(self, source: Dest, reason: str) -> None:
        """An unparseable message counts toward its source's request flood limit like a parsed one."""
        self.guard.request(source[1])

    def find_dialog(self, call_id: str, to_tag: str, from_tag: str) -> Leg | None:
        """One of our dialogs named from the other side (Replaces): our tag is one of the two."""
        return self.dialogs.get((call_id, to_tag)) or self.dialogs.get((call_id, from_tag))

    def on_flow_closed(self, flow: Dest) -> None:
        self.location.drop_flow(flow)

    def on_ack(self, req: Request) -> None:
        leg = self.dialogs.get((req.call_id, req.to_tag or ""))
        if leg:
            leg.on_ack(req)

    def on_cancel(self, tx: ServerTx) -> None:
        call = self.calls_by_tx.get(id(tx))
        if call:
            call.cancel_ringing()
        else:
            tx.reply(487)

    def on_stray_response(self, resp: Response) -> None:
        if 200 <= resp.status < 300 and resp.cseq[1] == "INVITE":
            leg = self.dialogs.get((resp.call_id, resp.from_tag or ""))
            if leg:
                leg.resend_ack()

    def on_request(self, tx: ServerTx, req: Request) -> None:
        to_tag = req.to_tag
        if to_tag:
            leg = self.dialogs.get((req.call_id, to_tag))
            if leg is None:
                sub = self.subscriptions.find(req)
                if sub is not None:
                    self.subscriptions.in_dialog(tx, req, sub)
                else:
                    tx.reply(481)
                return
            if leg.uas:
                src = req.source
                if src and src[0] == leg.flow[0]:
                    leg.flow = src  # follow the party's flow (NAT rebinding)
            leg.call.on_request(leg, tx, req)
            return
        method = req.method
        required = [t.strip() for t in (req.get("Require") or "").split(",") if t.strip() and t.strip() != "timer"]
        if required and method not in ("ACK", "CANCEL"):
            tx.reply(420, to_tag=new_tag(), Unsupported=", ".join(required))  # no extension is required of us
            return
        if method == "REGISTER":
            self.register(tx, req)
        elif method == "INVITE":
            self.invite(tx, req)
        elif method == "OPTIONS":
            tx.reply(200, to_tag=new_tag(), Allow=self.ALLOW, Accept="application/sdp")
        elif method in ("BYE", "UPDATE", "INFO", "PRACK", "REFER"):
            tx.reply(481)
        elif method == "SUBSCRIBE":
            self.subscribe(tx, req)
        elif method == "NOTIFY":
            tx.reply(200, to_tag=new_tag())
        else:
            tx.reply(405, to_tag=new_tag(), Allow=self.ALLOW)

    # -- authentication -----------------------------------------------------------------------------
    def authenticate(self, tx: ServerTx, req: Request, proxy: bool) -> str | None:
        """The authenticated extension, or None after answering 401/407/403 (the same for every user)."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        result = self.auth.check(req, header)
        if result.outcome == "ok":
            return result.username
        if result.outcome == "failed":
            self.counters["auth_failures"] += 1
            if result.proved:  # only a source that received our challenge counts toward a ban
                self.guard.auth_failed(req.source[1])
            resp = _response(req, 403)
        else:
            resp = _response(req, 407 if proxy else 401)
            agent = (req.get("User-Agent") or "")[:200]
            for value in self.auth.challenges(req.source[1], result.outcome == "stale", agent):
                resp.add("Proxy-Authenticate" if proxy else "WWW-Authenticate", value)
        self._respond_once(tx, resp)
        return None

    def _respond_once(self, tx: ServerTx, resp: Response) -> None:
        """Answer an unauthenticated request statelessly: one copy, no transaction kept to retransmit it
        (the source may be spoofed: the box must not send ~10 copies of a 407 to a victim)."""
        if self.stack.server_header and not resp.get("Server"):
            resp.add("Server", self.stack.server_header)
        self.stack.send_stateless(resp, tx.dest)
        tx._terminate()

    def register(self, tx: ServerTx, req: Request) -> None:
        ext = self.authenticate(tx, req, proxy=False)
        if ext is None:
            return
        if req.to.uri.user != ext:
            tx.reply(403, "Forbidden (To does not match the credentials)", to_tag=new_tag())
            return
        default = int(req.get("Expires") or 3600)
        stars = [c for c in req.get_all("Contact") if c.strip() == "*"]
        if stars:
            if default != 0 or len(req.get_all("Contact")) != 1:
                tx.reply(400, to_tag=new_tag())
                return
            self.location.remove_all(ext)
        for contact in req.contacts():
            raw = contact.params.get("expires")
            expires = int(raw) if raw and raw.isdigit() and len(raw) < 10 else default
            if 0 < expires < self.cfg.min_expires:
                resp = _response(req, 423)
                resp.add("Min-Expires", str(self.cfg.min_expires))
                tx.respond(resp)
                return
            expires = min(expires, self.cfg.max_expires)
            err = self.location.update(ext, str(contact.uri), req.source, expires, req.call_id, req.cseq[0],
                                       (req.get("User-Agent") or "")[:80], self.cfg.max_contacts)
            if err:
                tx.reply(500, err, to_tag=new_tag())
                return
        self.counters["registrations"] += 1
        resp = _response(req, 200)
        for b in self.location.lookup(ext):
            resp.add("Contact", f"<{b.contact}>;expires={b.seconds_left()}")
        resp.add("Date", _date_now())
        self.saver.then(lambda: tx.respond(resp))  # 200 once the binding is on disk

    def subscribe(self, tx: ServerTx, req: Request) -> None:
        """A new subscription (sip/subscribe.py): 489 for an unknown package, else authenticated first."""
        if not self.subscriptions.known(req):
            tx.reply(489, to_tag=new_tag())
            return
        ext = self.authenticate(tx, req, proxy=False)
        if ext is not None:
            self.subscriptions.subscribe(tx, req, ext)

    # -- calls --------------------------------------------------------------------------------------
    def trunk_of_source(self, source: Dest) -> TrunkState | None:
        """Carriers are recognised by source address (a registered phone on the same host is not one)."""
        trunk = next((s for s in self.trunks.values() if s.ip == source[1]), None)
        if trunk is None or self._phone_source(source):
            return None
        return trunk

    def _phone_source(self, source: Dest) -> bool:
        return any(b.flow[1:] == source[1:] for bs in self.location.bindings.values() for b in bs)

    def invite(self, tx: ServerTx, req: Request) -> None:
        if len(self.calls) >= 1000:
            tx.reply(503, to_tag=new_tag())
            return
        trunk = self.trunk_of_source(req.source)
        if trunk is not None and not req.get("Proxy-Authorization"):
            called = req.uri.user or req.to.uri.user
            dest = dialplan.match_did(called, self.cfg)
            if dest is None:
                tx.reply(404, to_tag=new_tag())
                return
            caller_from = req.from_
            number = dialplan.display_number(caller_from.uri.user, self.cfg) or "anonymous"
            call = Call(self, tx, req, caller=number, caller_name=caller_from.display[:60], dialled=dest,
                        authority="internal", direction="inbound", trunk=trunk.trunk.name)
        else:
            ext = self.authenticate(tx, req, proxy=True)
            if ext is None:
                return
            user = self.users[ext]
            dialled = dialplan.clean(req.uri.user)
            dest = dialplan.classify(dialled, self.cfg, self.users.keys())
            direction = "outbound" if dest.kind in ("external", "emergency") else "internal"
            call = Call(self, tx, req, caller=ext, caller_name=user.full_name, dialled=dialled,
                        authority=self.cfg.permissions.get(user.login, self.cfg.default_permission),
                        direction=direction, extension=ext)
        self.calls[call.id] = call
        self.calls_by_tx[id(tx)] = call
        self.counters["calls"] += 1
        self._spawn(call.run())

    async def originate(self, destination: str, *, caller: str = "", caller_name: str = "",
                        authority: str | None = None, timeout: float = 60.0,
                        headers: dict[str, str] | None = None, started=None) -> Leg | None:
        """Call `destination` (an extension, group or number, as the dial plan knows it) from the box
        itself, with no incoming transaction behind it: the answered SIP leg, alone in a new call,
        or None. Join it to another leg with bridge(). `headers` go in its INVITEs (auto-answer);
        `started(call)` is told the new call before it rings."""
        call = Call(self, None, None, caller=caller or "pbx", caller_name=caller_name, dialled=destination,
                    authority=authority or self.cfg.default_permission, direction="internal")
        call.invite_headers = dict(headers or {})
        if started is not None:
            started(call)
        self.calls[call.id] = call
        self.counters["calls"] += 1
        give_up = asyncio.get_running_loop().call_later(timeout, call.cancel_ringing)
        try:
            return await call.originate()
        finally:
            give_up.cancel()

    def bridge(self, a: Leg, b: Leg) -> None:
        """Join `b` to `a`'s call: their media is relayed to each other; `b`'s former call ends (its
        record says transferred). Both legs must be connected; codecs are not converted (an originated
        leg was offered our codecs in our order, so two phones agree unless they refuse the first one)."""
        if a.call is b.call or a.call.state != "connected" or b.call.state != "connected":
            raise ValueError("both legs must be connected, in different calls")
        a.call.join(b)

    # -- trunk registration -------------------------------------------------------------------------
    async def _register_trunk(self, state: TrunkState) -> None:
        trunk = state.trunk
        while True:
            try:
                ok, expires = await self._register_once(state)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trunk %s registration failed", trunk.name)
                ok, expires = False, 0
            state.registered = ok
            await asyncio.sleep((max(5.0, expires * 0.8) if ok else 30.0) * self.register_time_scale)

    async def _register_once(self, state: TrunkState) -> tuple[bool, int]:
        trunk = state.trunk
        flow = (trunk.transport, state.ip, trunk.port)
        uri = Uri("sip", "", trunk.host, trunk.port if trunk.port != 5060 else None)
        auth_value: str | None = None
        auth_header = ""
        for _ in range(2):
            state.cseq += 1
            req = Request("REGISTER", uri)
            aor = NameAddr(Uri("sip", trunk.username, trunk.host))
            req.add("From", f"{aor};tag={state.tag}")
            req.add("To", str(aor))
            req.add("Call-ID", state.call_id)
            req.add("CSeq", f"{state.cseq} REGISTER")
            ip = self.stack.local_ip(state.ip)
            tp = ";transport=tcp" if trunk.transport == "tcp" else ""
            req.add("Contact", f"<sip:{trunk.username}@{ip}:{self.stack.port}{tp}>")
            req.add("Expires", str(trunk.register_expires))
            if auth_value:
                req.add(auth_header, auth_value)
            resp = await self.stack.request(req, flow)
            state.last_status = resp.status
            if resp.status in (401, 407) and auth_value is None:
                header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
                challenge = pick_challenge(resp.get_all(header))
                auth_value = challenge and authorization(challenge, "REGISTER", str(uri), trunk.username,
                                                         trunk.auth_password)
                auth_header = "Authorization" if resp.status == 401 else "Proxy-Authorization"
                if not auth_value:
                    return False, 0
                continue
            if 200 <= resp.status < 300:
                expires = trunk.register_expires
                for c in resp.contacts():
                    raw = c.params.get("expires")
                    if raw and raw.isdigit():
                        expires = min(expires, int(raw))
                state.expires_at = time.time() + expires
                return True, expires
            return False, 0
        return False, 0

    # -- public figures -----------------------------------------------------------------------------
    def trunk_status(self) -> list[dict]:
        return [{"name": name, "host": s.trunk.host, "port": s.trunk.port, "resolved": s.ip,
                 "register": s.trunk.registration, "registered": s.registered, "last_status": s.last_status,
                 "channels_in_use": self.trunk_channels.get(name, 0), "max_channels": s.trunk.max_channels}
                for name, s in list(self.trunks.items())]


_date_cache: list = [None, ""]  # [second, its RFC 1123 date]: formatdate() costs more than a REGISTER's parse


def _date_now() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, formatdate(now, usegmt=True)]
    return _date_cache[1]


def _response(req: Request, status: int) -> Response:
    return response_to(req, status, to_tag=new_tag())
