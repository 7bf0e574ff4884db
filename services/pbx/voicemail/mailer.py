"""Voicemail to e-mail: each new message mailed to its user (pbx.extensions.<ext>.voicemail_email: the WAV
attached, with its MP3 copy too when voicemail_compressed, or a notice only) and the "box 90 % full"
warning, submitted over SMTP to the box's own mail
service on localhost (the same protocol any client speaks; the PBX never imports the mail service).

Crash-safe and never losing a message: a mail to send is first an entry in <voicemail>/.outbox (JSON,
written before anything is tried); an entry leaves the outbox once the mail service took the mail, or
when it refused it for good (logged; the voicemail stays in its box). A failure (mail service down,
SMTP error) is logged and retried with backoff (RETRY_FIRST doubling to RETRY_MAX). With
voicemail_email_delete the message leaves the voicemail box only after its mail was accepted.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.contributions import Endpoint, collect

from .compressed import mp3_copy
from .store import _write_json

log = logging.getLogger("officebox.pbx.voicemail")
RETRY_FIRST = 5.0
RETRY_MAX = 600.0
OUTBOX_LIMIT = 1000  # entries waiting; beyond, new mails are not queued (the messages stay in their boxes)
SMTP_TIMEOUT = 15.0

TEXTS = {
    "en": {"subject": "New voicemail from {caller} ({duration})",
           "body": "You have a new voicemail in mailbox {ext}.\n\nFrom: {caller}\nTime: {time}\nDuration: {duration}\n",
           "attached": "\nThe recording is attached.\n", "unknown": "unknown caller",
           "warn_subject": "Your voicemail box {ext} is almost full",
           "warn_body": "Your voicemail box {ext} is {percent} % full ({count} messages, {minutes} minutes).\n"
                        "Delete the messages you no longer need, or callers will not be able to leave new ones.\n"},
    "fr": {"subject": "Nouveau message vocal de {caller} ({duration})",
           "body": "Vous avez un nouveau message dans la boîte vocale {ext}.\n\nDe : {caller}\nDate : {time}\n"
                   "Durée : {duration}\n",
           "attached": "\nL'enregistrement est joint.\n", "unknown": "appelant inconnu",
           "warn_subject": "Votre boîte vocale {ext} est presque pleine",
           "warn_body": "Votre boîte vocale {ext} est pleine à {percent} % ({count} messages, {minutes} minutes).\n"
                        "Supprimez les messages dont vous n'avez plus besoin, sinon vos correspondants ne pourront "
                        "plus en laisser.\n"},
    "zh_TW": {"subject": "來自 {caller} 的新語音留言（{duration}）",
              "body": "您的語音信箱 {ext} 有一則新留言。\n\n來電者：{caller}\n時間：{time}\n長度：{duration}\n",
              "attached": "\n錄音已附上。\n", "unknown": "未知來電者",
              "warn_subject": "您的語音信箱 {ext} 快滿了",
              "warn_body": "您的語音信箱 {ext} 已使用 {percent}%（{count} 則留言，{minutes} 分鐘）。\n"
                           "請刪除不再需要的留言，否則來電者將無法再留言。\n"},
}


@dataclass(frozen=True)
class MailTarget:
    """Where and as whom to submit: the box's own SMTP listener and its mail domain."""
    port: int
    domain: str
    hostname: str
    timezone: str
    enabled: bool = True
    host: str = "127.0.0.1"

    @classmethod
    def of(cls, config, lab: bool) -> "MailTarget":
        smtp = [e.port for e in collect(config, Endpoint, lab) if e.name == "smtp"]  # the mail service's
        return cls(smtp[0] if smtp else 25, config.system.mail_domain, config.system.hostname,
                   config.system.timezone, bool(smtp))


