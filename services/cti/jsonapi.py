"""The JSON API of the CTI server (openapi.json describes it): REST call control, forwarding, DND,
the directory and call log, and a WebSocket stream of the call model's events and colleagues'
presence. A request carries a token (tokens.py) and reaches the devices of its scope only."""
from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .fanout import SubscriberIndex
from .httpserver import HttpError, Request, Response, WebSocket, serve, text_frame
from .model import CstaEvent
from .pbxlink import PbxError
from .tokens import Holder, Tokens

if TYPE_CHECKING:
    from .server import CtiServer

PREFIX = "/api/v1"
OPENAPI = Path(__file__).with_name("openapi.json")
AUTH_TIMEOUT = 10.0  # seconds a new WebSocket has to send its token
PBX_STATUS = {"device": 404, "call": 404, "connection": 409, "state": 409, "value": 400, "unsupported": 409,
              "busy": 503, "failed": 502}
FORWARD_KINDS = ("always", "busy", "no_answer")
AGENT_STATES = ("logged_on", "logged_off", "ready", "not_ready")
NUMBER = re.compile(r"^[0-9*#+]{1,32}$")
ROUTES = {  # (method, path) -> JsonApi method; every one is in openapi.json (a test checks)
    ("GET", "/api/v1/openapi.json"): "openapi", ("GET", "/api/v1/events"): "not_upgraded",
    ("GET", "/api/v1/me"): "me", ("GET", "/api/v1/directory"): "get_directory",
    ("GET", "/api/v1/calls"): "get_calls", ("POST", "/api/v1/calls"): "make_call",
    **{("POST", f"/api/v1/calls/{{call}}/{action}"): "call_action"
       for action in ("answer", "hangup", "hold", "retrieve", "consult", "transfer", "conference")},
    **{(method, f"/api/v1/devices/{{device}}/{feature}"): "device_feature"
       for method in ("GET", "PUT") for feature in ("forwarding", "dnd", "agent")},
    ("GET", "/api/v1/devices/{device}/calls"): "device_feature",
}
PARAMETERS = {"call": r"[A-Za-z0-9._@-]{1,100}", "device": r"[0-9*#+]{1,32}"}


def _pattern(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{PARAMETERS[m[1]]})", path) + "$")


PATTERNS = [(method, _pattern(path), name) for (method, path), name in ROUTES.items()]


def presence_of(states: list[str], dnd: bool) -> str:
    if any(s in ("connected", "hold", "initiated") for s in states):
        return "busy"
    if "alerting" in states:
        return "ringing"
    return "dnd" if dnd else "idle"


def _number(value) -> str:
    if not isinstance(value, str) or not NUMBER.match(value):
        raise HttpError(400, "'to' must be a number to dial", "bad_number")
    return value


def _is_ping(message: str) -> bool:
    try:
        data = json.loads(message)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "ping"


class Subscriber:
    """An event stream; `devices` (a part of the scope) limits its call events and presence; None: all it may see."""

    def __init__(self, holder: Holder, ws: WebSocket, devices: frozenset[str] | None) -> None:
        self.holder, self.ws, self.devices = holder, ws, devices

    def wants(self, device: str) -> bool:
        return self.holder.allowed(device) and (self.devices is None or device in self.devices)


