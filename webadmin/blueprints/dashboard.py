"""The dashboard: every service's health and figures, and the applied configuration revision."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, redirect, render_template, url_for

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
                found[name] = Status("disabled", "switched off in the configuration")
        except Exception:  # e.g. a section the running configuration does not have
            log.exception("enabled() of %s failed", name)
        if not isinstance(found.get(name), Status):
            try:
                found[name] = service.status()
            except Exception as exc:
                log.exception("status of %s failed", name)
                found[name] = Status("down", f"status unavailable: {exc.__class__.__name__}: {exc}")
    return found


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
        status = found[name] if isinstance(found[name], Status) else Status("down", "status unavailable")
        cards.append({"name": name, "title": rt.client(name).title, "status": status,
                      "badge": BADGES.get(status.health, "badge-warn")})
    return render_template("dashboard/index.html", cards=cards, revision=rt.store.current(), config=config,
                           admins=sum(1 for u in config.users if u.role == "admin" and u.enabled),
                           broken=current_app.extensions.get("officebox.broken_pages", {}))
