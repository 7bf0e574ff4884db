"""Two-factor sign-in on an admin's own account (/account/two-factor): set it up by scanning a QR code and
confirming a current code, then keep the ten recovery codes shown once; new recovery codes or turning it off
need a current code. The key is kept in the user store (users[].totp_secret, 0600 like every revision) and
is never shown again once confirmed; another admin resets it on the users page."""
from __future__ import annotations

import base64

import pyotp
from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from appliance.apply import ConfigError
from appliance.service import ApplyError
from services.vpn.wireguard import qr_svg
from webadmin import core, forms
from webadmin.security import RecoveryCodes

bp = Blueprint("two_factor", __name__, url_prefix="/account/two-factor")


def _admin():
    user = core.current_user()
    if not core.sees_admin_pages(user):
        abort(404)  # two-factor sign-in is for the admins
    return user


def _enrolments():
    return current_app.extensions[core.ENROLMENTS_KEY]


def _code_accepted(login: str, secret: str, errors: dict, field: str = "code") -> bool:
    if current_app.extensions[core.TOTP_KEY].accept(login, secret, forms.text(field, 16)):
        return True
    errors[field] = _("this is not the current code of your app (6 digits, for example 123456)")
    return False


def _save(summary: str, login: str, fields: dict) -> list[str]:
    def mutate(doc: dict) -> None:
        next(u for u in doc["users"] if u["login"] == login).update(fields)

    try:
        core.apply_change(summary, mutate)
    except (ConfigError, ApplyError) as err:
        return [forms.general_error(err)]
    return []


def _page(user, errors: dict | None = None, general: list | None = None, codes: list | None = None):
    secret = None if user.totp_secret else _enrolments().secret(session.get("sid"))
    qr = None
    if secret:
        issuer = core.current_config().system.company_name
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.login, issuer_name=issuer)
        qr = Markup(f"data:image/svg+xml;base64,{base64.b64encode(qr_svg(uri).encode()).decode()}")
    failed = errors or general
    return render_template("account/two_factor.html", user=user, secret=secret, qr=qr, codes=codes or [],
                           errors=errors or {}, general=general or []), (400 if failed else 200)


@bp.route("/")
@core.login_required
def index():
    return _page(_admin())


@bp.route("/start", methods=["POST"])
@core.login_required
def start():
    user = _admin()
    if user.totp_secret:
        return redirect(url_for("two_factor.index"))
    _enrolments().start(session.get("sid"), current_app.extensions[core.TOTP_KEY].new_secret())
    return redirect(url_for("two_factor.index"))


@bp.route("/confirm", methods=["POST"])
@core.login_required
def confirm():
    """On only once a code of the scanned key is right: a key the app never got cannot lock the admin out."""
    user = _admin()
    secret = _enrolments().secret(session.get("sid"))
    if user.totp_secret or secret is None:
        flash(_("The set-up took too long or is already done. Please start again."), "info")
        return redirect(url_for("two_factor.index"))
    errors: dict[str, str] = {}
    if not _code_accepted(user.login, secret, errors):
        return _page(user, errors=errors)
    codes, hashes = RecoveryCodes.issue()
    general = _save(f"{user.login} turned on two-factor sign-in", user.login,
                    {"totp_secret": secret, "recovery_codes_hash": hashes})
    if general:
        return _page(user, general=general)
    _enrolments().finish(session.get("sid"))
    return _page(core.current_user(), codes=codes)


@bp.route("/recovery-codes", methods=["POST"])
@core.login_required
def recovery_codes():
    user = _admin()
    errors: dict[str, str] = {}
    if not user.totp_secret or not _code_accepted(user.login, user.totp_secret, errors):
        return _page(user, errors=errors)
    codes, hashes = RecoveryCodes.issue()
    general = _save(f"{user.login} made new recovery codes", user.login, {"recovery_codes_hash": hashes})
    return _page(core.current_user() or user, general=general, codes=[] if general else codes)


@bp.route("/off", methods=["POST"])
@core.login_required
def turn_off():
    user = _admin()
    errors: dict[str, str] = {}
    if not user.totp_secret or not _code_accepted(user.login, user.totp_secret, errors, "off_code"):
        return _page(user, errors=errors)
    general = _save(f"{user.login} turned off two-factor sign-in", user.login,
                    {"totp_secret": None, "recovery_codes_hash": []})
    if general:
        return _page(user, general=general)
    flash(_("Two-factor sign-in is off: signing in asks for your password only."), "success")
    return redirect(url_for("two_factor.index"))
