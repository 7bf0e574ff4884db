"""A test smarthost: a second aiosmtpd, with STARTTLS and AUTH, that records what it accepts."""
from __future__ import annotations

import asyncio
import ssl
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from appliance.certs import ensure_certificate
from tests.ports import listen_port
from tests.services.mail.harness import cancel_leftovers


class Recorder:
    def __init__(self, refuse: set[str]) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user at the carrier"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 accepted"


free_port = listen_port


class Smarthost:
    USER, PASSWORD = "box@carrier.test", "carrier-pass-9"

    def __init__(self, cert_dir, port: int | None = None, refuse: set[str] = frozenset(),
                 smtputf8: bool = False) -> None:
        self.port = port or free_port()
        self.smtputf8 = smtputf8
        cert, key = ensure_certificate(cert_dir, "smarthost.test")
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.recorder = Recorder(set(refuse))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None

    @property
    def messages(self):
        return self.recorder.messages

    def _auth(self, server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.USER, self.PASSWORD)
        return AuthResult(success=ok, handled=False)

    def start(self) -> "Smarthost":
        async def up():
            return await self.loop.create_server(
                lambda: SMTP(self.recorder, tls_context=self.tls, require_starttls=True, auth_required=True,
                             authenticator=self._auth, enable_SMTPUTF8=self.smtputf8),
                "127.0.0.1", self.port, reuse_address=True)
        self.server = asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)
        return self

    def down(self) -> None:
        if self.server is not None:
            async def close():
                self.server.close()
                await self.server.wait_closed()
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
            self.server = None

    def close(self) -> None:
        self.down()
        asyncio.run_coroutine_threadsafe(cancel_leftovers(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def config(self) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "security": "starttls", "username": self.USER,
                "password": self.PASSWORD, "verify_certificate": False}