def duration_text(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


class Mailer:
    def __init__(self, vm) -> None:
        self.vm = vm
        self.dir = vm.root / ".outbox"
        self.target: MailTarget | None = None
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0

    # -- queueing (on the PBX loop) ---------------------------------------------------------------
    def configure(self, target: MailTarget | None) -> None:
        self.target = target
        self.kick()  # what waited for the mail service may go now

    def message_deposited(self, box, msg) -> None:
        settings = self.vm.settings(box.extension)
        if settings.voicemail_email != "off":
            attach = settings.voicemail_email == "attach"
            self._queue({"kind": "message", "ext": box.extension, "msg": msg.id, "mode": settings.voicemail_email,
                         "delete": settings.voicemail_email_delete and attach,
                         "mp3": settings.voicemail_compressed and attach})
        if box.crossed_warning():
            count, seconds = box.used()
            self._queue({"kind": "warning", "ext": box.extension, "percent": int(box.fill() * 100),
                         "count": count, "minutes": round(seconds / 60, 1)})

    def _queue(self, entry: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if len(list(self.dir.glob("*.json"))) >= OUTBOX_LIMIT:
            log.error("voicemail mail outbox full (%d): no mail for box %s (the message stays in the box)",
                      OUTBOX_LIMIT, entry["ext"])
            return
        entry |= {"tries": 0, "next": 0.0, "queued": time.time()}
        _write_json(self.dir / f"{time.time_ns()}-{secrets.token_hex(3)}.json", entry)
        self.kick()

    def kick(self) -> None:
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._flush())
            except RuntimeError:
                pass  # no loop yet: configure() at PBX start flushes what was queued

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def waiting(self) -> int:
        return len(list(self.dir.glob("*.json"))) if self.dir.is_dir() else 0

    # -- sending ----------------------------------------------------------------------------------
    async def _flush(self) -> None:
        target = self.target
        if target is None or not target.enabled or not self.dir.is_dir():
            return
        now = time.time()
        due, later = [], []
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                log.error("voicemail mail outbox: unreadable entry %s removed", path.name)
                path.unlink(missing_ok=True)
                continue
            (due if entry.get("next", 0) <= now else later).append((path, entry))
        for path, entry in due:
            if entry.get("mp3"):
                msg = self.vm.box(entry["ext"]).find(entry["msg"])
                if msg is not None:
                    await asyncio.to_thread(mp3_copy, msg.wav)  # made at deposit already, unless it failed
            mail = self._compose(entry, target)
            if mail is None:
                path.unlink(missing_ok=True)
                continue
            outcome = await asyncio.to_thread(_submit, target, mail)
            if outcome is None:
                path.unlink(missing_ok=True)
                self.sent += 1
                self._after_sent(entry)
            elif outcome.startswith("refused"):
                log.error("voicemail mail for box %s refused for good, dropped (the message stays in the box): %s",
                          entry["ext"], outcome)
                path.unlink(missing_ok=True)
            else:
                entry["tries"] += 1
                entry["next"] = time.time() + min(RETRY_MAX, RETRY_FIRST * 2 ** (entry["tries"] - 1))
                _write_json(path, entry)
                later.append((path, entry))
                log.warning("voicemail mail for box %s not sent yet (try %d, again in %.0f s): %s", entry["ext"],
                            entry["tries"], entry["next"] - time.time(), outcome)
                break  # the mail service is not taking mail: the others wait too
        if later:
            wait = max(0.5, min(e["next"] for _, e in later) - time.time())
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(wait, self.kick)

    def _compose(self, entry: dict, target: MailTarget) -> EmailMessage | None:
        user = self.vm.user(entry["ext"])
        if user is None:
            log.info("voicemail mail for box %s dropped: no such user any more", entry["ext"])
            return None
        texts = TEXTS.get(user.language, TEXTS["en"])
        mail = EmailMessage()
        mail["From"] = formataddr(("Voicemail", f"voicemail@{target.domain}"))
        mail["To"] = formataddr((user.full_name, user.mail_address(target.domain)))
        if entry["kind"] == "warning":
            mail["Subject"] = texts["warn_subject"].format(ext=entry["ext"])
            mail.set_content(texts["warn_body"].format(ext=entry["ext"], percent=entry["percent"],
                                                       count=entry["count"], minutes=entry["minutes"]))
            return mail
        msg = self.vm.box(entry["ext"]).find(entry["msg"])
        if msg is None:
            log.info("voicemail mail for box %s dropped: message %s was deleted first", entry["ext"], entry["msg"])
            return None
        env = msg.envelope
        caller = " ".join(p for p in (env.get("caller_name", ""), f"<{env['caller']}>" if env.get("caller") else "")
                          if p) or texts["unknown"]
        fields = {"ext": entry["ext"], "caller": caller, "duration": duration_text(msg.seconds),
                  "time": _local_time(env.get("time", 0.0), target.timezone)}
        mail["Subject"] = texts["subject"].format(**fields)
        attach = entry["mode"] == "attach"
        mail.set_content(texts["body"].format(**fields) + (texts["attached"] if attach else ""))
        mail["X-Voicemail-Id"] = msg.id
        if attach:
            mail.add_attachment(msg.wav.read_bytes(), maintype="audio", subtype="wav",
                                filename=f"voicemail-{msg.id}.wav")
            mp3 = msg.wav.with_suffix(".mp3")
            if entry.get("mp3") and mp3.is_file():
                mail.add_attachment(mp3.read_bytes(), maintype="audio", subtype="mpeg",
                                    filename=f"voicemail-{msg.id}.mp3")
        return mail

    def _after_sent(self, entry: dict) -> None:
        if entry["kind"] == "message" and entry.get("delete"):
            box = self.vm.box(entry["ext"])
            msg = box.find(entry["msg"])
            if msg is not None:
                box.delete(msg)


def _submit(target: MailTarget, mail: EmailMessage) -> str | None:
    """None once the mail service took the mail; "refused: ..." for good; another text to retry."""
    try:
        with smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(mail)
        return None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        return f"{'refused' if all(c >= 500 for c in codes) else 'later'}: {exc.recipients}"
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        return f"{'refused' if exc.smtp_code >= 500 else 'later'}: {exc.smtp_code} {exc.smtp_error!r}"
    except (OSError, smtplib.SMTPException) as exc:
        return f"later: {exc}"


def _local_time(when: float, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    return datetime.fromtimestamp(when, tz).strftime("%Y-%m-%d %H:%M")

