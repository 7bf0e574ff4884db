"""SMTP listeners (aiosmtpd): 25 inbound MX, 587 submission (STARTTLS then AUTH), 465 implicit TLS."""
from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import ssl
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

from services.mail.authguard import SignInRefused
from services.mail.directory import split_address
from services.mail.errors import MailError, TryLater

if TYPE_CHECKING:
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail.smtp")
MAX_RECIPIENTS = 500
_DEFERRED = "deferred to a worker thread"
MAX_HOPS = 30  # Received: headers (RFC 5321 6.3)


ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\\\"]+(\.[^\s@<>()\[\],;:\\\"]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


# RFC 3463 codes for the replies aiosmtpd words without one (RFC 2034: every 2xx/4xx/5xx reply has one)
ENHANCED = {"221": "2.0.0", "235": "2.7.0", "250": "2.0.0", "220": "2.0.0", "421": "4.7.0", "451": "4.3.0",
            "452": "4.5.3", "454": "4.7.0", "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1",
            "504": "5.5.4", "530": "5.7.0", "535": "5.7.8", "552": "5.3.4", "553": "5.1.3", "555": "5.5.4"}
HAS_ENHANCED = re.compile(r"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |$)")
TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"


def valid_address(address: str) -> bool:
    return len(address) <= 254 and address.isprintable() and ADDRESS.match(address) is not None


def valid_helo(name: str) -> bool:
    """No control characters (they would reach the Received: header of stored mail), no spaces."""
    return 0 < len(name) <= 255 and name.isprintable() and " " not in name


def with_enhanced_code(status: str) -> str:
    if status[3:4] not in (" ", "-") or status[:1] not in "245" or HAS_ENHANCED.match(status):
        return status
    code = ENHANCED.get(status[:3], status[0] + ".0.0")
    return f"{status[:4]}{code} {status[4:]}"


def sender_of(envelope) -> str:
    """The reverse-path; "" for the null sender (kept as "<>" in the envelope: aiosmtpd takes "" for none)."""
    return "" if envelope.mail_from == "<>" else envelope.mail_from or ""


