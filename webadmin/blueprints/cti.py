"""CTI server page: the CSTA XML server's switch, ports and limits, its live sessions, the
application accounts (a TAPI service provider, a CRM connector) with their device scope, the JSON API's
tokens (made here and shown once; only their SHA-256 is kept) and the staff desk's CRM link."""
from __future__ import annotations

import re
import time

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from appliance.users import hash_password
from services.cti.tokens import digest, new_token
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("cti", __name__, url_prefix="/cti")
NAV = [(N_("Telephony"), N_("CTI server"), "cti.index")]
NUMBERS = ("tcp_port", "tls_port", "max_sessions", "max_monitors", "requests_per_second", "session_duration",
           "api_port", "api_requests_per_second", "desk_token_minutes")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$")


def _scope(text: str) -> list[str]:
    return [d.strip() for d in text.replace("\n", ",").split(",") if d.strip()]


def _add_named(key: str, entry: dict, summary: str, exists: str):
    """Append `entry` to cti.<key> as one revision unless an item of its name is there: (errors, general)."""
    def mutate(doc: dict) -> None:
        items = doc.setdefault("cti", {}).setdefault(key, [])
        if any(item.get("name") == entry["name"] for item in items):
            from appliance.apply import ConfigError
            raise ConfigError({"": exists})
        items.append(entry)
    return forms.apply_form(summary, mutate, prefix="cti", top=True)


def _page(errors=None, general=None, form=None, code=200, new_token=""):
    config = core.current_config()
    rt = core.runtime()
    figures = rt.client("cti").sessions() if rt.client("cti").enabled(config) else {}
    return render_template("cti/index.html", cti=config.cti, figures=figures, status=rt.status().get("cti"),
                           errors=errors or {}, general=general or [], form=form or {}, new_token=new_token), code


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/", methods=["POST"])
@core.admin_required
def save():
    form = {name: forms.text(name, 10) for name in NUMBERS}
    errors = {name: _("a whole number is needed") for name, value in form.items() if not value.isdigit()}
    if errors:
        return _page(errors, None, form, 400)
    enabled = forms.checkbox("enabled")
    crm_url = forms.text("crm_url", 500)
    form["crm_url"] = crm_url
    if crm_url and "{number}" not in crm_url:
        return _page({"crm_url": _("put {number} where the caller's number goes")}, None, form, 400)

    def mutate(doc: dict) -> None:
        doc.setdefault("cti", {}).update(enabled=enabled, crm_url=crm_url,
                                         **{name: int(value) for name, value in form.items() if name != "crm_url"})

    errors, general = forms.apply_form("CTI server settings", mutate, prefix="cti")
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("CTI server settings saved."), "success")
    return redirect(url_for("cti.index"))


@bp.route("/accounts", methods=["POST"])
@core.admin_required
def account_add():
    form = {"name": forms.text("name", 32), "scope": forms.text("scope", 4000)}
    errors: dict[str, str] = {}
    password = forms.new_password(errors)
    scope = _scope(form["scope"])
    if not scope:
        errors["scope"] = _("name at least one extension, or * for every extension")
    if errors:
        return _page({f"account_{k}": v for k, v in errors.items()}, None, form, 400)
    account = {"name": form["name"], "password_hash": hash_password(password), "scope": scope}
    errors, general = _add_named("accounts", account, "add CTI account",
                                 _("a CTI account %(name)s exists already", name=form["name"]))
    if errors or general:
        return _page(None, [*errors.values(), *general], form, 400)
    flash(_("CTI account %(name)s added.", name=form["name"]), "success")
    return redirect(url_for("cti.index"))


@bp.route("/accounts/<int:index>/delete", methods=["POST"])
@core.admin_required
def account_delete(index: int):
    general = forms.remove_item("remove CTI account", "cti", "accounts", index, N_("CTI account"))
    if general:
        return _page(None, general, None, 400)
    flash(_("CTI account removed."), "success")
    return redirect(url_for("cti.index"))


@bp.route("/tokens", methods=["POST"])
@core.admin_required
def token_add():
    """A new JSON API token: shown once on the page that answers; the configuration keeps its SHA-256."""
    form = {"token_name": forms.text("token_name", 40), "token_scope": forms.text("token_scope", 4000)}
    errors: dict[str, str] = {}
    if not TOKEN_NAME.match(form["token_name"]):
        errors["token_name"] = _("letters, digits, spaces, dots, dashes; 40 at most")
    scope = _scope(form["token_scope"])
    if not scope:
        errors["token_scope"] = _("name at least one extension, or * for every extension")
    if errors:
        return _page(errors, None, form, 400)
    token = new_token()
    entry = {"name": form["token_name"], "token_hash": digest(token), "scope": scope, "created": time.time()}
    errors, general = _add_named("api_tokens", entry, "add CTI API token",
                                 _("a token named %(name)s exists already", name=entry["name"]))
    if errors or general:
        return _page(None, [*errors.values(), *general], form, 400)
    return _page(new_token=token)


@bp.route("/tokens/<int:index>/delete", methods=["POST"])
@core.admin_required
def token_delete(index: int):
    general = forms.remove_item("revoke CTI API token", "cti", "api_tokens", index, N_("API token"))
    if general:
        return _page(None, general, None, 400)
    flash(_("API token revoked."), "success")
    return redirect(url_for("cti.index"))
