"""System settings after the wizard: company name, host name, mail domain, time zone, LAN address and
the admin's e-mail for notifications, checked as the wizard checks them (the schema's rules). A new LAN
address goes through commit-confirm (appliance/confirm.py): it comes back unless confirmed in time."""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.users import EMAIL_PATTERN
from webadmin import core, forms
from webadmin.blueprints.setup import ERROR_FIELDS, lan_address_error, time_zones
from webadmin.core import N_

bp = Blueprint("settings", __name__, url_prefix="/settings")
NAV = [(N_("System"), N_("Settings"), "settings.index")]
FIELDS = {**ERROR_FIELDS, "system.hostname": "hostname", "system.admin_email": "admin_email"}
REQUIRED = ("company_name", "hostname", "mail_domain")


def _values() -> dict[str, str]:
    config = core.current_config()
    return {"company_name": config.system.company_name, "hostname": config.system.hostname,
            "mail_domain": config.system.mail_domain, "timezone": config.system.timezone,
            "lan_address": str(config.network.lan.address), "admin_email": config.system.admin_email or ""}


def _posted() -> dict[str, str]:
    values = {name: forms.text(name) for name in _values()}
    for name in ("hostname", "mail_domain"):
        values[name] = values[name].lower()
    return values


def _errors(values: dict[str, str]) -> dict[str, str]:
    """The wizard's own early checks (the rest is the schema's, reported by field path)."""
    errors = {name: _("this field is required") for name in REQUIRED if not values[name]}
    if values["timezone"] not in time_zones():
        errors["timezone"] = _("choose a time zone from the list")
    if message := lan_address_error(values["lan_address"]):
        errors["lan_address"] = message
    if values["admin_email"] and not re.fullmatch(EMAIL_PATTERN, values["admin_email"]):
        errors["admin_email"] = _("enter a valid e-mail address, like it@example.com")
    return errors


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def index():
    values, errors, general = _values(), {}, []
    if request.method == "POST":
        values = _posted()
        errors = _errors(values)
        if not errors:
            moved = values["lan_address"] != str(core.current_config().network.lan.address)

            def mutate(doc: dict) -> None:
                doc["system"].update(company_name=values["company_name"], hostname=values["hostname"],
                                     mail_domain=values["mail_domain"], timezone=values["timezone"],
                                     admin_email=values["admin_email"])
                doc["network"]["lan"]["address"] = values["lan_address"]

            errors, general = forms.apply_form("system settings", mutate, fields=FIELDS)
            if not errors and not general:
                return _saved(values, moved)
    return render_template("settings/index.html", values=values, errors=errors, general=general,
                           time_zones=time_zones()), (400 if errors or general else 200)


def _saved(values: dict[str, str], moved: bool):
    pending = core.runtime().engine.confirmation.pending()
    if pending:
        address = values["lan_address"].split("/")[0]
        flash(_("Settings saved. The box is now at %(address)s on the LAN: open https://%(address)s/ and confirm "
                "the change within %(seconds)d seconds, or it is undone.", address=address,
                seconds=round(pending["seconds_left"])), "warning")
    elif moved:
        flash(_("Settings saved. The box's LAN address changed."), "success")
    else:
        flash(_("Settings saved."), "success")
    return redirect(url_for("settings.index"))
