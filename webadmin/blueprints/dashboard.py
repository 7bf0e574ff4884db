"""The dashboard: the state of the office in cards (Internet, trunks, phones, calls, mail queue, disk,
memory, uptime, updates), each linking to the page that fixes it; every service's health; the applied
configuration revision. /dashboard.json gives the same cards for the page's 10 s refresh
(static/dashboard.js; the page works without it). Services are read through their typed clients only."""
from __future__ import annotations

import logging
import re
import shutil
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_datetime, ngettext
from flask_babel import gettext as _

from appliance import firmware, notify
from appliance.notify import DISK_THRESHOLD, trunk_reason
from appliance.service import ApplyError, Status
from webadmin import core, progress
from webadmin.audit import audit
from webadmin.core import N_

bp = Blueprint("dashboard", __name__)
NAV = [(N_("Overview"), N_("Dashboard"), "dashboard.index")]
log = logging.getLogger("officebox.webadmin")
# shown translated: the services' titles and health words (appliance/service.py)
SHOWN_WORDS = (N_("ok"), N_("degraded"), N_("starting"), N_("down"), N_("disabled"), N_("Network interfaces"),
               N_("Phone provisioning"), N_("Firewall and NAT"), N_("VPN (IPsec between offices, WireGuard for staff)"),
               N_("Time server (NTP)"), N_("Web proxy and cache"), N_("DNS server"), N_("Telephony (PBX)"),
               N_("Mail"), N_("DHCP server"))
# what the supervisor and a service's process host say while a process starts, restarts or stops
# (appliance/supervisor.py, servicehost.py, runtime.py), shown in the user's language
FIXED_SUMMARIES = (N_("starting"), N_("switched off"), N_("failed to start"), N_("appliance not running"))
PATTERNS = ((re.compile(r"restarting (?P<names>.+)"), N_("restarting %(names)s")),
            (re.compile(r"starting (?P<names>.+)"), N_("starting %(names)s")),
            (re.compile(r"its process exited \((?P<code>-?\d+)\)"), N_("its process exited (%(code)s)")),
            (re.compile(r"status unavailable: (?P<reason>.+)"), N_("status unavailable: %(reason)s")))
# the notification texts and trunk reasons (appliance/notify.py TEXTS, SIP_REASONS), shown translated
NOTICES = (N_("Trunk %(name)s is not registered: %(reason)s (SIP %(status)d)"),
           N_("The data disk is %(used)d %% full (%(free)d MiB free)"),
           N_("The %(service)s service keeps restarting: %(error)s"),
           N_("The box certificate expires on %(date)s"), N_("The box certificate expired on %(date)s"),
           N_("the carrier refused the credentials"), N_("the carrier does not know this account"),
           N_("no answer from the carrier"), N_("the carrier is unavailable"),
           N_("the carrier refused the registration"), N_("The scheduled backup failed: %(error)s"),
           N_("%(user)s passed the monthly call budget in %(month)s: %(cost)s of %(budget)s %(currency)s"))
BADGES = {"ok": "badge-ok", "degraded": "badge-warn", "starting": "badge-warn", "down": "badge-bad",
          "disabled": "badge-muted"}
STATES = ("ok", "warn", "bad", "muted")


def statuses(rt, config) -> dict[str, Status]:
    """Switched-off services say so; else the supervisor's view when the runtime offers it (it knows
    about child daemons), else each service's own."""
    found: dict[str, Status] = {}
    try:
        found = dict(rt.status()) if callable(getattr(rt, "status", None)) else {}
    except Exception:  # a failing status must not break the dashboard
        log.exception("runtime status failed")
    for name in rt.services:
        service = rt.client(name)
        try:
            if not service.enabled(config):
                found[name] = Status("disabled", _("switched off in the configuration"))
        except Exception:  # e.g. a section the running configuration does not have
            log.exception("enabled() of %s failed", name)
        if not isinstance(found.get(name), Status):
            try:
                found[name] = service.status()
            except Exception as exc:
                log.exception("status of %s failed", name)
                found[name] = Status("down", _("status unavailable: %(reason)s",
                                               reason=f"{exc.__class__.__name__}: {exc}"))
    return found