class MailSMTP(SMTP):
    """aiosmtpd with an explicit size message and knowledge of implicit TLS (port 465)."""

    def __init__(self, handler: "Handler", *, implicit_tls: bool = False, **kw) -> None:
        super().__init__(handler, **kw)
        self.implicit_tls = implicit_tls
        if implicit_tls:  # port 465: the whole connection is TLS, so AUTH is allowed from the start
            self._auth_require_tls = False
        self.service = handler.service
        self.kind = handler.kind
        self.connections = handler.service.smtp_connections
        self.admitted: str | None = None  # source address counted in the caps
        self.plain_replies = False  # greeting and EHLO/HELO replies carry no enhanced code

    def connection_made(self, transport) -> None:
        if self.admitted is None:  # not again after STARTTLS
            peer = transport.get_extra_info("peername")
            ip = peer[0] if peer else "?"
            if not self.service.admit(self.kind, ip):
                log.info("%s connection from %s refused: too many connections", self.kind, ip)
                transport.write(TOO_MANY)
                transport.close()
                return
            self.admitted = ip
        super().connection_made(transport)
        self.connections.add(self)

    def connection_lost(self, error) -> None:
        if self.admitted is None:
            return
        self.service.caps.release(self.kind, self.admitted)
        self.connections.discard(self)
        super().connection_lost(error)

    async def push(self, status):
        if isinstance(status, str):
            if status.startswith("552 Error"):
                status = (f"552 5.3.4 Message too big: this server accepts messages up to "
                          f"{self.data_size_limit} bytes")
            elif not (self.plain_replies or status == f"220 {self.hostname} {self.__ident__}"):
                status = with_enhanced_code(status)
        return await super().push(status)

    async def _without_codes(self, command, hostname: str) -> None:
        self.plain_replies = True
        try:
            await command(hostname)
        finally:
            self.plain_replies = False

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str):
        await self._without_codes(super().smtp_EHLO, hostname)

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str):
        await self._without_codes(super().smtp_HELO, hostname)

    # AUTH: aiosmtpd decodes PLAIN/LOGIN and calls _authenticate synchronously; the argon2 check would
    # block the appliance's event loop (~50 ms), so it is deferred here and run in a worker thread.
    def _authenticate(self, mechanism: str, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False, message=_DEFERRED, auth_data=auth_data)

    async def _verify(self, result):
        if not (isinstance(result, AuthResult) and result.message == _DEFERRED):
            return result
        data = result.auth_data
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        service = self.service
        try:
            user = await service.auth.check(service.section, service.directory, self.admitted or "?",
                                            data.login.decode("utf-8", "replace"),
                                            data.password.decode("utf-8", "replace"))
        except SignInRefused as exc:
            return AuthResult(success=False, handled=False, message=f"454 4.7.0 {exc}")
        if user is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user.login)

    async def auth_PLAIN(self, _, args):
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._verify(await super().auth_LOGIN(_, args))

    @property
    def secure(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None


class Handler:
    """Recipient policy (local users, aliases, no open relay) and hand-off to the mail service."""

    def __init__(self, service: "MailService", kind: str) -> None:
        self.service = service
        self.kind = kind

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if not valid_helo(hostname):
            session.host_name = None
            return ["501 5.5.4 Invalid host name in EHLO"]
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_HELO(self, server, session, envelope, hostname):
        if not valid_helo(hostname):
            session.host_name = None
            return "501 5.5.4 Invalid host name in HELO"
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        null = address == "<>"  # the null sender (bounces, RFC 5321 4.5.5): always accepted
        if not null and not valid_address(address):
            return "553 5.1.7 Bad sender address syntax"
        if not address.isascii() and not envelope.smtp_utf8:
            return "553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)"
        login = session.auth_data if session.authenticated else None
        if isinstance(login, str) and not self.service.directory.may_send_as(login, "" if null else address):
            return f"553 5.7.1 <{address}>: not an address of user {login}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        directory = self.service.directory
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        if address.lower() == "postmaster":  # RFC 5321 4.5.1: accepted without a domain
            address = f"postmaster@{directory.mail_domain}"
        if not valid_address(address):
            return "553 5.1.3 Bad recipient address syntax"
        if not address.isascii() and not envelope.smtp_utf8:
            return "553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)"
        local, domain = split_address(address)
        if directory.is_local_domain(domain):
            if directory.resolve(address) is None:
                return f"550 5.1.1 <{address}>: no such mailbox here"
        else:
            peer = session.peer[0] if session.peer else None
            if not (session.authenticated or directory.may_relay(peer)):
                return f"554 5.7.1 <{address}>: Relay access denied (log in to send to other domains)"
            if not self.service.section.smarthost.host:
                return "550 5.7.1 Sending to other domains is not configured on this server (no smarthost)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        peer = session.peer[0] if session.peer else "unknown"
        header = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        if header.lower().count(b"\nreceived:") + header[:9].lower().startswith(b"received:") > MAX_HOPS:
            return "554 5.4.6 Too many hops: this message is looping"
        proto = "ESMTP" + ("S" if server.secure else "") + ("A" if session.authenticated else "")
        received = (f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
                    f"\tby {self.service.fqdn} (OfficeBox) with {proto};\r\n"
                    f"\t{email.utils.formatdate(localtime=True)}\r\n").encode()
        try:
            qid = await self.service.accept(sender_of(envelope), list(envelope.rcpt_tos),
                                            received + envelope.original_content)
        except MailError as exc:
            return exc.reply or f"550 5.1.1 {exc}"
        except TryLater as exc:
            log.warning("local delivery of a message from %s deferred: %s", peer, exc)
            return "451 4.3.0 Mailbox temporarily unavailable, please try again later"
        except Exception:
            log.exception("could not store a message from %s", peer)
            return "451 4.3.0 Local error while storing the message, please try again later"
        return f"250 2.0.0 OK: queued as {qid}"


async def start_smtp(service: "MailService", kind: str, host: str, port: int,
                     tls: ssl.SSLContext) -> asyncio.AbstractServer:
    """kind: smtp (25), submission (587) or smtps (465)."""
    size = service.section.max_message_size
    common = dict(data_size_limit=size, hostname=service.fqdn, ident="OfficeBox ESMTP", timeout=300,
                  enable_SMTPUTF8=True, auth_callback=lambda *_: False)  # unused: see MailSMTP._authenticate
    handler = Handler(service, kind)
    loop = asyncio.get_running_loop()
    if kind == "smtps":
        def factory():
            return MailSMTP(handler, implicit_tls=True, auth_required=True, auth_require_tls=True, **common)
        return await loop.create_server(factory, host, port, ssl=tls, reuse_address=True)
    required = kind == "submission"

    def factory():
        return MailSMTP(handler, tls_context=tls, require_starttls=required, auth_required=required,
                        auth_require_tls=True, **common)
    return await loop.create_server(factory, host, port, reuse_address=True)
