"""Web proxy pages: settings and access rules (blocked sites, URL patterns, allowed hours, groups of
users by address), and usage reports drawn as inline SVG (no script, no external library)."""
from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.service import ApplyError
from services.proxy.config import DAYS
from webadmin import core, forms
from webadmin.blueprints.firewall import shown, split_list
from webadmin.core import N_

bp = Blueprint("proxy", __name__, url_prefix="/proxy")
# appliance/clients.py's text while the proxy process restarts, shown translated
RESTARTING = N_("the proxy is restarting: its figures are back in a moment")
NAV = [(N_("Internet"), N_("Web proxy"), "proxy.index"), (N_("Internet"), N_("Web usage"), "proxy.usage")]
PERIODS = {"24h": (N_("last 24 hours"), 86400), "7d": (N_("last 7 days"), 7 * 86400),
           "30d": (N_("last 30 days"), 30 * 86400)}


def _service():
    return core.service("proxy")


def lines(name: str) -> list[str]:
    return [line.strip() for line in (request.form.get(name) or "")[:20000].splitlines() if line.strip()]


def hours_from_form(prefix: str) -> list[dict]:
    """One allowed-hours window from the form, or [] when hours are not restricted."""
    if not forms.checkbox(f"{prefix}restrict"):
        return []
    days = [d for d in DAYS if forms.checkbox(f"{prefix}day_{d}")]
    return [{"days": days, "start": forms.text(f"{prefix}start", 5), "end": forms.text(f"{prefix}end", 5)}]


FIELDS = {"cache_mb", "memory_cache_mb", "max_object_mb", "blocked_domains", "blocked_patterns", "extra_networks",
          "allowed_hours", "group_name", "group_sources", "group_users", "group_blocked_domains",
          "group_blocked_patterns", "group_allowed_hours"}


def _page(errors=None, general=None, form=None, status=200):
    errors, general = shown(errors or {}, general or [], FIELDS)
    config = core.current_config()
    return render_template("proxy/index.html", config=config, px=config.proxy, days=DAYS, errors=errors or {},
                           general=general or [], form=form or {}), status


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/settings", methods=["POST"])
@core.admin_required
def settings():
    form = {k: forms.text(k, 12) for k in ("cache_mb", "memory_cache_mb", "max_object_mb")}
    numbers = {}
    errors = {}
    for key, value in form.items():
        try:
            numbers[key] = int(value)
        except ValueError:
            errors[key] = _("enter a whole number of megabytes")
    if errors:
        return _page(errors, form=request.form.to_dict(), status=400)

    def mutate(doc: dict) -> None:
        px = doc["proxy"]
        px.update(numbers, enabled=forms.checkbox("enabled"), transparent=forms.checkbox("transparent"),
                  sign_in=forms.checkbox("sign_in"), sign_in_password=forms.text("sign_in_password", 8) or "proxy",
                  ftp=forms.checkbox("ftp"), blocked_domains=lines("blocked_domains"),
                  blocked_patterns=lines("blocked_patterns"), allowed_hours=hours_from_form(""),
                  extra_networks=split_list(forms.text("extra_networks", 2000)))

    errors, general = forms.apply_form("web proxy settings", mutate, "proxy", top=True)
    if errors or general:
        return _page(errors, general, request.form.to_dict(), 400)
    flash(_("Web proxy settings saved."), "success")
    return redirect(url_for("proxy.index"))


@bp.route("/groups", methods=["POST"])
@core.admin_required
def group_add():
    name = forms.text("group_name", 40)
    index = len(core.current_config().proxy.groups)
    group = {"name": name, "sources": split_list(forms.text("group_sources", 2000)),
             "users": split_list(forms.text("group_users", 2000)),
             "web_access": forms.checkbox("group_web_access"), "blocked_domains": lines("group_blocked_domains"),
             "blocked_patterns": lines("group_blocked_patterns"), "allowed_hours": hours_from_form("group_")}

    def mutate(doc: dict) -> None:
        doc["proxy"]["groups"].append(group)

    errors, general = forms.apply_form(f"add proxy group {name}", mutate, f"proxy.groups.{index}", top=True)
    if errors or general:
        errors = {f"group_{k}": v for k, v in errors.items()}
        return _page(errors, general, request.form.to_dict(), 400)
    flash(_("Group %(name)s added.", name=name), "success")
    return redirect(url_for("proxy.index"))


@bp.route("/groups/<int:index>/delete", methods=["POST"])
@core.admin_required
def group_delete(index: int):
    general = forms.remove_item("remove a proxy group", "proxy", "groups", index, N_("group"))
    if general:
        return _page(general=general, status=400)
    flash(_("Group removed."), "success")
    return redirect(url_for("proxy.index"))


# -- usage reports --------------------------------------------------------------------------------------
def bars(rows: list[dict], label: str, value: str = "bytes", width: int = 280) -> list[dict]:
    """Rows with the bar length (pixels) an SVG chart needs."""
    top = max((r[value] for r in rows), default=0) or 1
    return [{**r, "label": r[label], "length": max(1, round(width * r[value] / top)) if r[value] else 0}
            for r in rows]


def hourly(rows: list[dict], since: float, now: float, height: int = 120) -> list[dict]:
    """One column per hour of the period (empty hours included), scaled to `height` pixels."""
    by_hour = {r["hour"]: r for r in rows}
    first = int(since) // 3600 * 3600
    hours = list(range(first, int(now) // 3600 * 3600 + 1, 3600))
    if len(hours) > 24 * 31:
        hours = hours[-24 * 31:]
    top = max((r["bytes"] for r in rows), default=0) or 1
    return [{"hour": h, "bytes": by_hour.get(h, {}).get("bytes", 0), "requests": by_hour.get(h, {}).get("requests", 0),
             "height": round(height * by_hour.get(h, {}).get("bytes", 0) / top)} for h in hours]


@bp.route("/usage")
@core.admin_required
def usage():
    period = request.args.get("period", "24h")
    if period not in PERIODS:
        period = "24h"
    title, seconds = PERIODS[period]
    svc = _service()
    now = time.time()
    since = now - seconds
    report = None
    try:
        found = svc.usage(since, 10) if svc is not None else None
    except ApplyError as exc:
        flash(_(str(exc)), "error")  # RESTARTING, translated
        found = None
    if found is not None:
        report = {"sites": bars(found["sites"], "domain"), "clients": bars(found["clients"], "client"),
                  "users": bars(found["users"], "login"), "hours": hourly(found["per_hour"], since, now),
                  "cache": found["cache"]}
    return render_template("proxy/usage.html", report=report, period=period, periods=PERIODS, title=title)
