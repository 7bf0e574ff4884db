"""What every web admin page uses: the runtime, the configuration, the signed-in user, changes, CSRF.

    from webadmin.core import admin_required, apply_change, current_config
    apply_change("add extension 201", mutate)   # mutate(document: dict) edits the JSON document

Every route is for admins only unless its view is marked @public or @login_required (staff too).
A read-only admin (role "readonly") sees every admin page but every state-changing request to an admin
route is refused with 403 (enforce_access), and lock_forms disables the forms of those routes on the pages.

apply_change raises ConfigError (`err.problems`: [(dotted path, message)]) or ApplyError (ChangedMeanwhile
when another admin saved a conflicting change after this form was shown: every form carries the
revision it was built on, in csrf_field); webadmin.forms.form_errors turns them into messages.
"""
from __future__ import annotations

import functools
import hmac
import html
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from appliance import schema
from appliance.store import ChangedMeanwhile, Revision
from appliance.users import User
from webadmin.security import KeptForms


def N_(message: str) -> str:
    """Marks `message` for the translation catalogues; it is translated where shown (`_(message)`)."""
    return message


RUNTIME_KEY = "officebox.runtime"
SESSIONS_KEY = "officebox.sessions"
LOCKOUT_KEY = "officebox.lockout"
PASSWORD_CHECKS_KEY = "officebox.password_checks"
PENDING_KEY = "officebox.pending_sign_ins"  # security.PendingSignIns: password right, code to come
ENROLMENTS_KEY = "officebox.enrolments"     # security.Enrolments: two-factor keys being set up
TOTP_KEY = "officebox.totp"                 # security.TotpCodes
KEPT_FORMS_KEY = "officebox.kept_forms"     # security.KeptForms: sent after the session ended
ACCESS_ATTR = "officebox_access"
SECRET_ATTR = "officebox_secret"  # a page that reveals credentials: full admins only
FRAMEWORK_PUBLIC = {"static"}  # Flask's own endpoint for webadmin/static
BUSY_MESSAGE = N_("The box is busy checking other sign-ins. Please try again in a few seconds.")  # _() where shown
CONFIG_CACHE_KEY = "officebox.config_cache"
CSRF_FIELD = "csrf_token"
BASE_FIELD = "base_revision"  # the revision a form was shown with: changes are built on it
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = N_("The form was refused because its security token is missing or out of date "
                "(for example after signing in again in another tab). Go back, reload the page and retry.")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ADMIN_ROLES = ("admin", "readonly")  # who sees the admin pages; only "admin" may change anything
LARGE_UPLOADS: dict[str, int] = {}  # endpoint -> upload limit in bytes for admins (others: MAX_CONTENT_LENGTH)


def runtime() -> Any:
    """The appliance Runtime (.ctx, .store, .engine, .config; services through service())."""
    return current_app.extensions[RUNTIME_KEY]


def service(name: str) -> Any:
    """The typed client of a service (appliance/clients.py), whichever process runs it; None if absent."""
    return runtime().client(name)


def service_or_404(name: str) -> Any:
    """The service's client for a page that exists only with that service: 404 without it."""
    client = service(name)
    if client is None:
        abort(404)
    return client


def current_config() -> schema.CoreConfig:
    """The applied configuration (defaults before the first-boot wizard ran); cached per request."""
    if "officebox_config" not in g:
        rev_id = runtime().store.current_id()
        cached = current_app.extensions.get(CONFIG_CACHE_KEY)
        if cached is None or cached[0] != rev_id:  # a revision never changes: parse each one once
            rev = runtime().store.revision(rev_id) if rev_id is not None else None
            cached = (rev_id, rev.config if rev is not None else schema.parse({}))
            current_app.extensions[CONFIG_CACHE_KEY] = cached
        g.officebox_config = cached[1]
    return g.officebox_config


def current_user() -> User | None:
    """The signed-in user (admin or staff), or None."""
    if "officebox_user" not in g:
        config = current_config()

        def password_hash_of(login: str) -> str | None | bool:
            user = config.user(login)
            return user.password_hash if user is not None and user.enabled else False

        login = current_app.extensions[SESSIONS_KEY].lookup(session.get("sid"), password_hash_of)
        g.officebox_user = config.user(login) if login else None
    return g.officebox_user


def apply_change(summary: str, mutate: Callable[[dict], None]) -> Revision:
    """Apply `mutate` to the configuration document as one revision authored by the signed-in user."""
    user = current_user()
    if user is None:
        raise RuntimeError("apply_change needs a signed-in user")
    base = request.form.get(BASE_FIELD, "")
    try:
        kwargs = {"base": int(base)} if base.isdigit() else {}
        rev = runtime().engine.update(user.login, summary, mutate, **kwargs)
        g.officebox_base = rev.id  # a page shown after this change builds on it
        return rev
    except ChangedMeanwhile as err:
        g.officebox_base = err.current.id if err.current else None  # the admin is shown the difference
        raise
    finally:
        g.pop("officebox_config", None)
        g.pop("officebox_user", None)


# -- access: every route is for admins unless it says otherwise -----------------------------------
def public(view: Callable) -> Callable:
    """Open to anybody, signed in or not (sign-in, sign-out, the first-boot wizard)."""
    setattr(view, ACCESS_ATTR, "public")
    return view


def login_required(view: Callable) -> Callable:
    """Any signed-in user (admin or staff)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return _to_login()
        return view(*args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, "user")
    return wrapper


def admin_required(view: Callable) -> Callable:
    """Signed-in admins; staff get 403, read-only admins too on a state-changing request."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None:
            return _to_login()
        if not allowed(user, "admin", request.method):
            abort(403)
        return view(*args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, "admin")
    return wrapper