class JsonApi:
    def __init__(self, server: "CtiServer") -> None:
        self.server = server
        self.tokens = Tokens()
        self.subscribers = SubscriberIndex()
        self.connections = 0
        self.presence: dict[str, str] = {}
        self.figures = {"requests": 0, "refused": 0, "rate_limited": 0, "events_sent": 0, "dropped_subscribers": 0}
        self.listener: asyncio.base_events.Server | None = None
        self.port = 0
        self.configure()

    @property
    def cfg(self):
        return self.server.cfg

    def configure(self) -> None:
        """New tokens and users: a revoked token (or one whose scope changed) loses its event streams."""
        self.tokens.configure(self.cfg.api_tokens)
        self.subscribers.configure(self.server.lines.values())
        self.tokens.revoke_user({u.login for u in self.server.users if u.enabled and u.extension})
        for sub in list(self.subscribers):
            now = self.tokens.configured.get(sub.holder.key) or self.tokens.desk.get(sub.holder.key)
            if now != sub.holder:
                self.subscribers.discard(sub)
                sub.ws.close(4401, "the token was revoked or changed")

    async def start(self, host: str, port: int, tls) -> None:
        self.listener = await asyncio.start_server(self._connected, host, port, ssl=tls, limit=8192,
                                                   ssl_handshake_timeout=10.0 if tls else None)
        self.port = self.listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for sub in list(self.subscribers):
            sub.ws.close(1001, "the CTI server stops")
        if self.listener is not None:
            self.listener.close()
            await self.listener.wait_closed()

    async def _connected(self, reader, writer) -> None:
        if self.connections >= self.cfg.api_max_connections:
            self.figures["refused"] += 1
            writer.close()
            return
        self.connections += 1
        try:
            await serve(reader, writer, self.handle, self.websocket, self.cfg.api_max_message)
        finally:
            self.connections -= 1

    # -- tokens ---------------------------------------------------------------------------------------
    def mint_desk_token(self, login: str) -> dict:
        user = next((u for u in self.server.users if u.login == login and u.enabled and u.extension), None)
        if user is None:
            raise ValueError(f"{login!r} has no extension")
        token, expires = self.tokens.mint_desk(login, user.extension, self.cfg.desk_token_minutes)
        return {"token": token, "expires": expires, "extension": user.extension, "port": self.port}

    def _holder(self, token: str) -> Holder:
        holder = self.tokens.holder(token)
        if holder is None:
            self.figures["refused"] += 1
            raise HttpError(401, "a valid token is needed (Authorization: Bearer ...)", "bad_token")
        if not self.tokens.take(holder, self.cfg.api_requests_per_second):
            self.figures["rate_limited"] += 1
            raise HttpError(429, "too many requests for this token", "rate_limited")
        return holder

    @staticmethod
    def _scoped(holder: Holder, device) -> str:
        if not isinstance(device, str) or not device:
            raise HttpError(400, "name the device (an extension)", "bad_device")
        if not holder.allowed(device):
            raise HttpError(403, f"device {device[:32]} is outside this token's scope", "scope")
        return device

    # -- REST -----------------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        found = [(method, m, name) for method, pattern, name in PATTERNS if (m := pattern.match(path))]
        if not found:
            raise HttpError(404, "no such resource", "not_found")
        route = next(((m, name) for method, m, name in found if method == request.method), None)
        if route is None:
            raise HttpError(405, f"{', '.join(sorted({f[0] for f in found}))} only", "method")
        match, name = route
        if name == "openapi":
            return 200, OPENAPI.read_bytes()
        auth = request.headers.get("authorization", "")
        holder = self._holder(auth[7:].strip() if auth[:7].lower() == "bearer " else "")
        self.figures["requests"] += 1
        return await getattr(self, name)(holder, request, **match.groupdict())

    async def not_upgraded(self, holder: Holder, request: Request) -> Response:
        raise HttpError(400, "open /api/v1/events as a WebSocket", "websocket")

    async def me(self, holder: Holder, request: Request) -> Response:
        return 200, holder.as_json()

    async def get_directory(self, holder: Holder, request: Request) -> Response:
        return 200, {"extensions": self.directory(holder)}

    async def get_calls(self, holder: Holder, request: Request) -> Response:
        return 200, {"calls": self.calls(holder)}

    async def _pbx(self, op: str, holder: Holder, **args) -> dict:
        try:
            return await self.server.pbx.request(op, by=holder.login or holder.name, **args)
        except PbxError as exc:
            raise HttpError(PBX_STATUS.get(exc.code, 502), str(exc), exc.code) from None

    def directory(self, holder: Holder) -> list[dict]:
        return [{"extension": u.extension, "name": u.full_name,
                 "presence": self.device_presence(u.extension) if self.sees_presence(holder, u.extension) else None}
                for u in sorted(self.server.users, key=lambda u: u.extension or "")
                if u.enabled and u.extension]

    def calls(self, holder: Holder) -> list[dict]:
        return [{"call": c.id, "calling": c.caller, "called": c.dialled, "connections": dict(c.connections)}
                for c in list(self.server.model.calls.values()) if any(holder.allowed(d) for d in c.connections)]

    async def make_call(self, holder: Holder, request: Request) -> Response:
        body = request.json()
        device = self._scoped(holder, body.get("from") or holder.extension)
        to = _number(body.get("to"))
        result = await self._pbx("make_call", holder, device=device, destination=to,
                                 auto_answer=body.get("auto_answer", True) is not False)
        self.server.model.made[result["call"]] = device
        return 201, {"call": result["call"], "device": device}

    async def call_action(self, holder: Holder, request: Request, call: str) -> Response:
        call_id, action, body = call, request.path.rstrip("/").rsplit("/", 1)[1], request.json()
        device = self._scoped(holder, body.get("device") or holder.extension)
        state = self.server.model.call(call_id)
        if state is None or device not in state.connections:
            raise HttpError(404, f"{device} is not in call {call_id}", "call")
        other = body.get("with")
        if action == "conference" and not other:
            raise HttpError(400, "'with' must name the active call to join this held call with", "bad_call")
        if action in ("transfer", "conference") and other:
            mine = self.server.model.call(other) if isinstance(other, str) else None
            if mine is None or device not in mine.connections:
                raise HttpError(400, f"'with' must name another call of {device}", "bad_call")
        if action == "conference":
            result = await self._pbx("conference", holder, held_call=call_id, active_call=other, device=device)
            self.server.model.conferenced(call_id, result["call"], device, result["added"],
                                          [(c["device"], c["old"]) for c in result["connections"]])
            return 200, {"call": result.get("call")}
        if action == "transfer" and other:
            result = await self._pbx("transfer", holder, held_call=call_id, active_call=other, device=device)
            return 200, {"call": result.get("call")}
        if action in ("transfer", "consult"):
            to = _number(body.get("to"))
            op = "single_step_transfer" if action == "transfer" else "consultation"
            result = await self._pbx(op, holder, call=call_id, device=device, destination=to)
            if action == "consult":
                self.server.model.made[result["call"]] = device
            return 200, {"call": result.get("call")}
        op = {"hangup": "clear_connection", "hold": "hold", "retrieve": "retrieve", "answer": "answer"}[action]
        await self._pbx(op, holder, call=call_id, device=device)
        return 200, {}

    async def device_feature(self, holder: Holder, request: Request, device: str) -> Response:
        device, feature = self._scoped(holder, device), request.path.rstrip("/").rsplit("/", 1)[1]
        if feature == "calls":
            limit = request.query.get("limit", "20")
            if not limit.isdigit():
                raise HttpError(400, "limit: a whole number")
            return 200, await self._pbx("call_log", holder, device=device, limit=int(limit))
        if request.method == "GET":
            op = {"forwarding": "get_forwarding", "dnd": "get_dnd", "agent": "agent_state"}[feature]
            return 200, await self._pbx(op, holder, device=device)
        body = request.json()
        if feature == "agent":
            state, reason = body.get("state"), body.get("reason", "")
            if state not in AGENT_STATES or not isinstance(reason, str) or len(reason) > 40:
                raise HttpError(400, "'state': logged_on, logged_off, ready, not_ready; 'reason': 40 characters")
            return 200, await self._pbx("set_agent_state", holder, device=device, state=state, reason=reason)
        if feature == "dnd":
            if not isinstance(body.get("on"), bool):
                raise HttpError(400, "'on' must be true or false")
            await self._pbx("set_dnd", holder, device=device, on=body["on"])
            return 200, {"dnd": body["on"]}
        kind, to = body.get("kind"), body.get("to") or ""
        if kind not in FORWARD_KINDS or not isinstance(to, str):
            raise HttpError(400, "'kind' is always, busy or no_answer; 'to' a number or empty")
        await self._pbx("set_forwarding", holder, device=device, kind=kind, to=to)
        return 200, await self._pbx("get_forwarding", holder, device=device)

    # -- events ---------------------------------------------------------------------------------------
    def sees_presence(self, holder: Holder, device: str) -> bool:
        """A token's own scope, and for a staff desk the colleagues whose BLF policy lets them watch."""
        if holder.allowed(device):
            return True
        line = self.server.lines.get(device)
        if not holder.extension or line is None:
            return False
        if line.blf_watchers == "everyone":
            return True
        mine = self.server.lines.get(holder.extension)
        return line.blf_watchers == "same_groups" and mine is not None and bool(set(line.groups) & set(mine.groups))

    def device_presence(self, device: str) -> str:
        states = [state for _, state in self.server.model.device_calls(device)]
        return presence_of(states, bool(self.server.features.get(device, {}).get("dnd")))

    async def websocket(self, request: Request, ws: WebSocket) -> None:
        if request.path.rstrip("/") != f"{PREFIX}/events" or not ws.accept(request):
            ws.close(1008, "the event stream is /api/v1/events")
            return
        first = await ws.recv(AUTH_TIMEOUT)
        try:
            hello = json.loads(first) if first else {}
        except ValueError:
            hello = {}
        holder = self.tokens.holder(hello.get("token", "") if isinstance(hello, dict) else "")
        if holder is None:
            self.figures["refused"] += 1
            ws.send(json.dumps({"type": "error", "code": "bad_token", "error": "a valid token is needed"}))
            ws.close(4401, "bad token")
            return
        wanted = hello.get("devices")
        devices = frozenset(d for d in wanted if isinstance(d, str)) if isinstance(wanted, list) else None
        refused = sorted(d for d in devices or () if not holder.allowed(d))
        if refused:
            ws.send(json.dumps({"type": "error", "code": "scope", "error": f"outside the scope: {refused[:5]}"}))
            ws.close(4403, "scope")
            return
        sub = Subscriber(holder, ws, devices)
        self.subscribers.add(sub)
        try:
            ws.send(json.dumps({"type": "hello", "token": holder.as_json(), "calls": self.calls(holder),
                                "presence": {d["extension"]: d["presence"] for d in self.directory(holder)
                                             if d["presence"] is not None}}))
            while (message := await ws.recv(self.cfg.api_idle_timeout)) is not None:
                if holder.expires and holder.expires < time.time():
                    ws.close(4401, "the token expired")
                    break
                ws.send(json.dumps({"type": "pong"} if _is_ping(message) else
                                   {"type": "error", "code": "read_only", "error": "the stream takes pings only"}))
        finally:
            self.subscribers.discard(sub)

    def deliver(self, ev: CstaEvent) -> None:
        """A call model event to the subscribers of its devices, then presence changes."""
        if not self.subscribers and not self.presence:
            return
        text = frame = None
        for sub in self.subscribers.for_devices(ev.devices):
            if any(sub.wants(d) for d in ev.devices):
                if text is None:
                    text = json.dumps(ev.as_json())
                    frame = text_frame(text)
                self._send(sub, text, frame)
        touched = {ev.subject, *ev.devices, *(d for d, _ in ev.connections)}
        self.presence_changed(touched)

    def presence_changed(self, devices) -> None:
        for device in sorted(d for d in devices if d in self.server.model.extensions):
            now = self.device_presence(device)
            if self.presence.get(device, "idle") == now:
                continue
            self.presence[device] = now
            text = json.dumps({"type": "presence", "device": device, "presence": now, "time": time.time()})
            frame = text_frame(text)
            for sub in self.subscribers.for_presence(device):
                if (sub.devices is None or device in sub.devices) and self.sees_presence(sub.holder, device):
                    self._send(sub, text, frame)

    def device_event(self, device: str, kind: str, data: dict) -> None:
        text = json.dumps({"type": kind, "device": device, **data})
        frame = text_frame(text)
        for sub in self.subscribers.for_devices((device,)):
            if sub.wants(device):
                self._send(sub, text, frame)

    def _send(self, sub: Subscriber, text: str, frame: bytes) -> None:
        if sub.ws.send(text, frame):
            self.figures["events_sent"] += 1
        else:
            self.figures["dropped_subscribers"] += 1
            self.subscribers.discard(sub)

    def status(self) -> dict:
        return {"api_port": self.port, "api_connections": self.connections, "api_subscribers": len(self.subscribers),
                **{f"api_{k}": v for k, v in self.figures.items()}}
