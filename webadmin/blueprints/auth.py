"""Sign in and sign out, with a growing delay after repeated failures."""
from __future__ import annotations

import logging
import math
import re
from functools import cache

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from appliance.users import User, hash_password, verify_password
from webadmin import core, forms
from webadmin.security import Busy

bp = Blueprint("auth", __name__)
log = logging.getLogger("officebox.webadmin")


@cache
def _dummy_hash() -> str:
    """Checked when the login does not exist, so both cases take the same time."""
    return hash_password("not-a-real-password")


SAFE_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.~%?=&+-]*$")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no '//' host, no spaces or control characters."""
    return target if target and SAFE_NEXT.match(target) else None


def _wait_message(seconds: float) -> str:
    wait = max(1, math.ceil(seconds))
    return ngettext("Too many failed sign-in attempts. Please wait %(num)d second before trying again.",
                    "Too many failed sign-in attempts. Please wait %(num)d seconds before trying again.", wait)


@bp.route("/login", methods=["GET", "POST"])
@core.public
def login():
    if core.current_user() is not None and request.method == "GET":
        return redirect(url_for("dashboard.index"))
    error = None
    status = 200
    login_name = ""
    if request.method == "POST":
        login_name = forms.text("login", 64).lower()
        password = request.form.get("password") or ""
        lockout = current_app.extensions[core.LOCKOUT_KEY]
        keys = (("login", login_name), ("addr", request.remote_addr or "?"))
        wait = lockout.wait_time(*keys)
        if wait > 0:
            error, status = _wait_message(wait), 429
        else:
            user = core.current_config().user(login_name)
            try:
                correct = core.password_check(lambda: _check(user, password))
            except Busy:
                return render_template("auth/login.html", error=_(core.BUSY_MESSAGE), login=login_name), 503, {
                    "Retry-After": "5"}
            if correct:
                lockout.succeeded(*keys)
                log.info("web admin sign-in: %s from %s", user.login, request.remote_addr)
                _start_session(user.login, user.password_hash)
                default = url_for("dashboard.index") if user.role == "admin" else url_for("account.index")
                return redirect(_safe_next(request.args.get("next")) or default)
            lockout.failed(*keys)
            log.warning("failed web admin sign-in for %r from %s", login_name, request.remote_addr)
            wait = lockout.wait_time(*keys)
            error = _("Wrong login or password.")
            if wait > 0:
                error += " " + _wait_message(wait)
            status = 401
    return render_template("auth/login.html", error=error, login=login_name), status


def _check(user: User | None, password: str) -> bool:
    if user is None:
        verify_password(_dummy_hash(), password)
        return False
    return user.check_password(password)


def _start_session(login: str, password_hash: str | None) -> None:
    sessions = current_app.extensions[core.SESSIONS_KEY]
    sessions.close(session.get("sid"))
    session.clear()  # new session id and CSRF token: no session fixation
    session["sid"] = sessions.open(login, password_hash)
    core.csrf_token()


@bp.route("/logout", methods=["POST"])
@core.public
def logout():
    current_app.extensions[core.SESSIONS_KEY].close(session.get("sid"))
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))
