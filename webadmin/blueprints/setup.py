"""First-boot wizard: exists only while system.initialized is false; creates the first admin."""
from __future__ import annotations

import re
import zoneinfo
from functools import cache

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance import schema
from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import LANGUAGES, hash_password
from webadmin import core, forms
from webadmin.i18n import language_choices, select_locale
from webadmin.security import Busy, SetupCode

bp = Blueprint("setup", __name__, url_prefix="/setup")
TZ_PATTERN = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
ERROR_FIELDS = {
    "system.company_name": "company_name",
    "system.mail_domain": "mail_domain",
    "system.timezone": "timezone",
    "system.language": "language",
    "network.lan.address": "lan_address",
}


@cache
def time_zones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if TZ_PATTERN.match(z) and not z.startswith("Etc/"))


def lan_address_error(value: str) -> str | None:
    """The schema's rule for the box's LAN address (the CLI and restore obey it too), checked early."""
    try:
        schema.host_interface(value)
    except ValueError as exc:
        return str(exc)
    return None


def setup_code_error(code: str) -> str | None:
    """The one-time code printed on the console (a wrong one counts toward the sign-in lock-out)."""
    setup_code = SetupCode(core.runtime().ctx.data_dir)
    if not setup_code.active():
        return _("no setup code is active: restart the box and read the new one on its console")
    lockout = current_app.extensions[core.LOCKOUT_KEY]
    keys = (("setup-addr", request.remote_addr or "?"),)
    if lockout.wait_time(*keys) > 0:
        return _("too many wrong setup codes: wait a minute before trying again")
    try:
        if core.password_check(lambda: setup_code.matches(code)):
            lockout.succeeded(*keys)
            return None
    except Busy:
        return _(core.BUSY_MESSAGE)
    lockout.failed(*keys)
    return _("this is not the setup code shown on the box’s console")


@bp.route("/", methods=["GET", "POST"])
@core.public
def wizard():
    config = core.current_config()
    values = {
        "login": "admin", "full_name": "", "company_name": config.system.company_name,
        "mail_domain": config.system.mail_domain, "lan_address": str(config.network.lan.address),
        "timezone": config.system.timezone, "language": select_locale(),
    }
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        for name in values:
            values[name] = forms.text(name)
        values["login"] = values["login"].lower()
        values["mail_domain"] = values["mail_domain"].lower()
        values["language"] = values["language"] or select_locale()
        if values["language"] not in LANGUAGES:
            errors["language"] = _("choose a language from the list")
        password = forms.new_password(errors)
        if values["timezone"] not in time_zones():
            errors["timezone"] = _("choose a time zone from the list")
        if message := lan_address_error(values["lan_address"]):
            errors["lan_address"] = message
        if message := setup_code_error(forms.text("setup_code", 32)):
            errors["setup_code"] = message
        for name in ("login", "full_name", "company_name", "mail_domain"):
            if not values[name]:
                errors[name] = _("this field is required")
        if not errors:
            try:
                _apply(values, hash_password(password))
            except ConfigError as err:
                errors, general = forms.form_errors(err, prefix="users.0", fields=ERROR_FIELDS)
            except ApplyError as err:
                general = [forms.general_error(err)]
            else:
                SetupCode(core.runtime().ctx.data_dir).discard()
                flash(_("OfficeBox is set up. Sign in with your administrator account."), "success")
                return redirect(url_for("auth.login"))
    return render_template("setup/wizard.html", values=values, errors=errors, general=general,
                           time_zones=time_zones(), languages=language_choices()), (400 if errors or general else 200)


def _apply(values: dict[str, str], password_hash: str) -> None:
    def mutate(doc: dict) -> None:
        if doc["system"].get("initialized"):
            raise ConfigError({"": _("this box was set up meanwhile; sign in instead")})
        doc["system"].update(company_name=values["company_name"], mail_domain=values["mail_domain"],
                             timezone=values["timezone"], language=values["language"],
                             initialized=True)
        doc["network"]["lan"]["address"] = values["lan_address"]
        admin = {"login": values["login"], "full_name": values["full_name"], "role": "admin",
                 "language": values["language"], "enabled": True, "password_hash": password_hash}
        doc["users"] = [admin] + [u for u in doc.get("users", []) if u.get("login") != values["login"]]

    core.runtime().engine.update(values["login"], "first-boot setup", mutate)
