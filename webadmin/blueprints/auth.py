"""Sign in and sign out, with a growing delay after repeated failures.

A user with two-factor sign-in on gives the password first, then (on /login/code) a code of their
authenticator app or one of their recovery codes; codes are throttled like passwords, each is accepted once.
"""
from __future__ import annotations

import logging
import math
import re
from functools import cache

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import User, hash_password, verify_password
from webadmin import core, forms
from webadmin.security import Busy, RecoveryCodes

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
            if correct and user.totp_secret:  # the password counters clear only once the code is right too
                return _ask_for_code(user)
            if correct:
                lockout.succeeded(*keys)
                return _signed_in(user)
            lockout.failed(*keys)
            log.warning("failed web admin sign-in for %r from %s", login_name, request.remote_addr)
            wait = lockout.wait_time(*keys)
            error = _("Wrong login or password.")
            if wait > 0:
                error += " " + _wait_message(wait)
            status = 401
    return render_template("auth/login.html", error=error, login=login_name), status


def _signed_in(user: User):
    log.info("web admin sign-in: %s from %s", user.login, request.remote_addr)
    _start_session(user.login, user.password_hash)
    kept = request.args.get("kept")
    if current_app.extensions[core.KEPT_FORMS_KEY].alive(kept, request.remote_addr or "?"):
        return redirect(url_for("auth.kept_form", kept=kept))  # what was sent after the session ended
    default = url_for("dashboard.index") if core.sees_admin_pages(user) else url_for("account.index")
    return redirect(_safe_next(request.args.get("next")) or default)


@bp.route("/login/kept")
@core.login_required
def kept_form():
    """A form sent after the session ended, shown to send it again (to the same page, with this session's
    token; the page checks it as any other submit, the revision it was built on included)."""
    kept = current_app.extensions[core.KEPT_FORMS_KEY].take(request.args.get("kept"), request.remote_addr or "?")
    if kept is None:
        flash(_("Nothing sent before the sign-in is kept any more (it is kept 15 minutes)."), "info")
        return redirect(url_for("dashboard.index"))
    path, fields, dropped = kept
    if not _safe_next(path):
        abort(400)
    leave = url_for("dashboard.index") if core.sees_admin_pages(core.current_user()) else url_for("account.index")
    return render_template("auth/kept.html", path=path, fields=fields, dropped=dropped, leave=leave,
                           token=core.csrf_token(), csrf_name=core.CSRF_FIELD)


def _ask_for_code(user: User):
    pending = current_app.extensions[core.PENDING_KEY]
    pending.close(session.get("pending"))
    current_app.extensions[core.SESSIONS_KEY].close(session.get("sid"))
    session.clear()
    session["pending"] = pending.open(user.login, user.password_hash)
    core.csrf_token()
    return redirect(url_for("auth.code", next=_safe_next(request.args.get("next")), kept=request.args.get("kept")))


def _pending_user() -> User | None:
    config = core.current_config()

    def password_hash_of(login: str) -> str | None | bool:
        user = config.user(login)
        return user.password_hash if user is not None and user.enabled and user.totp_secret else False

    login = current_app.extensions[core.PENDING_KEY].lookup(session.get("pending"), password_hash_of)
    return config.user(login) if login else None


@bp.route("/login/code", methods=["GET", "POST"])
@core.public
def code():
    """The second step: a code of the authenticator app, or a recovery code (each works once)."""
    user = _pending_user()
    if user is None:
        if session.pop("pending", None):
            flash(_("The sign-in took too long. Please sign in again."), "info")
        return redirect(url_for("auth.login", next=_safe_next(request.args.get("next")), kept=request.args.get("kept")))
    error, status = None, 200
    if request.method == "POST":
        lockout = current_app.extensions[core.LOCKOUT_KEY]
        keys = (("code", user.login), ("code-addr", request.remote_addr or "?"))
        wait = lockout.wait_time(*keys)
        if wait > 0:
            error, status = _wait_message(wait), 429
        else:
            try:
                accepted = _code_ok(user, request.form.get("code") or "")
            except Busy:
                return render_template("auth/code.html", error=core.BUSY_MESSAGE), 503, {"Retry-After": "5"}
            if accepted:
                lockout.succeeded(*keys, ("login", user.login), ("addr", request.remote_addr or "?"))
                current_app.extensions[core.PENDING_KEY].close(session.pop("pending", None))
                return _signed_in(core.current_config().user(user.login))
            lockout.failed(*keys)
            log.warning("wrong two-factor code for %r from %s", user.login, request.remote_addr)
            wait = lockout.wait_time(*keys)
            error = _("Wrong or already used code.")
            if wait > 0:
                error += " " + _wait_message(wait)
            status = 401
    return render_template("auth/code.html", error=error), status


def _code_ok(user: User, code: str) -> bool:
    if current_app.extensions[core.TOTP_KEY].accept(user.login, user.totp_secret, code):
        return True
    if not RecoveryCodes.looks_like_one(code):
        return False
    used = core.password_check(lambda: RecoveryCodes.matching(user.recovery_codes_hash, code))
    if used is None:
        return False
    login = user.login

    def mutate(doc: dict) -> None:
        entry = next(u for u in doc["users"] if u["login"] == login)
        if used not in entry.get("recovery_codes_hash", []):
            raise ValueError("recovery code already used")
        entry["recovery_codes_hash"].remove(used)

    try:
        core.runtime().engine.update(login, f"{login} signed in with a recovery code", mutate)
    except ValueError:  # the same code in two requests at once: only the first one wins
        return False
    except (ConfigError, ApplyError) as err:
        log.error("recovery code of %s not used up, sign-in refused: %s", login, err)
        return False
    finally:
        g.pop("officebox_config", None)
    left = len(user.recovery_codes_hash) - 1
    flash(_("You signed in with a recovery code; %(left)d left. Each works once.", left=left), "info")
    log.warning("web admin sign-in of %s with a recovery code (%d left)", login, left)
    return True


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
