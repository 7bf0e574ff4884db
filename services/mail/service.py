"""The mail service: SMTP in/submission (aiosmtpd), the outbound queue, and Dovecot for IMAP and POP3.

Dovecot is driven like Squid: dovecot.conf and users.db are rendered into the generation folder, checked
with `doveconf -n` before they are applied, and Dovecot runs as a supervised child (launch.py). Local
delivery goes to Dovecot over LMTP (lmtp.py); passwords are checked here for both (authsocket.py).

Internal API for other services (voicemail-to-email...):

    mail = runtime.services["mail"]
    qid = await mail.submit("voicemail@example.com", ["alice@example.com"], message)  # EmailMessage

Local recipients (users, aliases, lists) get the message in their Maildir at once (through Dovecot), the
others go through the outbound queue to the smarthost. Raises MailError if a recipient is refused.
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.policy
import email.utils
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from appliance.apply import FieldError
from appliance.certs import box_certificate
from appliance.contributions import DnsName, Endpoint, Listener
from appliance.schema import CoreConfig
from appliance.service import ApplyError, ChildSpec, Service, Status
from services.mail import certwatch, dovecotconf, lmtp, mailstore
from services.mail.authguard import AuthGuard
from services.mail.authsocket import AuthSocket
from services.mail.config import MailConfig
from services.mail.directory import Directory, split_address
from services.mail.dovecotconf import Paths
from services.mail.dovecotmaster import running_master
from services.mail.errors import MailError, TryLater
from services.mail.limits import ConnectionCaps
from services.mail.outbound import Outbound, QueueBusy, build_bounce
from services.mail.prelogin import Limits, PreloginGate
from services.mail.queue import MailQueue, QueueEntry
from services.mail.sendsocket import SendSocket
from services.mail.smtpd import start_smtp

log = logging.getLogger("officebox.mail")
LISTENERS = ("smtp", "submission", "smtps")  # in-process
TITLES = {"smtp": "SMTP", "submission": "mail submission", "smtps": "SMTP over TLS", "imap": "IMAP",
          "imaps": "IMAP over TLS", "pop3": "POP3", "pop3s": "POP3 over TLS", "managesieve": "ManageSieve"}
DOVECOT_LISTENERS = tuple(dovecotconf.LISTENERS)  # imap, imaps, pop3, pop3s, managesieve
CHECK_PROBLEMS = ("Error:", "Fatal:", "Warning:")
RUN_ROOT = Path("/run")
PRELOGIN_SECONDS = 60.0  # a Dovecot connection not signed in by then is closed by the gate

__all__ = ["MailService", "MailError", "QueueBusy"]


class MailService(Service):
    name = "mail"
    title = "Mail"
    Config = MailConfig
    depends_on = ("system", "network", "users")

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        """Every mail port, reached from the inside zones (not from the WAN), and the name mail programs
        are set up with (SMTP, submission, IMAP, POP3 all on the box). No firewall cap per address: SMTP
        caps itself, and the pre-login gate (prelogin.py) caps Dovecot's logins, not signed-in sessions."""
        section: MailConfig = config.mail
        ports = {kind: section.port(lab, kind) for kind in LISTENERS + DOVECOT_LISTENERS}
        return [*(Listener(kind, "tcp", (port, port), None, TITLES[kind]) for kind, port in ports.items() if port),
                DnsName("mail", comment="mail server"),
                *([Endpoint("smtp", ports["smtp"], ("tcp",))] if ports.get("smtp") else [])]

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.config: CoreConfig | None = None
        self.directory: Directory | None = None
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.ports: dict[str, int] = {}
        self.tls: ssl.SSLContext | None = None
        self.instance = "ob" + hashlib.sha1(str(ctx.data_dir).encode()).hexdigest()[:10]
        self.auth_socket: AuthSocket | None = None
        self.send_socket: SendSocket | None = None
        self.queue = MailQueue(self.ctx.state_dir("mail") / "queue")
        self.outbound = Outbound(self.queue, lambda: self.section, lambda: self.fqdn, self._bounce)
        self.smtp_connections: set = set()
        self.auth = AuthGuard()
        self.caps = ConnectionCaps()
        self.gate = PreloginGate()
        self.received = 0
        self._listen_key: tuple | None = None
        self._cert_watch: asyncio.Task | None = None

    # -- configuration ---------------------------------------------------------------------------
    @property
    def section(self) -> MailConfig:
        return self.config.mail

    @property
    def fqdn(self) -> str:
        return f"{self.config.system.hostname}.{self.config.system.domain}"

    def validate(self, config: CoreConfig) -> list[FieldError]:
        errors = []
        section = config.mail
        if config.system.mail_domain in section.extra_domains:
            index = section.extra_domains.index(config.system.mail_domain)
            errors.append(FieldError(f"mail.extra_domains.{index}", "the system mail domain is already received; "
                                     "do not list it as an extra domain"))
        logins = {u.login for u in config.users}
        seen: set[str] = set()
        for i, alias in enumerate(section.aliases):
            if alias.name in logins:
                errors.append(FieldError(f"mail.aliases.{i}.name", f"alias {alias.name!r} has the same name as a user"))
            elif alias.name in seen:
                errors.append(FieldError(f"mail.aliases.{i}.name", "each alias name may be used only once"))
            seen.add(alias.name)
            for j, target in enumerate(alias.targets):
                if "@" not in target and target not in logins:
                    errors.append(FieldError(f"mail.aliases.{i}.targets.{j}",
                                             f"alias {alias.name!r}: there is no user {target!r}"))
        for kind in DOVECOT_LISTENERS:
            if section.port(self.ctx.lab, kind) == 0:
                field = f"lab_{kind}_port" if self.ctx.lab else f"{kind}_port"
                errors.append(FieldError(f"mail.{field}", f"the {kind} port must be set: Dovecot cannot pick a "
                                         "free port (0)"))
        for login in section.user_quota_mb:
            if login not in logins:
                errors.append(FieldError(f"mail.user_quota_mb.{login}",
                                         f"mailbox quota for {login!r}: there is no such user (to delete a "
                                         "user, clear their own quota on Mail > Mailboxes first)"))
        return errors

    @property
    def paths(self) -> Paths:
        return Paths(etc=self.ctx.etc_dir(self.name), state=self.ctx.state_dir(self.name),
                     run=RUN_ROOT / f"officebox-{self.instance}")

    def dovecot_ports(self, config: CoreConfig) -> dict[str, int]:
        return {kind: config.mail.port(self.ctx.lab, kind) for kind in DOVECOT_LISTENERS}

    # -- Dovecot: render, check, run -------------------------------------------------------------
    def render(self, config: CoreConfig) -> dict[str, str]:
        cert = box_certificate(self.ctx.data_dir, config.system.hostname)
        conf = dovecotconf.render(config, self.paths, self.dovecot_ports(config), self.ctx.bind_host("0.0.0.0"),
                                  self.instance, cert)
        users = dovecotconf.user_lines(config, self.paths, mailstore.mail_account())
        return {"dovecot.conf": conf, "users.db": users}

    async def check(self, config: CoreConfig, staged: Path) -> None:
        try:
            result = await asyncio.to_thread(
                subprocess.run, ["doveconf", "-n", "-c", str(staged / "dovecot.conf")], capture_output=True,
                text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplyError(f"could not run doveconf to check the mail configuration: {exc}") from exc
        problems = [line.strip().removeprefix("doveconf: ") for line in result.stderr.splitlines()
                    if any(word in line for word in CHECK_PROBLEMS)]
        if result.returncode != 0 or problems:
            detail = "; ".join(problems[:5]) or f"doveconf exited with {result.returncode}"
            raise ApplyError(f"Dovecot refused the mail configuration: {detail}")

    def processes(self, config: CoreConfig) -> list[ChildSpec]:
        argv = (sys.executable, "-m", "services.mail.launch", str(self.paths.etc / "dovecot.conf"),
                str(self.paths.base_dir))
        return [ChildSpec("dovecot", argv, env=(("TZ", config.system.timezone),), reload_signal=signal.SIGHUP,
                          stop_timeout=15.0)]

    def _prepare_store(self, config: CoreConfig) -> None:
        account = mailstore.mail_account()
        mailstore.prepare(self.paths, [u.login for u in config.users if u.enabled], account)
        mailstore.publish_userdb(self.paths)

    def dovecot_ready(self) -> bool:
        """Dovecot's LMTP answers (it greets once the master and the lmtp service are up)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(self.paths.lmtp_socket))
                return sock.recv(4).startswith(b"220")
        except OSError:
            return False

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self, config: CoreConfig) -> None:
        self.config = config
        self.directory = Directory(config)
        await asyncio.to_thread(self._prepare_store, config)
        self.auth_socket = AuthSocket(self, self.paths.auth_socket)
        await self.auth_socket.start()
        self.send_socket = SendSocket(self, self.paths.send_socket)
        await self.send_socket.start()
        await self._listen()
        await self._gate()
        self.outbound.start()
        self._cert_watch = asyncio.create_task(certwatch.watch(self._certificate_paths, self._use_certificate))

    async def reload(self, config: CoreConfig) -> None:
        self.config = config
        self.directory = Directory(config)
        await asyncio.to_thread(self._prepare_store, config)
        await self._listen()
        await self._gate()
        self.ports.update(self.dovecot_ports(config))
        self.outbound.wake()

    async def stop(self) -> None:
        if self._cert_watch is not None:
            self._cert_watch.cancel()
            await asyncio.gather(self._cert_watch, return_exceptions=True)
            self._cert_watch = None
        await self._close_listeners()
        await self.gate.close()
        for sock in (self.auth_socket, self.send_socket):
            if sock is not None:
                await sock.close()
        self.auth_socket = self.send_socket = None
        connections = list(self.smtp_connections)
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
        handlers = [c._handler_coroutine for c in connections if c._handler_coroutine is not None]  # noqa: SLF001
        if handlers:  # aiosmtpd cancels its session task when the transport is lost: let it finish
            await asyncio.wait(handlers, timeout=5)
        await self.outbound.stop()
        self.auth.close()
        if not await asyncio.to_thread(self.dovecot_ready):  # the supervisor stopped Dovecot before us
            await asyncio.to_thread(shutil.rmtree, self.paths.run, True)

    def admit(self, kind: str, ip: str) -> bool:
        """A new connection on listener `kind` from `ip` within the caps (release it when it ends)."""
        return self.caps.admit(kind, ip, self.section.max_connections, self.section.max_connections_per_ip)

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
                server = await start_smtp(self, kind, host, port, self.tls)
                self.servers[kind] = server
                self.ports[kind] = server.sockets[0].getsockname()[1]
        except OSError:
            await self._close_listeners()
            raise
        self.ports.update(self.dovecot_ports(self.config))
        self._listen_key = key

    async def _gate(self) -> None:
        """The pre-login gate on Dovecot's public ports (Dovecot listens behind it on the loopback)."""
        section = self.section
        most = section.max_connections  # Dovecot's login processes keep that many clients, then drop the
        # oldest not signed in: the gate lets them, bounding only its own descriptors
        await self.gate.start(self.ctx.bind_host("0.0.0.0"), self.dovecot_ports(self.config),
                              Limits(section.max_connections_per_ip, 2 * most, 3 * most, PRELOGIN_SECONDS))

    def _certificate_paths(self) -> tuple[Path, Path]:
        return box_certificate(self.ctx.data_dir, self.config.system.hostname)

    async def _use_certificate(self, paths: tuple[Path, Path]) -> None:
        """A renewed box certificate: SMTP's next handshakes (SMTPS, STARTTLS) and Dovecot's take it."""
        if self.tls is not None:
            self.tls.load_cert_chain(*paths)  # the same context: the listeners keep running
        master = running_master(self.paths.base_dir, str(self.paths.etc / "dovecot.conf"))
        if master is not None:
            os.kill(master, signal.SIGHUP)  # Dovecot reads its configuration and certificate again

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
                   "deferred": self.outbound.deferred, "bounced": self.outbound.bounced,
                   "sign-in checks at once (peak)": self.auth.peak_pending}
        if not self.servers:
            return Status("down", "no listener", figures)
        if not self.paths.lmtp_socket.exists():
            return Status("degraded", "Dovecot (IMAP, POP3, local delivery) is not running", figures)
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
        if logins:
            self._deliver_locally(sender, logins, data, qid, remote)
        if remote:
            qid = self.queue.enqueue(sender, remote, data).id
        self.received += 1
        return qid

    def _deliver_locally(self, sender: str, logins: list[str], data: bytes, qid: str, remote: list[str]) -> None:
        """Through Dovecot's LMTP (each 250 after its fsync). Any temporary failure: TryLater (the sender
        retries; a mailbox that took it gets it twice rather than another losing it). Mailboxes refusing
        for good (over quota): MailError if none took it, else a bounce to the sender for those."""
        try:
            outcome = lmtp.deliver(self.paths.lmtp_socket, sender, logins, data, self.fqdn)
        except lmtp.LMTPUnavailable as exc:
            raise TryLater(str(exc)) from exc
        if outcome.temporary:
            raise TryLater("; ".join(f"{k}: {v}" for k, v in outcome.temporary.items()))
        if not outcome.permanent:
            return
        reasons = [(self.directory.address_of(login), reply) for login, reply in outcome.permanent.items()]
        if not outcome.delivered and not remote:
            reply = next(iter(outcome.permanent.values()))
            raise MailError("; ".join(f"{a}: {r}" for a, r in reasons), reply=reply)
        if sender:
            entry = QueueEntry(qid, sender, [], time.time(), len(data))
            self._bounce(entry, reasons, data)

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

    def _bounce(self, entry: QueueEntry, failures: list[tuple[str, str]], original: bytes | None = None) -> None:
        """For recipients that failed for good (the queue runner's worker thread, or local delivery)."""
        data = build_bounce(self.config.system.mail_domain, self.fqdn, entry, failures,
                            self.queue.content(entry.id) if original is None else original,
                            self.config.system.language)
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

    # -- for the web admin (appliance.clients.MailClient): JSON results, whichever process runs mail -------
    def queue_summary(self) -> list[dict]:
        return [dataclasses.asdict(entry) for entry in self.queue.entries()]

    def remove_queued(self, qid: str) -> str:
        """"deleted", "gone" (no longer queued) or "busy: <why>" (being delivered right now)."""
        try:
            return "deleted" if self.delete_queued(qid) else "gone"
        except QueueBusy as exc:
            return f"busy: {exc}"

    def mailbox_usage(self, login: str) -> tuple[int, int]:
        """(messages, bytes) in a user's mailbox, every folder (read from the Maildir's file names)."""
        return mailstore.usage(self.paths.home(login) / "Maildir")

    def quota_mb(self, login: str) -> int:
        """The user's quota in MB (0: none)."""
        return self.section.user_quota_mb.get(login, self.section.quota_mb)
