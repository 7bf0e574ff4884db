"""Delivery of the outbound queue to the smarthost, with exponential backoff and bounces.

Guarantee: at-least-once. A recipient is removed from the queue state (fsync'd) right after the
smarthost's 250 to DATA and before QUIT. If the box dies in the window between that 250 and the state
write (a few milliseconds), the message is sent again after restart: a rare duplicate is preferred to a
lost message. Exactly-once is impossible with SMTP alone (RFC 1047): the server may have committed the
message while its 250 is lost.
"""
from __future__ import annotations

import asyncio
import email.header
import email.utils
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.aio import cancel_and_wait
from services.mail.messages import text as message_text
from services.mail.queue import MailQueue, QueueEntry

if TYPE_CHECKING:
    from services.mail.config import MailConfig

log = logging.getLogger("officebox.mail.outbound")
SMTP_TIMEOUT = 60
IDLE_WAKE = 60.0


class QueueBusy(Exception):
    """The message is being delivered right now."""


def _client_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send_to_smarthost(section: "MailConfig", helo: str, entry: QueueEntry, data: bytes) -> dict:
    """One SMTP transaction. Returns {recipient: (code, reason)} for refused recipients; raises
    smtplib/OS errors when nothing was accepted."""
    host = section.smarthost
    context = _client_context(host.verify_certificate)
    if host.security == "tls":
        client = smtplib.SMTP_SSL(host.host, host.port, local_hostname=helo, timeout=SMTP_TIMEOUT,
                                  context=context)
    else:
        client = smtplib.SMTP(host.host, host.port, local_hostname=helo, timeout=SMTP_TIMEOUT)
    try:
        client.ehlo()
        if host.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if host.username:
            client.login(host.username, host.password)
        utf8 = not all(a.isascii() for a in [entry.sender, *entry.recipients])
        refused = client.sendmail(entry.sender, entry.recipients, data, mail_options=["SMTPUTF8"] if utf8 else [])
    except BaseException:
        client.close()
        raise
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
    return {rcpt: (code, msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg))
            for rcpt, (code, msg) in refused.items()}


def build_bounce(mail_domain: str, hostname: str, entry: QueueEntry, failures: list[tuple[str, str]],
                 original: bytes, language: str = "en") -> bytes:
    """A delivery status notification (RFC 3464 layout) with the original headers; its readable part,
    subject and sender name in `language` (the box's default), the machine-readable part in English."""
    mailer = email.utils.formataddr((message_text(language, "mailer"), f"MAILER-DAEMON@{mail_domain}"))
    subject = message_text(language, "bounce_subject")
    if not subject.isascii():
        subject = email.header.Header(subject, "utf-8").encode(linesep="\r\n")
    boundary = f"bounce-{entry.id}"
    headers = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    lines = "\r\n".join(f"  <{rcpt}>: {reason}" for rcpt, reason in failures)
    per_rcpt = "\r\n".join(
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {_status_code(reason)}\r\n"
        f"Diagnostic-Code: smtp; {reason}\r\n" for rcpt, reason in failures)
    text = (
        f"From: {mailer}\r\n"
        f"To: <{entry.sender}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {email.utils.formatdate(localtime=True)}\r\n"
        f"Message-ID: {email.utils.make_msgid(domain=mail_domain)}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{message_text(language, 'bounce_intro')}\r\n\r\n{lines}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {hostname}\r\n"
        f"Arrival-Date: {email.utils.formatdate(entry.created, localtime=True)}\r\n\r\n{per_rcpt}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers.strip()}\r\n\r\n"
        f"--{boundary}--\r\n")
    return text.encode("utf-8")


def _status_code(reason: str) -> str:
    code = reason[:3]
    return "5.0.0" if code.startswith("5") else "4.4.7"


