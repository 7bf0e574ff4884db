"""The OfficeBox web admin: a Flask app over the appliance Runtime.

Every module in webadmin/blueprints/ exposing `bp` is registered; its optional
`NAV = [("Group", "Link title", "endpoint"), ...]` feeds the grouped side navigation.
Serve it over HTTPS only: the session cookie is Secure, HttpOnly, SameSite=Strict.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from flask import Flask, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from webadmin import core, forms, i18n
from webadmin.core import N_
from webadmin.security import (
    Enrolments,
    KeptForms,
    Lockout,
    PasswordChecks,
    PendingSignIns,
    SessionRegistry,
    TotpCodes,
    load_secret_key,
)

log = logging.getLogger("officebox.webadmin")
# navigation groups in this order; groups nobody listed here come before "System", alphabetically
GROUP_ORDER = ["Overview", "Directory", "Telephony", "Network", "Internet", "Security", "Mail"]
LAST_GROUP = "System"


def create_app(runtime: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=load_secret_key(runtime.ctx.data_dir),
        SESSION_COOKIE_NAME="__Host-officebox",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions[core.RUNTIME_KEY] = runtime
    app.extensions[core.SESSIONS_KEY] = SessionRegistry()
    app.extensions[core.LOCKOUT_KEY] = Lockout()
    app.extensions[core.PASSWORD_CHECKS_KEY] = PasswordChecks()
    app.extensions.update({core.PENDING_KEY: PendingSignIns(), core.ENROLMENTS_KEY: Enrolments(),
                           core.TOTP_KEY: TotpCodes(), core.KEPT_FORMS_KEY: KeptForms()})
    app.before_request(core.check_csrf)
    app.before_request(_first_boot_gate)
    app.before_request(core.enforce_access)
    app.after_request(_security_headers)
    app.after_request(core.lock_forms)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
    app.jinja_env.globals.update(csrf_field=core.csrf_field, current_user=core.current_user)
    app.jinja_env.globals.update(posted_to=forms.posted_to)
    i18n.init_app(app)
    app.context_processor(_page_context)
    _register_blueprints(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from webadmin import blueprints

    nav: list[tuple[str, str, str]] = []
    broken: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(blueprints.__path__), key=lambda i: i.name):
        try:
            module = importlib.import_module(f"{blueprints.__name__}.{info.name}")
        except Exception as exc:  # one broken page must not take the whole admin down
            log.exception("web admin page %s could not be loaded", info.name)
            broken[info.name] = f"{exc.__class__.__name__}: {exc}"
            continue
        if getattr(module, "bp", None) is None:
            continue
        app.register_blueprint(module.bp)
        nav.extend(getattr(module, "NAV", []))
    groups: dict[str, list[tuple[str, str]]] = {}
    for group, title, endpoint in nav:
        if endpoint not in app.view_functions:
            log.error("navigation entry %r points to unknown endpoint %r", title, endpoint)
            continue
        groups.setdefault(group, []).append((title, endpoint))
    app.extensions["officebox.nav"] = sorted(groups.items(), key=lambda item: _group_rank(item[0]))
    app.extensions["officebox.broken_pages"] = broken


def _group_rank(group: str) -> tuple[int, str]:
    if group in GROUP_ORDER:
        return GROUP_ORDER.index(group), ""
    return (len(GROUP_ORDER) + (1 if group == LAST_GROUP else 0)), group


def _first_boot_gate() -> Any:
    """Before the wizard ran only the wizard exists; afterwards the wizard is gone."""
    initialized = core.current_config().system.initialized
    if request.blueprint == "setup":
        if initialized:
            return render_error(404)
        return None
    if not initialized and request.endpoint not in core.FRAMEWORK_PUBLIC:
        return redirect(url_for("setup.wizard"))
    return None


def _security_headers(response: Any) -> Any:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _page_context() -> dict[str, Any]:
    user = core.current_user()
    nav = current_app.extensions["officebox.nav"] if core.sees_admin_pages(user) else []
    endpoint = request.endpoint or ""
    endpoints = {e for _, links in nav for _, e in links}
    active = endpoint if endpoint in endpoints else next(
        (e for e in endpoints if request.blueprint and e.split(".")[0] == request.blueprint), "")
    system = core.current_config().system
    waiting = core.runtime().engine.confirmation.pending() if nav else None  # admins: a change to confirm
    return {"nav_groups": nav, "nav_active": active, "company_name": system.company_name if system.initialized else "",
            "waiting_confirmation": waiting if request.blueprint != "firewall" else None}


ERROR_TITLES = {400: N_("Request refused"), 403: N_("Not allowed"), 404: N_("Page not found"),
                405: N_("Method not allowed"), 413: N_("Upload too large"), 429: N_("Too many requests"),
                500: N_("Internal error"), 503: N_("Busy")}
ERROR_TEXTS = {403: N_("Your account may not open this page."),
               404: N_("There is no such page. Use the navigation to find what you are looking for."),
               413: N_("The upload is larger than the box accepts."),
               500: N_("Something went wrong on the box. The error was logged; please try again.")}


def render_error(code: int, message: str | None = None) -> tuple[str, int]:
    title = _(ERROR_TITLES.get(code, N_("Error")))
    return render_template("error.html", code=code, title=title,
                           message=message or _(ERROR_TEXTS.get(code, title))), code


def _http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    message = exc.description if code == 400 else None
    try:
        return render_error(code, message)
    except Exception:  # the error page itself must not fail
        log.exception("error page failed")
        return exc


def _server_error(exc: Exception) -> Any:
    log.exception("unhandled error in %s %s", request.method, request.path)
    g.pop("officebox_user", None)
    try:
        return render_error(500)
    except Exception:
        log.exception("error page failed")
        return "Internal error", 500


__all__ = ["create_app", "render_error"]
