"""A mail service running on its own event loop thread, on ephemeral loopback ports, for blocking clients."""
from __future__ import annotations

import asyncio
import ssl
import threading

from appliance import schema
from appliance.context import Context
from appliance.users import hash_password
from services.mail import MailService

PASSWORD = "correct-horse-1"
PASSWORDS = {"alice": PASSWORD, "bob": "bob-secret-22", "carol": "carol-secret-3"}
_HASHES: dict[str, str] = {}


def password_hash(login: str) -> str:
    if login not in _HASHES:
        _HASHES[login] = hash_password(PASSWORDS[login])
    return _HASHES[login]


def document(**mail) -> dict:
    mail.setdefault("retry_initial_seconds", 1)
    mail.setdefault("retry_max_seconds", 2)
    for kind in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"):
        mail.setdefault(f"lab_{kind}_port", 0)
    return {
        "system": {"hostname": "box", "domain": "office.test", "mail_domain": "example.com"},
        "users": [
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


async def cancel_leftovers() -> None:
    """End what is still running on a test loop (e.g. a connection accepted during stop) before closing it."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class RunningMail:
    """Start/stop a MailService on a private loop in a thread."""

    def __init__(self, ctx: Context, doc: dict) -> None:
        self.ctx = ctx
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.config = schema.parse(doc)
        self.service = MailService(ctx)
        self.call(self.service.start(self.config))

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def port(self, kind: str) -> int:
        return self.service.ports[kind]

    def reload(self, doc: dict) -> None:
        self.config = schema.parse(doc)
        self.call(self.service.reload(self.config))

    def stop(self) -> None:
        try:
            self.call(self.service.stop(), timeout=90)
        finally:
            asyncio.run_coroutine_threadsafe(cancel_leftovers(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
