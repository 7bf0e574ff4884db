"""My account: every signed-in user (staff too) can see their details and change their own password."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import hash_password
from webadmin import core, forms
from webadmin.security import Busy

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/", methods=["GET", "POST"])
@core.login_required
def index():
    user = core.current_user()
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        lockout = current_app.extensions[core.LOCKOUT_KEY]
        keys = (("login", user.login), ("addr", request.remote_addr or "?"))
        current = request.form.get("current_password") or ""
        if lockout.wait_time(*keys) > 0:
            general = ["Too many wrong passwords. Please wait a moment before trying again."]
        elif not _current_password_ok(user, current, general):
            if not general:
                lockout.failed(*keys)
                errors["current_password"] = "this is not your current password"
        elif (new := forms.new_password(errors)) is not None:
            lockout.succeeded(("login", user.login))
            password_hash = hash_password(new)
            login = user.login

            def mutate(doc: dict) -> None:
                for entry in doc["users"]:
                    if entry["login"] == login:
                        entry["password_hash"] = password_hash

            try:
                core.apply_change(f"{login} changed their password", mutate)
            except (ConfigError, ApplyError) as err:
                general = [str(err)]
            else:
                current_app.extensions[core.SESSIONS_KEY].rebind(session.get("sid"), password_hash)
                flash("Your password was changed.", "success")
                return redirect(url_for("account.index"))
    return render_template("account/index.html", user=user, errors=errors, general=general,
                           mail_domain=core.current_config().system.mail_domain), (
        400 if errors or general else 200)


def _current_password_ok(user, password: str, general: list[str]) -> bool:
    try:
        return core.password_check(lambda: user.check_password(password))
    except Busy:
        general.append(core.BUSY_MESSAGE)
        return False
