"""Firewall pages: zone policies and settings, rules, port forwards, and the commit-confirm banner.

A change that touches access to the box is live at once but rolled back unless confirmed in time
(services.firewall); the page shows the countdown (an SVG animation, no script) and a Confirm button,
and reloads itself every few seconds while a change waits.
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("firewall", __name__, url_prefix="/firewall")
NAV = [(N_("Internet"), N_("Firewall"), "firewall.index")]
ZONES = ("lan", "voice", "vpn")


def _service():
    return core.service("firewall")


def split_list(value: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", value) if item]


def shown(errors: dict[str, str], general: list[str], fields: set[str]) -> tuple[dict[str, str], list[str]]:
    """Errors for fields the page has stay by their field; the others join the general messages."""
    general = list(general)
    for name, message in errors.items():
        if name not in fields:
            general.append(f"{name.replace('_', ' ')}: {message}")
    return {k: v for k, v in errors.items() if k in fields}, general


FIELDS = {"admin_from_wan", "vpn_interfaces", "vpn_networks", "sip_peers", "new_connections_per_second", "burst",
          "confirm_timeout", "name", "action", "source_zone", "destination", "protocol", "ports", "sources",
          "destinations", "fwd_name", "fwd_protocol", "wan_port", "to_address", "to_port", "fwd_sources"}


def _page(errors=None, general=None, form=None, status=200):
    errors, general = shown(errors or {}, general or [], FIELDS)
    config = core.current_config()
    svc = _service()
    confirmation = core.runtime().engine.confirmation
    pending = confirmation.pending()
    live = bool(svc and svc.live())
    body = render_template("firewall/index.html", config=config, fw=config.firewall, pending=pending,
                           last_rollback=confirmation.last_rollback, live=live, counters=svc.counters() if live else [],
                           errors=errors or {}, general=general or [], form=form or {}, zones=ZONES)
    response = make_response(body, status)
    if pending:
        response.headers["Refresh"] = "5"
    return response


def _saved(message: str):
    pending = core.runtime().engine.confirmation.pending()
    if pending:
        flash(_("%(message)s This change affects access to the box: confirm it within %(seconds)d seconds or it is "
                "undone.", message=message, seconds=round(pending["seconds_left"])), "warning")
    else:
        flash(message, "success")
    return redirect(url_for("firewall.index"))


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/confirm", methods=["POST"])
@core.admin_required
def confirm():
    if core.runtime().engine.confirmation.confirm():
        flash(_("Change confirmed: it stays."), "success")
    else:
        flash(_("There was no change waiting for confirmation (it may have been rolled back)."), "warning")
    back = request.form.get("next", "")
    local = back.startswith("/") and not back.startswith("//") and "\\" not in back
    return redirect(back if local else url_for("firewall.index"))


@bp.route("/settings", methods=["POST"])
@core.admin_required
def settings():
    form = {k: forms.text(k, 2000) for k in ("admin_from_wan", "vpn_interfaces", "vpn_networks", "sip_peers",
                                             "new_connections_per_second", "burst", "confirm_timeout")}
    errors: dict[str, str] = {}
    numbers = {}
    for key in ("new_connections_per_second", "burst", "confirm_timeout"):
        try:
            numbers[key] = int(form[key])
        except ValueError:
            errors[key] = _("enter a whole number")
    if errors:
        return _page(errors, form=form, status=400)

    def mutate(doc: dict) -> None:
        fw = doc["firewall"]
        fw.update(numbers)
        for key in ("admin_from_wan", "vpn_interfaces", "vpn_networks", "sip_peers"):
            fw[key] = split_list(form[key])
        for key in ("anti_lockout", "ping_from_wan", "masquerade", "confirm_all_changes"):
            fw[key] = forms.checkbox(key)
        for zone in ZONES:
            fw[zone]["box"] = forms.checkbox(f"{zone}_box")
            fw[zone]["internet"] = forms.checkbox(f"{zone}_internet")

    errors, general = forms.apply_form("firewall settings", mutate, prefix="firewall", top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    return _saved(_("Firewall settings saved."))


RULE_FIELDS = ("name", "action", "source_zone", "destination", "protocol", "ports", "sources", "destinations")


def _posted_rule() -> tuple[dict, dict]:
    """(the form as typed, the rule for the document): the add and the edit forms read the same fields."""
    form = {k: forms.text(k, 500) for k in RULE_FIELDS}
    rule = {**{k: form[k] for k in ("name", "action", "source_zone", "destination", "protocol", "ports")},
            "sources": split_list(form["sources"]), "destinations": split_list(form["destinations"])}
    return form, rule


@bp.route("/rules", methods=["POST"])
@core.admin_required
def rule_add():
    form, rule = _posted_rule()
    index = len(core.current_config().firewall.rules)

    def mutate(doc: dict) -> None:
        doc["firewall"]["rules"].append(rule)

    errors, general = forms.apply_form(f"add firewall rule {form['name']}", mutate, prefix=f"firewall.rules.{index}",
                                       top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    return _saved(_("Rule added."))


@bp.route("/rules/<int:index>/edit", methods=["GET", "POST"])
@core.admin_required
def rule_edit(index: int):
    rules = core.current_config().firewall.rules
    if not 0 <= index < len(rules):
        abort(404)
    old = rules[index]
    if request.method == "GET":
        form = {**{k: str(getattr(old, k)) for k in RULE_FIELDS[:6]}, "enabled": old.enabled,
                "sources": ", ".join(map(str, old.sources)), "destinations": ", ".join(map(str, old.destinations))}
        return render_template("firewall/rule_edit.html", index=index, form=form, errors={}, general=[],
                               nav_active="firewall.index")
    form, rule = _posted_rule()
    rule["enabled"] = form["enabled"] = forms.checkbox("enabled")

    def mutate(doc: dict) -> None:
        doc["firewall"]["rules"][index] = rule

    errors, general = forms.apply_form(f"edit firewall rule {form['name']}", mutate,
                                       prefix=f"firewall.rules.{index}", top=True)
    if errors or general:
        errors, general = shown(errors, general, set(RULE_FIELDS))
        return render_template("firewall/rule_edit.html", index=index, form=form, errors=errors, general=general,
                               nav_active="firewall.index"), 400
    return _saved(_("Rule saved."))


@bp.route("/rules/<int:index>/move", methods=["POST"])
@core.admin_required
def rule_move(index: int):
    """Up or down one place: both rules change places in one change (one revision, one apply)."""
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    other = index + (step or 0)
    count = len(core.current_config().firewall.rules)
    if step is None or not (0 <= index < count and 0 <= other < count):
        abort(400 if 0 <= index < count else 404)

    def mutate(doc: dict) -> None:
        rules = doc["firewall"]["rules"]
        rules[index], rules[other] = rules[other], rules[index]

    errors, general = forms.apply_form(f"move firewall rule {index + 1} {request.form['direction']}", mutate,
                                       prefix="firewall.rules", top=True)
    if errors or general:
        return _page(errors, general, status=400)
    return _saved(_("Rule moved."))


@bp.route("/rules/<int:index>/delete", methods=["POST"])
@core.admin_required
def rule_delete(index: int):
    return _delete("rules", index, N_("firewall rule"))


@bp.route("/forwards", methods=["POST"])
@core.admin_required
def forward_add():
    form = {k: forms.text(k, 500) for k in ("fwd_name", "fwd_protocol", "wan_port", "to_address", "to_port",
                                            "fwd_sources")}
    errors = {}
    ports = {}
    for key in ("wan_port", "to_port"):
        if form[key] or key == "wan_port":
            try:
                ports[key] = int(form[key])
            except ValueError:
                errors[key] = _("enter a port number")
    if errors:
        return _page(errors, form=form, status=400)
    index = len(core.current_config().firewall.port_forwards)
    forward = {"name": form["fwd_name"], "protocol": form["fwd_protocol"], "to_address": form["to_address"],
               "sources": split_list(form["fwd_sources"]), **ports}

    def mutate(doc: dict) -> None:
        doc["firewall"]["port_forwards"].append(forward)

    names = {f"firewall.port_forwards.{index}.{k}": f"fwd_{k}" for k in ("name", "protocol", "sources")}
    errors, general = forms.apply_form(f"add port forward {form['fwd_name']}", mutate,
                                       prefix=f"firewall.port_forwards.{index}", fields=names, top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    return _saved(_("Port forward added."))


@bp.route("/forwards/<int:index>/delete", methods=["POST"])
@core.admin_required
def forward_delete(index: int):
    return _delete("port_forwards", index, N_("port forward"))


def _delete(key: str, index: int, what: str):
    general = forms.remove_item(f"remove a {what}", "firewall", key, index, what)
    if general:
        return _page(general=general, status=400)
    return _saved(_("The %(what)s was removed.", what=_(what)))
