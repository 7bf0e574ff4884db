"""A mail service run like on the box (apply engine: render + doveconf check; supervisor: Dovecot as its
child), on its own event loop thread, on loopback ports, for blocking clients."""
from __future__ import annotations

import asyncio
import contextlib
import imaplib
import poplib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from appliance.apply import ApplyEngine
from appliance.bus import Bus, BusHub
from appliance.context import Context
from appliance.servicehost import IsolatedService
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor
from appliance.users import hash_password
from services.mail import MailService
from tests.ports import listen_port

PASSWORD = "correct-horse-1"
PASSWORDS = {"alice": PASSWORD, "bob": "bob-secret-22", "carol": "carol-secret-3"}
DOVECOT_KINDS = ("pop3", "pop3s", "imap", "imaps", "managesieve")
_HASHES: dict[str, str] = {}


def password_hash(login: str) -> str:
    if login not in _HASHES:
        _HASHES[login] = hash_password(PASSWORDS[login])
    return _HASHES[login]


free_port = listen_port  # Dovecot and the isolated service need the port numbers in the document


def document(users: list | None = None, **mail) -> dict:
    mail.setdefault("retry_initial_seconds", 1)
    mail.setdefault("retry_max_seconds", 2)
    for kind in ("smtp", "submission", "smtps"):
        mail.setdefault(f"lab_{kind}_port", 0)
    for kind in DOVECOT_KINDS:  # Dovecot needs real port numbers
        mail.setdefault(f"lab_{kind}_port", free_port())
    return {
        "system": {"hostname": "box", "domain": "office.test", "mail_domain": "example.com"},
        "users": users if users is not None else [
            {"login": "alice", "full_name": "Alice A", "role": "admin", "password_hash": password_hash("alice")},
            {"login": "bob", "full_name": "Bob B", "email": "bob.b@example.com",
             "password_hash": password_hash("bob")},
            {"login": "carol", "full_name": "Carol C", "password_hash": password_hash("carol")},
        ],
        "mail": mail,
    }


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def imap_session(port: int, login: str, password: str) -> Iterator[imaplib.IMAP4]:
    """A session on the box's IMAP port (127.0.0.1), signed in after STARTTLS: behind the mail service's
    pre-login gate a connection is secured only by TLS, also from the box's own address."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=30) as imap:
        imap.starttls(ssl_context=client_tls())
        imap.login(login, password)
        yield imap


REMOTE = "127.0.0.2"  # Dovecot counts a client on its own address as secured: plaintext tests come from here


class RemotePOP3(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(REMOTE, 0))


class RemoteIMAP4(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(REMOTE, 0))


def stored(ctx: Context, login: str, folder: str = "") -> list[Path]:
    """The message files in a mailbox folder (`Sent`, `Archives/2026`...), oldest name first."""
    maildir = ctx.state_dir("mail") / login / "Maildir"
    if folder:
        maildir = maildir / ("." + folder.replace("/", "."))
    found = []
    for sub in ("new", "cur"):
        if (maildir / sub).is_dir():
            found += [p for p in (maildir / sub).iterdir() if not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.name)


def wait_for(predicate, timeout: float = 20.0, ignore: tuple[type[BaseException], ...] = ()):
    """The predicate's first true value within `timeout` s (exceptions in `ignore` count as false), else
    its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = predicate()
        except ignore:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


async def cancel_leftovers() -> None:
    """End what is still running on a test loop (e.g. a connection accepted during stop) before closing it."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class RunningMail:
    """The mail service and its Dovecot, on a private loop in a thread. `isolated`: the service's live half
    in its own process, as the appliance runs it (the document must then give every port: the appliance
    does not learn the ports the system picks in the child)."""

    def __init__(self, ctx: Context, doc: dict, isolated: bool = False) -> None:
        self.ctx = ctx
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub: BusHub | None = None
        self.service = MailService(ctx)
        if isolated:
            self.hub = BusHub(Bus())
            self.call(self.hub.serve(ctx.run_dir("core") / "bus.sock"))
            self.service = IsolatedService(self.service, ctx.run_dir("core") / "bus.sock")
        self.store = ConfigStore(ctx.db_path)
        self.engine = ApplyEngine(ctx, self.store, {"mail": self.service})
        self.supervisor = Supervisor(ctx, {"mail": self.service})
        try:
            self.engine.apply(doc, "test", "start")
            self.config = self.engine.current_config()
            self.call(self.supervisor.start(self.config))
            unit = self.supervisor.units["mail"]
            if unit.state != "running":
                raise RuntimeError(f"the mail service did not start: {unit.error}")
            self.engine.live = self.supervisor
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def port(self, kind: str) -> int:
        if isinstance(self.service, IsolatedService):
            return self.config.mail.port(self.ctx.lab, kind)
        return self.service.ports[kind]

    def wait_ready(self, timeout: float = 30) -> None:
        """Until Dovecot delivers (LMTP greets) and its four listeners accept."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service.dovecot_ready() and all(self._accepts(k) for k in DOVECOT_KINDS):
                return
            time.sleep(0.1)
        log = self.ctx.log_dir("mail") / "dovecot.log"
        raise AssertionError(f"Dovecot did not come up: {log.read_text()[-2000:] if log.exists() else ''}")

    def _accepts(self, kind: str) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port(kind)), timeout=2):
                return True
        except OSError:
            return False

    def reload(self, doc: dict) -> None:
        self.engine.apply(doc, "test", "change")
        self.config = self.engine.current_config()
        self.wait_ready()

    def stop(self) -> None:
        log = self.ctx.log_dir("mail") / "dovecot.log"
        if log.exists():  # pytest shows it for a failed test only
            sys.stderr.writelines(line for line in log.read_text().splitlines(True) if "Info:" not in line)
        try:
            if self.supervisor.loop is not None:
                self.call(self.supervisor.stop(), timeout=90)
            else:
                self.call(self.service.stop(), timeout=90)
            if self.hub is not None:
                self.call(self.hub.close())
        finally:
            asyncio.run_coroutine_threadsafe(cancel_leftovers(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.store.close()
