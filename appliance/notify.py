"""Notifications: the admin hears, by e-mail (system.admin_email) and a banner in the web admin, when a
trunk stops registering, the data disk passes DISK_THRESHOLD %, a service keeps restarting, a scheduled
backup fails, the box certificate nears its end or a user's outgoing calls pass their monthly budget
(pbx.accounting.budgets: told once a month). Each condition is told once when it starts and once
when it clears; the conditions in force survive a restart (state/core/notify.json), so a restart sends nothing new.

Mail goes to the box's own mail service (SMTP on localhost, from notifications@<mail domain>); a mail
that cannot be sent now waits for the next check (at most OUTBOX_LIMIT kept); one the mail service refuses
for good (e.g. an outside address while localhost may not relay) is dropped with an error in the log.
Every check runs off the loop. The mail is written in the language of the admin user whose address it
goes to, else the box's (the web admin's catalogues: these texts are marked with N_ and extracted too).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import smtplib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from babel import Locale
from babel.support import NullTranslations, Translations
from cryptography import x509

from appliance.context import Context
from appliance.fsutil import atomic_write
from appliance.supervisor import STABLE_AFTER

log = logging.getLogger("officebox.notify")
CATALOGUES = Path(__file__).resolve().parent.parent / "webadmin" / "translations"


def N_(text: str) -> str:  # noqa: N802 - marks a message for the catalogue, translated when the mail is written
    return text


CHECK_INTERVAL = float(os.environ.get("OFFICEBOX_NOTIFY_INTERVAL", "15"))  # lab tests of the running box shorten it
DISK_THRESHOLD = 90.0  # per cent of the data disk
CERT_WARN_DAYS = 14
RESTARTS = 3  # failed starts or crashes in a row that make "keeps restarting"
OUTBOX_LIMIT = 20
SMTP_TIMEOUT = 10.0
SIP_REASONS = {401: N_("the carrier refused the credentials"), 403: N_("the carrier refused the credentials"),
               404: N_("the carrier does not know this account"), 407: N_("the carrier refused the credentials"),
               408: N_("no answer from the carrier"), 503: N_("the carrier is unavailable")}
REFUSED = N_("the carrier refused the registration")
# the conditions' messages (English; the web admin marks the same texts for translation: dashboard.NOTICES)
TEXTS = {"trunk": N_("Trunk %(name)s is not registered: %(reason)s (SIP %(status)d)"),
         "disk": N_("The data disk is %(used)d %% full (%(free)d MiB free)"),
         "restarts": N_("The %(service)s service keeps restarting: %(error)s"),
         "certificate": N_("The box certificate expires on %(date)s"),
         "certificate_expired": N_("The box certificate expired on %(date)s"),
         "backup": N_("The scheduled backup failed: %(error)s"),
         "budget": N_("%(user)s passed the monthly call budget in %(month)s: %(cost)s of %(budget)s %(currency)s")}
MAIL_TEXTS = (N_("This needs attention"), N_("This is resolved"), N_("Resolved: %(message)s"),
              N_("Details on the dashboard of %(host)s."))


def translations(language: str) -> NullTranslations:
    """The web admin's catalogue for `language` (en, fr, zh_TW); English when there is none."""
    try:
        return Translations.load(str(CATALOGUES), [Locale.parse(language)])
    except (ValueError, OSError):
        return NullTranslations()


def localised(kind: str, args: dict, language: str) -> str:
    """TEXTS[kind] % args in `language`, with the words among the args (a trunk's reason) translated too."""
    tr = translations(language)
    words = {k: tr.gettext(v) if isinstance(v, str) else v for k, v in args.items()}
    return tr.gettext(TEXTS[kind]) % words


def describe(kind: str, args: dict) -> str:
    return TEXTS[kind] % args


def trunk_reason(status: int) -> str:
    """Why a trunk is not registered, from its last SIP answer, in plain words."""
    return SIP_REASONS.get(status, REFUSED)


def trunk_problems(trunks: list[dict]) -> dict[str, tuple[str, dict]]:
    """Registering trunks whose last attempt failed (a trunk not tried yet is not a problem)."""
    return {f"trunk:{t['name']}": ("trunk", {"name": t["name"], "reason": trunk_reason(t["last_status"]),
                                             "status": t["last_status"]})
            for t in trunks if t.get("register") and not t.get("registered") and t.get("last_status")}


def live_trunks(pbx: Any) -> list[dict]:
    """The PBX's trunks; while its process restarts the appliance's copy knows none, which must not
    read as "every trunk is fine again"."""
    if not pbx.reachable:
        raise RuntimeError("the PBX is restarting")
    return pbx.trunks()