def summary_text(summary: str) -> str:
    """A status summary in the user's language when it is one the process hosts write; else as it is."""
    if summary in FIXED_SUMMARIES:
        return _(summary)
    for pattern, message in PATTERNS:
        if found := pattern.fullmatch(summary or ""):
            return _(message, **found.groupdict())
    return summary


def card(state: str, value: str, detail: str = "") -> dict:
    return {"state": state if state in STATES else "warn", "value": value, "detail": detail}


def _internet(rt, config, found: dict[str, Status]) -> dict:
    network = found.get("network")
    if rt.ctx.lab:
        return card("muted", _("Host network"), _("lab mode: the host's networking is left alone"))
    wan = config.network.wan
    if wan.mode == "none":
        return card("muted", _("Not configured"), _("no WAN connection is set up"))
    if network is None:
        return card("muted", _("Unknown"))
    address = network.figures.get("WAN lease") or network.figures.get(wan.interface) or ""
    up = network.health == "ok" and any(ch.isdigit() for ch in str(address))
    return card("ok" if up else "bad", _("Up") if up else _("Down"),
                _("WAN %(address)s", address=address) if up else network.summary)


def _day_start(config) -> float:
    try:
        zone = ZoneInfo(config.system.timezone)
    except Exception:  # an unknown zone name: the box's own clock
        zone = None
    now = datetime.now(zone)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _telephony(rt, config) -> tuple[dict, dict, dict, list[int]]:
    """The trunks, phones and calls cards and the calls per hour today."""
    extensions = sum(1 for u in config.users if u.enabled and u.extension)
    provisioned = len(config.provisioning.phones) if hasattr(config, "provisioning") else 0
    pbx = rt.client("pbx")
    if pbx is None or not pbx.enabled(config):
        off = card("muted", _("Switched off"), _("telephony is switched off"))
        return off, off, off, [0] * 24
    try:
        summary = pbx.summary(_day_start(config))
    except Exception as exc:
        log.warning("PBX summary failed: %s", exc)
        gone = card("warn", _("Unknown"), _("the PBX is not answering: %(error)s", error=exc))
        return gone, gone, gone, [0] * 24
    registering = [t for t in summary["trunks"] if t["register"]]
    down = [t for t in registering if not t["registered"]]
    if not summary["trunks"]:
        trunks = card("muted", _("No trunk"), _("no carrier line is set up"))
    elif not registering:
        trunks = card("ok", _("%(num)d without registration", num=len(summary["trunks"])))
    else:
        why = "; ".join(f"{t['name']}: " + (trunk_why(t["last_status"]) if t["last_status"] else _("trying"))
                        for t in down)
        trunks = card("bad" if down else "ok", _("%(up)d of %(all)d registered", up=len(registering) - len(down),
                                                  all=len(registering)), why)
    registered = summary["registered_extensions"]
    phones = card("ok" if registered >= extensions else "warn",
                  _("%(up)d of %(all)d extensions registered", up=registered, all=extensions),
                  ngettext("%(num)d phone provisioned", "%(num)d phones provisioned", provisioned))
    calls = card("ok", _("%(num)d now", num=summary["active_calls"]), _("%(num)d today", num=summary["calls_today"]))
    return trunks, phones, calls, summary["calls_per_hour"]


def _mail(rt, config) -> dict:
    mail = rt.client("mail")
    if mail is None or not mail.enabled(config):
        return card("muted", _("Switched off"))
    try:
        queue = mail.queue_entries()
    except Exception as exc:
        return card("warn", _("Unknown"), _("the mail service is not answering: %(error)s", error=exc))
    failing = [e for e in queue if e.get("last_error")]
    detail = _("last error: %(error)s", error=failing[0]["last_error"]) if failing else ""
    return card("warn" if failing else "ok", _("%(num)d waiting", num=len(queue)), detail)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _disk(rt) -> dict:
    usage = shutil.disk_usage(rt.ctx.data_dir)
    used = 100 * (usage.total - usage.free) / usage.total if usage.total else 0
    state = "bad" if used >= DISK_THRESHOLD else "warn" if used >= DISK_THRESHOLD - 10 else "ok"
    return card(state, _("%(used)d %% used", used=round(used)),
                _("%(free)s free of %(total)s", free=_gib(usage.free), total=_gib(usage.total)))