class Outbound:
    """The queue runner: one delivery at a time; wakes on new mail, retry-now, or when one is due."""

    def __init__(self, queue: MailQueue, section: Callable[[], "MailConfig"], helo: Callable[[], str],
                 bounce: Callable[[QueueEntry, list[tuple[str, str]]], None]) -> None:
        self.queue = queue
        self.section = section
        self.helo = helo
        self.bounce = bounce
        self.in_flight: str | None = None
        self.delivered = 0
        self.deferred = 0
        self.bounced = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._attempt: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.queue.recover()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="mail-outbound")

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        if self._attempt is not None:  # let a transaction in progress record its outcome
            await asyncio.wait([self._attempt], timeout=SMTP_TIMEOUT + 5)

    def wake(self) -> None:
        """Safe from any thread (the web admin calls retry-now from its own)."""
        if self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    def retry_now(self, qid: str) -> bool:
        entry = self.queue.get(qid)
        if entry is None:
            return False
        entry.next_attempt = 0
        self.queue.save(entry)
        self.wake()
        return True

    def delete(self, qid: str) -> bool:
        if qid == self.in_flight:
            raise QueueBusy("this message is being delivered right now; try again in a moment")
        if self.queue.get(qid) is None:
            return False
        self.queue.finish(qid)
        return True

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.time()
            entries = await asyncio.to_thread(self.queue.entries)
            for entry in entries:
                if entry.next_attempt <= now:
                    self.in_flight = entry.id
                    self._attempt = asyncio.ensure_future(asyncio.to_thread(self.attempt, entry.id))
                    try:
                        await asyncio.shield(self._attempt)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("delivery attempt for %s failed unexpectedly", entry.id)
                        self._postpone(entry.id)
                    finally:
                        self.in_flight = None
            pending = [e.next_attempt for e in await asyncio.to_thread(self.queue.entries)]
            delay = min([IDLE_WAKE] + [max(0.05, t - time.time()) for t in pending])
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _postpone(self, qid: str) -> None:
        """After an unexpected error: try again later instead of spinning on the same message."""
        entry = self.queue.get(qid)
        if entry is not None:
            entry.next_attempt = time.time() + self.section().retry_max_seconds
            entry.last_error = "internal error (see the log)"
            self.queue.save(entry)

    def attempt(self, qid: str) -> None:
        """One delivery try (runs in a worker thread; records its outcome itself)."""
        entry = self.queue.get(qid)
        if entry is None:
            return
        section = self.section()
        try:
            data = self.queue.content(qid)
        except OSError as exc:
            log.error("%s: message file unreadable (%s); dropped from the queue", qid, exc)
            self.queue.finish(qid)
            return
        temporary: dict[str, str] = {}
        permanent: list[tuple[str, str]] = []
        if not section.smarthost.host:
            temporary = {r: "no smarthost is configured" for r in entry.recipients}
        else:
            try:
                refused = send_to_smarthost(section, self.helo(), entry, data)
            except smtplib.SMTPRecipientsRefused as exc:
                refused = {r: (c, m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m))
                           for r, (c, m) in exc.recipients.items()}
            except smtplib.SMTPNotSupportedError:
                refused = {r: (553, "553 5.6.7 the smarthost does not take SMTPUTF8, needed for non-ASCII "
                                    "addresses") for r in entry.recipients}
            except smtplib.SMTPResponseException as exc:
                reason = f"{exc.smtp_code} {exc.smtp_error.decode('utf-8', 'replace')}"
                refused = {r: (exc.smtp_code, reason) for r in entry.recipients}
                if isinstance(exc, smtplib.SMTPAuthenticationError):
                    refused = {r: (450, f"smarthost refused our login: {reason}") for r in entry.recipients}
            except (smtplib.SMTPException, OSError) as exc:
                refused = {r: (451, f"smarthost unreachable: {exc}") for r in entry.recipients}
            for rcpt, (code, reason) in refused.items():
                text = reason if reason[:3].isdigit() else f"{code} {reason}"
                if 500 <= code < 600:
                    permanent.append((rcpt, text))
                else:
                    temporary[rcpt] = text
        self._record(entry, data, temporary, permanent)

    def _record(self, entry: QueueEntry, data: bytes, temporary: dict[str, str],
                permanent: list[tuple[str, str]]) -> None:
        section = self.section()
        now = time.time()
        delivered = len(entry.recipients) - len(temporary) - len(permanent)
        expired = now - entry.created >= section.queue_lifetime_seconds
        if expired:
            permanent += [(r, f"{why} (gave up after {section.queue_lifetime_seconds} s)")
                          for r, why in temporary.items()]
            temporary = {}
        if permanent and entry.sender:
            self.bounce(entry, permanent)  # queued before we forget the recipients: never lost
        self.delivered += delivered
        self.bounced += len(permanent)
        if not temporary:
            self.queue.finish(entry.id)
            log.info("%s: done (%d delivered, %d bounced)", entry.id, delivered, len(permanent))
            return
        entry.attempts += 1
        entry.recipients = [r for r in entry.recipients if r in temporary]
        entry.failed += [[r, why] for r, why in permanent]
        entry.last_error = "; ".join(sorted(set(temporary.values())))[:500]
        backoff = min(section.retry_initial_seconds * 2 ** (entry.attempts - 1), section.retry_max_seconds)
        entry.next_attempt = now + backoff
        self.queue.save(entry)
        self.deferred += 1
        log.info("%s: deferred for %ss: %s", entry.id, backoff, entry.last_error)