def budget_problems(pbx: Any, config: Any, now: float | None = None) -> dict[str, tuple[str, dict]]:
    """Users whose outgoing calls this month cost more than their budget (pbx.accounting.budgets); the key
    names the month, so each user is told once a month."""
    from services.pbx.accounting import month_start
    settings, zone = config.pbx.accounting, config.system.timezone
    start = month_start(time.time() if now is None else now, zone)
    month = datetime.fromtimestamp(start + 86400 * 2, UTC).strftime("%Y-%m")
    spent = pbx.accounting_spend(start)
    found = {}
    for login, budget in settings.budgets.items():
        user = config.user(login)
        cost = spent.get(user.extension, 0.0) if user is not None and user.extension else 0.0
        if cost > budget:
            found[f"budget:{login}:{month}"] = ("budget", {
                "user": user.full_name, "month": month, "cost": f"{cost:.2f}", "budget": f"{budget:.2f}",
                "currency": settings.currency})
    return found


def disk_problems(path: Path, threshold: float) -> dict[str, tuple[str, dict]]:
    usage = shutil.disk_usage(path)
    used = 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0
    if used < threshold:
        return {}
    return {"disk": ("disk", {"used": round(used), "free": usage.free // 2**20})}


def restart_problems(supervisor: Any) -> dict[str, tuple[str, dict]]:
    """Services that failed RESTARTS starts in a row, or crashed that often without running stably."""
    found = {}
    now = time.monotonic()
    for name, unit in list(supervisor.units.items()):
        failing = unit.state != "running" and unit.failures >= RESTARTS
        crashing = unit.state == "running" and unit.crashes >= RESTARTS and now - unit.started_at < STABLE_AFTER
        if failing or crashing:
            found[f"restarts:{name}"] = ("restarts", {"service": name, "error": unit.error or "-"})
    return found


def certificate_problems(cert_path: Path, days: int = CERT_WARN_DAYS) -> dict[str, tuple[str, dict]]:
    if not cert_path.exists():
        return {}
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    left = cert.not_valid_after_utc - datetime.now(UTC)
    if left.days >= days:
        return {}
    kind = "certificate" if left.total_seconds() > 0 else "certificate_expired"
    return {"certificate": (kind, {"date": cert.not_valid_after_utc.strftime("%Y-%m-%d")})}


def refused_for_good(exc: smtplib.SMTPException) -> bool:
    """A 5xx answer (for every recipient): sending again would not help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return getattr(exc, "smtp_code", 0) >= 500


class Notifier:
    """`config`, `client` and `supervisor` are the runtime's (callables: they change while it runs)."""

    def __init__(self, ctx: Context, config: Callable[[], Any], client: Callable[[str], Any],
                 supervisor: Callable[[], Any], disk_threshold: float = DISK_THRESHOLD, backups: Any = None) -> None:
        self.ctx = ctx
        self.backups = backups  # appliance.backupjobs.BackupJobs
        self.config, self.client, self.supervisor = config, client, supervisor
        self.disk_threshold = disk_threshold
        self.path = ctx.state_dir("core") / "notify.json"
        self._lock = threading.Lock()
        self._active: dict[str, dict] = {}
        self._outbox: list[dict] = []
        self._load()

    def _load(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
            self._active, self._outbox = dict(saved["active"]), list(saved["outbox"])[-OUTBOX_LIMIT:]
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.error("notification state unreadable, starting afresh: %s", exc)

    def _save(self) -> None:
        atomic_write(self.path, json.dumps({"active": self._active, "outbox": self._outbox}).encode(), mode=0o600)

    def active(self) -> list[dict]:
        """The conditions in force, oldest first: {"key", "kind", "args", "message", "since"} (the banner
        shows TEXTS[kind] % args in the reader's language)."""
        with self._lock:
            return sorted(({"key": k, **v} for k, v in self._active.items()), key=lambda p: p["since"])

    # -- checks ---------------------------------------------------------------------------------
    def _sources(self) -> dict[str, Callable[[], dict[str, tuple[str, dict]]]]:
        config = self.config()
        sources: dict[str, Callable[[], dict[str, tuple[str, dict]]]] = {
            "disk": lambda: disk_problems(self.ctx.data_dir, self.disk_threshold),
            "certificate": lambda: certificate_problems(self.ctx.data_dir / "certs" / f"{config.system.hostname}.crt"),
        }
        pbx = self.client("pbx")
        if pbx is not None and pbx.enabled(config):
            sources["trunk"] = lambda: trunk_problems(live_trunks(pbx))
            if config.pbx.accounting.budgets:
                sources["budget"] = lambda: budget_problems(pbx, config)
        if self.backups is not None:
            sources["backup"] = self.backups.problems
        supervisor = self.supervisor()
        if supervisor is not None:
            sources["restarts"] = lambda: restart_problems(supervisor)
        return sources

    def problems(self) -> dict[str, tuple[str, dict]]:
        """Every condition in force now. A source that cannot tell (e.g. the PBX restarting) keeps its
        previous conditions: a restart neither clears nor repeats them."""
        found: dict[str, tuple[str, dict]] = {}
        for kind, source in self._sources().items():
            try:
                found.update(source())
            except Exception as exc:
                log.warning("notification check %s failed: %s", kind, exc)
                with self._lock:
                    found.update({k: (v["kind"], v["args"]) for k, v in self._active.items()
                                  if k.split(":")[0] == kind})
        return found

    def check(self) -> list[dict]:
        """Compare with the conditions in force, queue a mail per start and per clearing, send the queue.
        Blocking: run it in a thread. Returns the events of this check."""
        now = time.time()
        current = self.problems()
        events = []
        with self._lock:
            for key, (kind, args) in current.items():
                condition = {"kind": kind, "args": args, "message": describe(kind, args)}
                if key not in self._active:
                    self._active[key] = {**condition, "since": now}
                    events.append({"key": key, "state": "started", "message": condition["message"], "time": now,
                                   "kind": kind, "args": args})
                else:
                    self._active[key].update(condition)
            for key in [k for k in self._active if k not in current]:
                gone = self._active.pop(key)
                events.append({"key": key, "state": "cleared", "message": gone["message"], "time": now,
                               "kind": gone["kind"], "args": gone["args"]})
            self._outbox = (self._outbox + events)[-OUTBOX_LIMIT:]
            self._save()
        for event in events:
            log.warning("notification %s: %s", event["state"], event["message"])
        self._send_outbox()
        return events

    # -- mail -----------------------------------------------------------------------------------
    def _message(self, event: dict, config: Any) -> EmailMessage:
        language = next((u.language for u in config.users if u.email == config.system.admin_email),
                        config.system.language)
        tr = translations(language)
        text = event["message"]
        if event.get("kind") in TEXTS and isinstance(event.get("args"), dict):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                text = localised(event["kind"], event["args"], language)
        msg = EmailMessage()
        cleared = event["state"] == "cleared"
        subject = tr.gettext("Resolved: %(message)s") % {"message": text} if cleared else text
        msg["Subject"] = f"[{config.system.hostname}] {subject}"
        msg["From"] = f"OfficeBox {config.system.hostname} <notifications@{config.system.mail_domain}>"
        msg["To"] = config.system.admin_email
        stamp = datetime.fromtimestamp(event["time"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        state = tr.gettext("This is resolved") if cleared else tr.gettext("This needs attention")
        details = tr.gettext("Details on the dashboard of %(host)s.") % {
            "host": f"{config.system.hostname}.{config.system.domain}"}
        msg.set_content(f"{state} ({stamp}):\n\n  {text}\n\n{details}\n")
        msg["Content-Language"] = language.replace("_", "-")  # after set_content, which clears Content-*
        return msg

    def _send_outbox(self) -> None:
        config = self.config()
        if not self._outbox:
            return
        if not config.system.admin_email:
            with self._lock:
                self._outbox.clear()  # no address: the banner alone tells
                self._save()
            return
        mail = self.client("mail")
        if mail is None or not mail.enabled(config):
            return
        try:
            with smtplib.SMTP("127.0.0.1", config.mail.port(self.ctx.lab, "smtp"), timeout=SMTP_TIMEOUT) as smtp:
                while self._outbox:
                    try:
                        smtp.send_message(self._message(self._outbox[0], config))
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                        if not refused_for_good(exc):
                            raise
                        log.error("notification mail to %s refused, dropped (the banner still shows it): %s",
                                  config.system.admin_email, exc)
                    with self._lock:
                        self._outbox.pop(0)
                        self._save()
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("notification mail not sent yet (%d waiting): %s", len(self._outbox), exc)

    async def run(self, interval: float = CHECK_INTERVAL) -> None:
        """The appliance loop's task: a check every `interval` s, each in a worker thread."""
        while True:
            try:
                await asyncio.to_thread(self.check)
            except Exception:
                log.exception("notification check failed")
            await asyncio.sleep(interval)
