"""The dashboard: every service's health and figures, and the applied configuration revision."""
from __future__ import annotations

import logging
import re

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_babel import gettext as _

from appliance.service import Status
from webadmin import core
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
BADGES = {"ok": "badge-ok", "degraded": "badge-warn", "starting": "badge-warn", "down": "badge-bad",
          "disabled": "badge-muted"}


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


@bp.route("/")
@core.login_required
def index():
    if not core.sees_admin_pages(core.current_user()):
        return redirect(url_for("account.index"))
    rt = core.runtime()
    config = core.current_config()
    cards = []
    found = statuses(rt, config)
    for name in rt.services:
        status = found[name] if isinstance(found[name], Status) else Status("down", _("status unavailable"))
        cards.append({"name": name, "title": rt.client(name).title, "status": status,
                      "summary": summary_text(status.summary),
                      "badge": BADGES.get(status.health, "badge-warn")})
    return render_template("dashboard/index.html", cards=cards, revision=rt.store.current(), config=config,
                           admins=sum(1 for u in config.users if u.role == "admin" and u.enabled),
                           broken=current_app.extensions.get("officebox.broken_pages", {}))
