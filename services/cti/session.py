"""One CSTA connection: framing, the ECMA-354 application session (start, keep-alive, stop), the device
scope of who signed in, the per-session request rate, and the services (services.py)."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from typing import TYPE_CHECKING

from appliance.users import hash_password, verify_password

from . import csta
from .services import Refused, Services
from .xmlsafe import XmlError, element, parse, text_element

if TYPE_CHECKING:
    from .server import CtiServer

log = logging.getLogger("officebox.cti")
LOGIN_TIMEOUT = 30.0  # seconds to start an application session after connecting
MAX_LOGIN_FAILURES = 3
QUEUE = 2000  # frames waiting for a slow client; more are dropped (counted)
ACSE = {"StartApplicationSession", "StopApplicationSession", "ResetApplicationSessionTimer"}


class Session:
    def __init__(self, server: "CtiServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        self.login = ""
        self.scope: set[str] | None = None  # None: not signed in; {"*"}: every device
        self.extension = ""  # a staff login's own extension (an application account has none)
        self.session_id = ""
        self.duration = float(server.cfg.session_duration)
        self.deadline = time.monotonic() + LOGIN_TIMEOUT
        self.monitors: dict[str, str] = {}  # cross ref id -> device
        self.refs = 0
        self.failures = 0
        self.tokens = float(server.cfg.requests_per_second)
        self.refilled = time.monotonic()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE)
        self.dropped = 0
        self.services = Services(self)

    # -- scope --------------------------------------------------------------------------------------
    def allowed(self, device: str) -> bool:
        return self.scope is not None and ("*" in self.scope or device in self.scope)

    def next_ref(self) -> str:
        self.refs += 1
        return str(self.refs)

    # -- output -------------------------------------------------------------------------------------
    def _put(self, data: bytes) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1
            self.server.dropped += 1

    def send_event(self, xml: str) -> None:
        self._put(csta.frame(csta.EVENT_INVOKE, xml))

    def respond(self, invoke: str, xml: str) -> None:
        self._put(csta.frame(invoke, xml))

    async def _write(self) -> None:
        """The queued frames, those waiting together in one write, until the None that ends the session."""
        while True:
            frames = [await self.queue.get()]
            while not self.queue.empty():
                frames.append(self.queue.get_nowait())
            end = None in frames
            frames = frames[:frames.index(None)] if end else frames
            if frames:
                self.writer.write(b"".join(frames))
                await self.writer.drain()
            if end:
                return

    # -- input --------------------------------------------------------------------------------------
    async def run(self) -> None:
        writer_task = asyncio.get_running_loop().create_task(self._write())
        try:
            while not writer_task.done():
                try:
                    header = await asyncio.wait_for(self.reader.readexactly(csta.HEADER), self._time_left())
                    length, invoke = csta.parse_header(header)
                    body = await asyncio.wait_for(self.reader.readexactly(length), 10.0)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, csta.FramingError) as exc:
                    log.debug("CTI connection ends: %r", exc)
                    return
                if not self._take_token():
                    self.respond(invoke, csta.error("systemResourceAvailability", "serviceBusy"))
                    continue
                if not await self._handle(invoke, body):
                    return
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer_task, 2.0)
            writer_task.cancel()
            self.server.forget(self)
            self.writer.close()

    def _time_left(self) -> float:
        return max(0.01, self.deadline - time.monotonic())

    def _take_token(self) -> bool:
        now = time.monotonic()
        rate = self.server.cfg.requests_per_second
        self.tokens = min(float(rate), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def _handle(self, invoke: str, body: bytes) -> bool:
        """Answer one request; False ends the connection."""
        try:
            node = parse(body)
        except XmlError as exc:
            self.server.malformed += 1
            self.respond(invoke, csta.error("operation", "invalidParameterValue", f"malformed request: {exc}"))
            return True
        if node.name in ACSE:
            return await self._acse(invoke, node)
        if self.scope is None:
            self.respond(invoke, csta.error("operation", "securityViolation"))
            return True
        handler = getattr(self.services, node.name, None) if node.name[:1].isupper() else None
        if handler is None:
            self.respond(invoke, csta.error("operation", "requestIncompatibleWithObject",
                                            f"unknown service {node.name[:60]}"))
            return True
        try:
            self.respond(invoke, await handler(node))
        except Refused as exc:
            self.respond(invoke, csta.error(exc.category, exc.value, exc.detail))
        self.server.requests += 1
        return True

    # -- ECMA-354 ---------------------------------------------------------------------------------
    async def _acse(self, invoke: str, node) -> bool:
        if node.name == "StartApplicationSession":
            return await self._start(invoke, node)
        if node.value("sessionID") != self.session_id or not self.session_id:
            self.respond(invoke, element(f"{node.name}NegResponse", element(
                "errorCode", text_element("definedError", "invalidSessionID")), ns=csta.NS_ACSE))
            return True
        if node.name == "StopApplicationSession":
            self.respond(invoke, element("StopApplicationSessionPosResponse", ns=csta.NS_ACSE))
            return False
        self.duration = self._duration(node.value("requestedSessionDuration"))
        self.deadline = time.monotonic() + self.duration
        self.respond(invoke, element("ResetApplicationSessionTimerPosResponse",
                                     text_element("actualSessionDuration", int(self.duration)), ns=csta.NS_ACSE))
        return True

    def _duration(self, requested: str) -> float:
        limit = self.server.cfg.session_duration
        return float(min(int(requested), limit)) if requested.isdigit() and int(requested) >= 10 else float(limit)

    def _refuse_start(self, invoke: str, reason: str) -> None:
        self.respond(invoke, element("StartApplicationSessionNegResponse", element(
            "errorCode", text_element("definedError", reason)), ns=csta.NS_ACSE))

    async def _start(self, invoke: str, node) -> bool:
        if self.scope is not None:
            self._refuse_start(invoke, "requestedProtocolVersionNotSupported")
            return True
        requested = node.find("requestedProtocolVersions")
        versions = [v.text.strip() for v in requested.children] if requested is not None else []
        if versions and csta.NS_CSTA not in versions:
            self._refuse_start(invoke, "requestedProtocolVersionNotSupported")
            return True
        name, password = node.find("userName"), node.find("password")
        signed = await self.server.authenticate(name.text.strip() if name else "", password.text if password else "")
        if signed is None:
            self.failures += 1
            self.server.login_failures += 1
            self._refuse_start(invoke, "invalidApplicationInfo")
            return self.failures < MAX_LOGIN_FAILURES
        self.login, (self.scope, self.extension) = name.text.strip(), signed
        self.session_id = self.server.new_session_id()
        self.duration = self._duration(node.value("requestedSessionDuration"))
        self.deadline = time.monotonic() + self.duration
        self.respond(invoke, element("StartApplicationSessionPosResponse", text_element("sessionID", self.session_id),
                                     text_element("actualProtocolVersion", csta.NS_CSTA),
                                     text_element("actualSessionDuration", int(self.duration)), ns=csta.NS_ACSE))
        return True


def check_login(users, accounts, name: str, password: str) -> tuple[set[str], str] | None:
    """Blocking (argon2): (the scope, the staff extension or "") of `name` if `password` is right, else None. A
    user of the directory reaches their own extension; an application account its scope list."""
    for account in accounts:
        if account.name == name:
            ok = account.enabled and verify_password(account.password_hash, password)
            return (set(account.scope), "") if ok else None
    for user in users:
        if user.login == name:
            ok = user.extension and user.check_password(password)
            return ({user.extension}, user.extension) if ok else None
    verify_password(_dummy_hash(), password)  # an unknown name costs what a known one does
    return None


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))
