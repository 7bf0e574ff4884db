"""The mail service: SMTP in/submission, local Maildir delivery, outbound queue, POP3 and IMAP.

Internal API for other services (voicemail-to-email...):

    mail = runtime.services["mail"]
    qid = await mail.submit("voicemail@example.com", ["alice@example.com"], message)  # EmailMessage

Local recipients (users, aliases, lists) get the message in their Maildir at once, the others go
through the outbound queue to the smarthost. Raises MailError if a recipient is refused.
"""
from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import secrets
import ssl
from email.message import EmailMessage

from appliance.certs import box_certificate
from appliance.schema import CoreConfig
from appliance.service import Service, Status
from services.mail.authguard import AuthGuard
from services.mail.config import MailConfig
from services.mail.directory import Directory, split_address
from services.mail.imap import start_imap
from services.mail.limits import ConnectionCaps
from services.mail.maildir import Maildir
from services.mail.outbound import Outbound, QueueBusy, build_bounce
from services.mail.pop3 import start_pop3
from services.mail.queue import MailQueue, QueueEntry
from services.mail.smtpd import start_smtp

log = logging.getLogger("officebox.mail")
LISTENERS = ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps")

__all__ = ["MailService", "MailError", "QueueBusy"]


class MailError(Exception):
    """A message could not be accepted (unknown local recipient, no route out)."""


