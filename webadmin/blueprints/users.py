"""Users: list, create, edit, enable/disable, delete, set a password. Hashes and secrets never shown."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import hash_password, new_secret
from webadmin import core, forms, setupsheet, usedby
from webadmin.core import N_
from webadmin.i18n import language_choices

bp = Blueprint("users", __name__, url_prefix="/users")
NAV = [(N_("Directory"), N_("Users"), "users.index")]
EDITABLE = ("full_name", "extension", "department", "email", "role", "language", "enabled", "vpn_enabled")


def _user_or_404(login: str):
    user = core.current_config().user(login)
    if user is None:
        abort(404)
    return user


def _posted_user() -> dict:
    return {
        "login": forms.text("login", 64).lower(),
        "full_name": forms.text("full_name", 200),
        "extension": forms.optional("extension", 20),
        "email": forms.optional("email", 200),
        "department": forms.text("department", 100),
        "role": forms.text("role", 10) or "staff",
        "language": forms.text("language", 5) or core.current_config().system.language,
        "enabled": forms.checkbox("enabled"),
        "vpn_enabled": forms.checkbox("vpn_enabled"),
    }


def _posted_password(errors: dict[str, str], required: bool) -> str | None:
    """The argon2 hash of the posted password pair, None if left empty (and allowed)."""
    if not request.form.get("password") and not required:
        return None
    password = forms.new_password(errors)
    return hash_password(password) if password is not None else None


def _apply(summary: str, mutate, index: int) -> tuple[dict[str, str], list[str]]:
    """Apply; returns (field errors, general errors), both empty on success."""
    try:
        core.apply_change(summary, mutate)
    except ConfigError as err:
        return forms.form_errors(err, prefix=f"users.{index}")
    except ApplyError as err:
        return {}, [forms.general_error(err)]
    return {}, []


def _index_of(doc: dict, login: str) -> int:
    for i, user in enumerate(doc["users"]):
        if user["login"] == login:
            return i
    raise ConfigError({"": _("user %(login)s no longer exists", login=login)})


@bp.route("/")
@core.admin_required
def index():
    query = (request.args.get("q") or "").strip().lower()[:100]
    users = sorted(core.current_config().users, key=lambda u: u.login)
    total = len(users)
    if query:
        users = [u for u in users if query in " ".join(
            filter(None, (u.login, u.full_name.lower(), u.extension, (u.email or "").lower())))]
    return render_template("users/index.html", users=users, query=query, total=total,
                           sheet_pending=session.get(setupsheet.SHOWN_ONCE))


@bp.route("/new", methods=["GET", "POST"])
@core.admin_required
def create():
    values = {"login": "", "full_name": "", "extension": None, "department": "", "email": None, "role": "staff",
              "language": core.current_config().system.language, "enabled": True, "vpn_enabled": False}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = _posted_user()
        password_hash = _posted_password(errors, required=values["role"] in core.ADMIN_ROLES)
        if not errors:
            index = len(core.current_config().users)

            def mutate(doc: dict) -> None:
                doc["users"].append({**values, "password_hash": password_hash})

            errors, general = _apply(f"add user {values['login']}", mutate, index)
            if not errors and not general:
                flash(_("User %(login)s was created.", login=values['login']), "success")
                if forms.checkbox("welcome_mail"):
                    _welcome(values["login"])
                setupsheet.show_secret_once(values["login"])
                return redirect(url_for("users.index"))
    return _form_page(values=values, errors=errors, general=general, user=None), (400 if errors or general else 200)


@bp.route("/<login>/edit", methods=["GET", "POST"])
@core.admin_required
def edit(login: str):
    user = _user_or_404(login)
    values = user.model_dump(include={"login", *EDITABLE})
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {**_posted_user(), "login": login}
        if login == core.current_user().login and (values["role"] != "admin" or not values["enabled"]):
            general = [_("You cannot remove your own admin rights or disable the account you are signed in with.")]
        else:
            index = [u.login for u in core.current_config().users].index(login)

            def mutate(doc: dict) -> None:
                doc["users"][_index_of(doc, login)].update({k: values[k] for k in EDITABLE})

            errors, general = _apply(f"edit user {login}", mutate, index)
            if not errors and not general:
                flash(_("User %(login)s was saved.", login=login), "success")
                return redirect(url_for("users.index"))
    return _form_page(values=values, errors=errors, general=general, user=user), (400 if errors or general else 200)


@bp.route("/<login>/password", methods=["POST"])
@core.admin_required
def password(login: str):
    user = _user_or_404(login)
    own = login == session_login()  # before the change: afterwards the old session no longer matches
    errors: dict[str, str] = {}
    general: list[str] = []
    password_hash = _posted_password(errors, required=True)
    if not errors:
        index = [u.login for u in core.current_config().users].index(login)

        def mutate(doc: dict) -> None:
            doc["users"][_index_of(doc, login)]["password_hash"] = password_hash

        errors, general = _apply(f"set password of {login}", mutate, index)
    if not errors and not general:
        if own:
            current_app.extensions[core.SESSIONS_KEY].rebind(session.get("sid"), password_hash)
        flash(_("The password of %(login)s was set.", login=login), "success")
        return redirect(url_for("users.edit", login=login))
    values = user.model_dump(include={"login", *EDITABLE})
    return _form_page(values=values, errors={}, general=general, user=user,
                      password_errors=errors), 400


@bp.route("/<login>/two-factor/reset", methods=["POST"])
@core.admin_required
def reset_two_factor(login: str):
    """Another admin lost their authenticator and recovery codes: their next sign-in asks the password only."""
    _user_or_404(login)

    def mutate(doc: dict) -> None:
        doc["users"][_index_of(doc, login)].update({"totp_secret": None, "recovery_codes_hash": []})

    general = _apply(f"reset two-factor sign-in of {login}", mutate, -1)[1]
    for message in general:
        flash(message, "error")
    if not general:
        flash(_("Two-factor sign-in of %(login)s is off; they can set it up again on their account page.",
                login=login), "success")
    return redirect(url_for("users.edit", login=login))


@bp.route("/<login>/proxy-password", methods=["POST"])
@core.admin_required
def proxy_password(login: str):
    user = _user_or_404(login)
    errors: dict[str, str] = {}
    general: list[str] = []
    password_hash = _posted_password(errors, required=True)
    if not errors:
        def mutate(doc: dict) -> None:
            doc["users"][_index_of(doc, login)]["proxy_password_hash"] = password_hash

        index = [u.login for u in core.current_config().users].index(login)
        errors, general = _apply(f"set proxy password of {login}", mutate, index)
    if not errors and not general:
        flash(_("The web proxy password of %(login)s was set.", login=login), "success")
        return redirect(url_for("users.edit", login=login))
    values = user.model_dump(include={"login", *EDITABLE})
    return _form_page(values=values, errors={}, general=general, user=user,
                      proxy_errors=errors), 400


def _form_page(**context):
    """The user form (create/edit, password and proxy password forms) with what every view passes."""
    return render_template("users/form.html", proxy_passwords=_proxy_passwords(), languages=language_choices(),
                           **context)


def _proxy_passwords() -> bool:
    """Users have a separate web proxy password only when proxy sign-in uses them."""
    proxy = getattr(core.current_config(), "proxy", None)
    return bool(proxy and proxy.enabled and proxy.sign_in and proxy.sign_in_password == "proxy")


def session_login() -> str | None:
    user = core.current_user()
    return user.login if user else None


@bp.route("/<login>/enabled", methods=["POST"])
@core.admin_required
def set_enabled(login: str):
    _user_or_404(login)
    enable = forms.checkbox("enabled")
    if login == session_login() and not enable:
        flash(_("You cannot disable the account you are signed in with."), "error")
        return redirect(url_for("users.index"))

    def mutate(doc: dict) -> None:
        doc["users"][_index_of(doc, login)]["enabled"] = enable

    _errors, general = _apply(f"{'enable' if enable else 'disable'} user {login}", mutate, -1)
    for message in general:
        flash(message, "error")
    if not general:
        flash(_("User %(login)s is enabled.", login=login) if enable else _("User %(login)s is disabled.", login=login),
              "success")
    return redirect(url_for("users.index"))


@bp.route("/<login>/delete", methods=["GET", "POST"])
@core.admin_required
def delete(login: str):
    user = _user_or_404(login)
    if login == session_login():
        flash(_("You cannot delete the account you are signed in with."), "error")
        return redirect(url_for("users.index"))
    if request.method == "POST":
        def mutate(doc: dict) -> None:
            del doc["users"][_index_of(doc, login)]

        _errors, general = _apply(f"delete user {login}", mutate, -1)
        for message in general:
            flash(message, "error")
        if not general:
            flash(_("User %(login)s was deleted.", login=login), "success")
        return redirect(url_for("users.index"))
    return usedby.confirm_page("extension" if user.extension else None, user.extension or "", _("user"),
                               url_for("users.index"), lambda doc: doc["users"].pop(_index_of(doc, login)),
                               template="users/delete.html", also=(("user", login),), user=user)


def _welcome(login: str) -> None:
    config = core.current_config()
    user = next(u for u in config.users if u.login == login)
    failed = setupsheet.send_welcome(user, config)
    if failed:
        flash(_("The welcome e-mail was not sent: %(error)s", error=failed), "error")
    else:
        flash(_("A welcome e-mail was sent to %(address)s.", address=user.mail_address(config.system.mail_domain)),
              "success")


@bp.route("/<login>/sheet")
@core.admin_required
def sheet(login: str):
    """The printable setup sheet; the phone password only right after creation or a reset."""
    user = _user_or_404(login)
    secret = user.sip_secret if setupsheet.secret_shown_now(login) else None
    config = core.current_config()
    return render_template("users/sheet.html", secret=secret, softphone=setupsheet.softphone(user, config, secret),
                           **setupsheet.facts(user, config))


@bp.route("/<login>/phone-secret", methods=["POST"])
@core.admin_required
def reset_phone_secret(login: str):
    """A new phone password (the old one stops working); shown once on the sheet."""
    _user_or_404(login)
    secret = new_secret()

    def mutate(doc: dict) -> None:
        doc["users"][_index_of(doc, login)]["sip_secret"] = secret

    general = _apply(f"reset phone password of {login}", mutate, -1)[1]
    for message in general:
        flash(message, "error")
    if general:
        return redirect(url_for("users.edit", login=login))
    flash(_("The phone password of %(login)s was reset: set it on their phones now.", login=login), "success")
    setupsheet.show_secret_once(login)
    return redirect(url_for("users.sheet", login=login))