def secret(view: Callable) -> Callable:
    """Above an access decorator: the page reveals credentials (VPN keys and profiles, passwords), so a
    read-only admin, who may look at everything else, gets 403."""
    setattr(view, SECRET_ATTR, True)
    return view


def reveals_secrets(endpoint: str | None) -> bool:
    return bool(getattr(current_app.view_functions.get(endpoint or ""), SECRET_ATTR, False))


def access_of(endpoint: str | None) -> str:
    """"public", "user" or "admin" (the default for a view that says nothing)."""
    if endpoint in FRAMEWORK_PUBLIC:
        return "public"
    view = current_app.view_functions.get(endpoint or "")
    return getattr(view, ACCESS_ATTR, "admin")


def enforce_access() -> Any:
    """before_request hook: default deny, whatever decorators a view forgot."""
    if request.endpoint is None:  # no such route: Flask answers 404/405
        return None
    access = access_of(request.endpoint)
    if access == "public":
        return None
    user = current_user()
    if user is None:
        return _to_login()
    if not allowed(user, access, request.method) or (user.role == "readonly" and reveals_secrets(request.endpoint)):
        abort(403)
    return None


def allowed(user: User, access: str, method: str) -> bool:
    """May this signed-in user make a `method` request to a route of this access level?"""
    if access != "admin":
        return True  # the user's own pages (password, forwarding, two-factor): read-only admins too
    if user.role == "readonly":
        return method not in UNSAFE_METHODS
    return user.role == "admin"


def sees_admin_pages(user: User | None) -> bool:
    return user is not None and user.role in ADMIN_ROLES


FORM_TAG = re.compile(r'<form\b[^>]*\bmethod="post"[^>]*>', re.IGNORECASE)
ACTION = re.compile(r'\baction="([^"]*)"')


def lock_forms(response: Any) -> Any:
    """after_request hook: for a read-only admin, every POST form of an admin route on an HTML page gets
    its controls disabled and hidden (a disabled fieldset), so no page offers a change it would refuse."""
    if response.mimetype != "text/html" or response.direct_passthrough or request.endpoint in FRAMEWORK_PUBLIC:
        return response
    user = current_user()
    if user is None or user.role != "readonly":
        return response
    adapter = current_app.url_map.bind("localhost")

    def changes_the_box(tag: str) -> bool:
        action = ACTION.search(tag)
        path = html.unescape(action.group(1)).split("?")[0] if action and action.group(1) else request.path
        try:
            endpoint, _ = adapter.match(path, method="POST")
        except HTTPException:
            return False
        return access_of(endpoint) == "admin"

    body = response.get_data(as_text=True)
    out, pos = [], 0
    for match in FORM_TAG.finditer(body):
        end = body.find("</form>", match.end())
        if end < 0 or not changes_the_box(match.group(0)):
            continue
        out += [body[pos:match.end()], '<fieldset class="readonly-lock" disabled>', body[match.end():end],
                "</fieldset>"]
        pos = end
    out.append(body[pos:])
    response.set_data("".join(out))
    return response


def password_check(check: Callable[[], bool]) -> bool:
    """Run one argon2 verification in a bounded slot; raises security.Busy when none frees up."""
    with current_app.extensions[PASSWORD_CHECKS_KEY].slot():
        return check()


def _to_login() -> Any:
    ended = bool(session.pop("sid", None))
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    kept = _keep_form() if ended and request.method == "POST" else None
    if kept:
        flash(_("Your session has ended (inactivity, sign-out or a password change). Please sign in again: "
                "what you sent is kept and you can send it again."), "info")
    elif ended:
        flash(_("Your session has ended (inactivity, sign-out or a password change). Please sign in again."), "info")
    return redirect(url_for("auth.login", next=target, kept=kept))


def _keep_form() -> str | None:
    """A form sent after the session ended, kept (security.KeptForms) for auth.kept_form to send again."""
    if request.content_length and request.content_length > KeptForms.MAX_BYTES * 2:
        return None
    fields = [(k, v) for k, v in request.form.items(multi=True) if k != CSRF_FIELD]
    return current_app.extensions[KEPT_FORMS_KEY].keep(request.remote_addr or "?", request.full_path.rstrip("?"),
                                                       fields, bool(request.files))


# -- CSRF -------------------------------------------------------------------------------------------
def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    """Jinja global: the hidden inputs every POST form must contain: the token, and the revision the
    form's values come from (a refused form shown again keeps the one it was built on)."""
    posted = request.form.get(BASE_FIELD, "")
    base = g.get("officebox_base") or (int(posted) if posted.isdigit() else runtime().store.current_id())
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token())}">'
                  + (f'<input type="hidden" name="{BASE_FIELD}" value="{int(base)}">' if base is not None else ""))


OWN_TOKEN_ENDPOINTS: set[str] = set()  # public forms that check a token of their own (blueprints/public.py)


def check_csrf() -> None:
    """before_request hook: refuse any state-changing request without the session's token (400)."""
    if request.method not in UNSAFE_METHODS or request.endpoint in OWN_TOKEN_ENDPOINTS:
        return
    limit = LARGE_UPLOADS.get(request.endpoint or "")
    if limit:
        user = current_user()
        if user is not None and allowed(user, "admin", request.method):
            request.max_content_length = limit
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        abort(400, description=_(CSRF_REFUSED))