class MailService(Service):
    name = "mail"
    title = "Mail"
    Config = MailConfig
    depends_on = ("system", "network", "users")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.config: CoreConfig | None = None
        self.directory: Directory | None = None
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.ports: dict[str, int] = {}
        self.tls: ssl.SSLContext | None = None
        self.mailbox_locks: dict[str, asyncio.Lock] = {}
        self.queue = MailQueue(self.ctx.state_dir("mail") / "queue")
        self.outbound = Outbound(self.queue, lambda: self.section, lambda: self.fqdn, self._bounce)
        self.sessions: set[asyncio.Task] = set()  # POP3 and IMAP
        self.smtp_connections: set = set()
        self.auth = AuthGuard()
        self.caps = ConnectionCaps()
        self.received = 0
        self._listen_key: tuple | None = None

    # -- configuration ---------------------------------------------------------------------------
    @property
    def section(self) -> MailConfig:
        return self.config.mail

    @property
    def fqdn(self) -> str:
        return f"{self.config.system.hostname}.{self.config.system.domain}"

    def validate(self, config: CoreConfig) -> list[str]:
        errors = []
        section = config.mail
        if config.system.mail_domain in section.extra_domains:
            errors.append("the system mail domain is already received; do not list it as an extra domain")
        logins = {u.login for u in config.users}
        for alias in section.aliases:
            if alias.name in logins:
                errors.append(f"alias {alias.name!r} has the same name as a user")
            for target in alias.targets:
                if "@" not in target and target not in logins:
                    errors.append(f"alias {alias.name!r}: there is no user {target!r}")
        names = [a.name for a in section.aliases]
        if len(names) != len(set(names)):
            errors.append("each alias name may be used only once")
        return errors

    def maildir(self, login: str) -> Maildir:
        return Maildir(self.ctx.state_dir("mail") / login / "Maildir")

    def mailbox_lock(self, login: str) -> asyncio.Lock:
        return self.mailbox_locks.setdefault(login, asyncio.Lock())

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self, config: CoreConfig) -> None:
        self.config = config
        self.directory = Directory(config)
        await self._listen()
        self.outbound.start()

    async def reload(self, config: CoreConfig) -> None:
        self.config = config
        self.directory = Directory(config)
        await self._listen()
        self.outbound.wake()

    async def stop(self) -> None:
        await self._close_listeners()
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=5)
        connections = list(self.smtp_connections)
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
        handlers = [c._handler_coroutine for c in connections if c._handler_coroutine is not None]  # noqa: SLF001
        if handlers:  # aiosmtpd cancels its session task when the transport is lost: let it finish
            await asyncio.wait(handlers, timeout=5)
        await self.outbound.stop()
        self.auth.close()

    def admit(self, kind: str, ip: str) -> bool:
        """A new connection on listener `kind` from `ip` within the caps (release it when it ends)."""
        return self.caps.admit(kind, ip, self.section.max_connections, self.section.max_connections_per_ip)

    async def serve(self, kind: str, writer: asyncio.StreamWriter, refusal: bytes, make_session) -> None:
        """Run a POP3/IMAP session within the caps so that stop() can end it."""
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else "?"
        if not self.admit(kind, ip):
            log.info("%s connection from %s refused: too many connections", kind, ip)
            writer.write(refusal)
            writer.close()
            return
        task = asyncio.current_task()
        self.sessions.add(task)
        try:
            await make_session().run()
        except asyncio.CancelledError:
            pass
        finally:
            self.sessions.discard(task)
            self.caps.release(kind, ip)

    def _listen_settings(self) -> tuple:
        section = self.section
        return (self.ctx.bind_host("0.0.0.0"), self.config.system.hostname, section.max_message_size,
                tuple(section.port(self.ctx.lab, k) for k in LISTENERS))

    async def _listen(self) -> None:
        key = self._listen_settings()
        if key == self._listen_key:
            return
        await self._close_listeners()
        cert, keyfile = await asyncio.to_thread(box_certificate, self.ctx.data_dir, self.config.system.hostname)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.load_cert_chain(cert, keyfile)
        host = key[0]
        try:
            for kind in LISTENERS:
                port = self.section.port(self.ctx.lab, kind)
                if kind.startswith("pop3"):
                    server = await start_pop3(self, host, port, implicit_tls=kind == "pop3s")
                elif kind.startswith("imap"):
                    server = await start_imap(self, host, port, implicit_tls=kind == "imaps")
                else:
                    server = await start_smtp(self, kind, host, port, self.tls)
                self.servers[kind] = server
                self.ports[kind] = server.sockets[0].getsockname()[1]
        except OSError:
            await self._close_listeners()
            raise
        self._listen_key = key

    async def _close_listeners(self) -> None:
        for server in self.servers.values():
            server.close()
        for server in self.servers.values():
            await server.wait_closed()
        self.servers.clear()
        self.ports.clear()
        self._listen_key = None

    def status(self) -> Status:
        if self.config is None:
            return Status("down", "not started")
        entries = self.queue.entries()
        figures = {"received": self.received, "queued": len(entries), "sent": self.outbound.delivered,
                   "deferred": self.outbound.deferred, "bounced": self.outbound.bounced}
        if not self.servers:
            return Status("down", "no listener", figures)
        if entries and not self.section.smarthost.host:
            return Status("degraded", f"{len(entries)} message(s) waiting: no smarthost configured", figures)
        return Status("ok", f"{len(entries)} message(s) in the outbound queue", figures)

    # -- accepting mail ------------------------------------------------------------------------
    def accept_now(self, sender: str, recipients: list[str], data: bytes) -> str:
        """Deliver local recipients to their Maildirs and queue the others (blocking; durable on return)."""
        logins: list[str] = []
        remote: list[str] = []
        for rcpt in recipients:
            found = self.directory.resolve(rcpt)
            if found is None:
                raise MailError(f"{rcpt}: no such mailbox here")
            logins += [x for x in found.logins if x not in logins]
            remote += [x for x in found.remote if x not in remote]
        qid = secrets.token_hex(6).upper()
        for login in logins:
            self.maildir(login).deliver(data)
        if remote:
            qid = self.queue.enqueue(sender, remote, data).id
        self.received += 1
        return qid

    async def accept(self, sender: str, recipients: list[str], data: bytes) -> str:
        qid = await asyncio.to_thread(self.accept_now, sender, recipients, data)
        if self.queue.get(qid) is not None:
            self.outbound.wake()
        return qid

    async def submit(self, sender: str, recipients: list[str], message: EmailMessage) -> str:
        """Send a message on behalf of the box (see the module docstring). Returns the queue id."""
        if not recipients:
            raise MailError("no recipient")
        for rcpt in recipients:
            local, domain = split_address(rcpt)
            if not local or not domain:
                raise MailError(f"{rcpt!r} is not an e-mail address")
            if not self.directory.is_local_domain(domain) and not self.section.smarthost.host:
                raise MailError(f"{rcpt}: sending to other domains needs a smarthost")
        if "Date" not in message:
            message["Date"] = email.utils.formatdate(localtime=True)
        if "Message-ID" not in message:
            message["Message-ID"] = email.utils.make_msgid(domain=self.config.system.mail_domain)
        if "From" not in message:
            message["From"] = sender
        return await self.accept(sender, recipients, message.as_bytes(policy=email.policy.SMTP))

    def _bounce(self, entry: QueueEntry, failures: list[tuple[str, str]]) -> None:
        """Called by the queue runner (worker thread) for recipients that failed for good."""
        data = build_bounce(self.config.system.mail_domain, self.fqdn, entry, failures,
                            self.queue.content(entry.id))
        try:
            self.accept_now("", [entry.sender], data)
        except MailError as exc:
            log.warning("bounce for %s dropped: %s", entry.id, exc)

    # -- queue administration (web pages) ---------------------------------------------------------
    def queue_entries(self) -> list[QueueEntry]:
        return self.queue.entries()

    def retry_now(self, qid: str) -> bool:
        return self.outbound.retry_now(qid)

    def delete_queued(self, qid: str) -> bool:
        return self.outbound.delete(qid)

    def mailbox_usage(self, login: str) -> tuple[int, int]:
        """(messages, bytes) in a user's mailbox."""
        entries = self.maildir(login).scan()
        return len(entries), sum(e.size for e in entries)