def _memory() -> dict:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.count(":") == 1}
        total, available = info["MemTotal"], info["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return card("muted", _("Unknown"))
    used = 100 * (total - available) / total
    return card("bad" if used >= 95 else "warn" if used >= 85 else "ok", _("%(used)d %% used", used=round(used)),
                _("%(free)s available of %(total)s", free=_gib(available), total=_gib(total)))


def _uptime() -> dict:
    try:
        with open("/proc/uptime") as f:
            seconds = int(float(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return card("muted", _("Unknown"))
    days, rest = divmod(seconds, 86400)
    text = (_("%(days)d d %(hours)d h", days=days, hours=rest // 3600) if days
            else _("%(hours)d h %(minutes)d min", hours=rest // 3600, minutes=rest % 3600 // 60))
    return card("ok", text, _("since the last start of the box"))


def _updates(rt) -> dict:
    box = firmware.BoxFirmware(rt.ctx.data_dir)
    if (box.slots.root / firmware.ROLLED_BACK).exists():
        return card("bad", _("Firmware %(version)s", version=box.running()),
                    _("the last update failed to start and was rolled back"))
    previous = box.slots.previous()
    return card("ok", _("Firmware %(version)s", version=box.running()),
                _("previous: %(version)s (roll back possible)", version=previous) if previous else "")


def _backup(rt, config) -> dict:
    if not config.backups.enabled:
        return card("muted", _("Not scheduled"), _("no backup is made by itself"))
    state = rt.backups.status()
    last = state.get("last_success")
    when = format_datetime(datetime.fromtimestamp(float(last), UTC), "short") if last else None
    if state.get("last_error"):
        return card("bad", _("Failed"), state["last_error"])
    if not last:
        return card("warn", _("None yet"), _("the first one is made at the next check"))
    if time.time() - float(last) > (8 if config.backups.frequency == "weekly" else 2) * 86400:
        return card("warn", when, _("older than the schedule"))
    return card("ok", when, state.get("last_name", ""))


LINKS = {"internet": "network.index", "trunks": "pbx.trunks", "phones": "lan.phones", "calls": "pbx.calls",
         "mail": "mail.queue", "disk": "system.index", "memory": None, "uptime": "system.index",
         "updates": "system.index", "backup": "backups.index"}
TITLES = {"internet": N_("Internet"), "trunks": N_("Trunks"), "phones": N_("Phones"), "calls": N_("Calls"),
          "mail": N_("Mail queue"), "disk": N_("Disk"), "memory": N_("Memory"), "uptime": N_("Uptime"),
          "updates": N_("Updates"), "backup": N_("Last backup")}


def overview(rt, config, found: dict[str, Status]) -> tuple[dict[str, dict], list[int]]:
    """The state cards (plain JSON: {id: {"state", "value", "detail"}}) and the calls per hour today."""
    trunks, phones, calls, per_hour = _telephony(rt, config)
    cards = {"internet": _internet(rt, config, found), "trunks": trunks, "phones": phones, "calls": calls,
             "mail": _mail(rt, config), "disk": _disk(rt), "memory": _memory(), "uptime": _uptime(),
             "updates": _updates(rt), "backup": _backup(rt, config)}
    return cards, per_hour


def chart(per_hour: list[int]) -> dict:
    """Bars for the calls-per-hour SVG: height in 0..60 px."""
    top = max(per_hour) or 1
    return {"bars": [{"hour": h, "calls": n, "height": round(60 * n / top)} for h, n in enumerate(per_hour)],
            "top": max(per_hour)}


def _state_page() -> tuple[dict, dict, dict]:
    rt = core.runtime()
    config = core.current_config()
    found = statuses(rt, config)
    cards, per_hour = overview(rt, config, found)
    return found, cards, chart(per_hour)


@bp.route("/")
@core.login_required
def index():
    if not core.sees_admin_pages(core.current_user()):
        return redirect(url_for("account.index"))
    rt = core.runtime()
    config = core.current_config()
    found, state, calls = _state_page()
    services = []
    for name in rt.services:
        status = found[name] if isinstance(found[name], Status) else Status("down", _("status unavailable"))
        services.append({"name": name, "title": rt.client(name).title, "status": status,
                         "restartable": restartable(rt, name, status),
                         "summary": summary_text(status.summary),
                         "badge": BADGES.get(status.health, "badge-warn")})
    return render_template("dashboard/index.html", cards=services, state=state, titles=TITLES, links=LINKS,
                           chart=calls, revision=rt.store.current(), config=config,
                           admins=sum(1 for u in config.users if u.role == "admin" and u.enabled),
                           broken=current_app.extensions.get("officebox.broken_pages", {}))


@bp.route("/dashboard.json")
@core.admin_required
def state_json():
    """The cards and the chart for the page's refresh."""
    _found, state, calls = _state_page()
    return jsonify(cards=state, chart=render_template("dashboard/calls_chart.html", chart=calls),
                   notifications=[p["text"] for p in notifications()], time=time.time())


def trunk_why(status: int) -> str:
    return _("%(reason)s (SIP %(status)d)", reason=_(trunk_reason(status)), status=status)


def notice_text(condition: dict) -> str:
    """A notification condition in the reader's language (its English text if of an unknown kind)."""
    kind, args = condition.get("kind"), dict(condition.get("args") or {})
    if kind not in notify.TEXTS:
        return condition["message"]
    reason = args.get("reason")
    if reason:
        args.update(reason=_(reason))
    return _(notify.TEXTS[kind], **args)


def notifications() -> list[dict]:
    """The notification conditions in force (appliance/notify.py), each with its "text" translated, for
    the banner on every admin page."""
    notifier = getattr(core.runtime(), "notifier", None)
    return [{**c, "text": notice_text(c)} for c in notifier.active()] if notifier is not None else []


@bp.app_context_processor
def _banner() -> dict:
    return {"notifications": notifications}


# -- restarting one service (its own process when isolated), asked once on a confirmation page ---------
RESTART_TIMEOUT = 90


def restartable(rt, name: str, status: Status) -> bool:
    """A running (or failing) service of a serving appliance; not the network (the admin's own link)."""
    return rt.supervisor is not None and name != "network" and status.health not in ("disabled", "starting")


@bp.route("/services/<name>/restart", methods=["GET", "POST"])
@core.admin_required
def restart_service(name: str):
    rt = core.runtime()
    client = rt.client(name)
    if client is None:
        abort(404)
    if request.method == "GET":
        return render_template("dashboard/restart.html", name=name, title=client.title)
    if rt.supervisor is None or name == "network":
        flash(_("%(service)s cannot be restarted here.", service=_(client.title)), "error")
        return redirect(url_for("dashboard.index"))
    audit(f"restart of the {name} service")
    supervisor = rt.supervisor

    def work() -> dict:
        """Stopped and started again in the background (up to RESTART_TIMEOUT), the progress page following."""
        progress.step("restart")
        try:
            status = supervisor.run(supervisor.restart(name), RESTART_TIMEOUT)
        except (ApplyError, TimeoutError) as exc:
            raise progress.Failed(str(exc) or "timed out", "" if str(exc) else "timeout") from exc
        return {"health": status.health, "summary": status.summary}

    task = progress.tasks().start(core.current_user().login, "service_restart", work, name=name, title=client.title)
    return redirect(url_for("system.task", task_id=task))


progress.register("service_restart", "tasks/service_restart.html", lambda task: {"summary_text": summary_text})
