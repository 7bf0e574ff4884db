"""The staff desk (/desk): the signed-in user's phone driven from the browser through the CTI server's
JSON API (services/cti/jsonapi.py). The page is server-rendered (directory, call log, forwarding and
DND as they are, links to voicemail and the browser phone); its script (static/desk.js) gets a
short-lived desk token for the user's own extension from /desk/token, follows the event WebSocket
(incoming-call pop-up, colleagues' presence) and drives the calls over REST."""
from __future__ import annotations

import re
from urllib.parse import quote

from flask import Blueprint, jsonify, render_template, request
from flask_babel import gettext as _

from appliance import contacts
from appliance.service import ApplyError
from webadmin import core

bp = Blueprint("desk", __name__, url_prefix="/desk")
CALL_LOG = 30
NUMBER = re.compile(r"^[0-9*#+]{1,32}$")
CSP = ("default-src 'self'; connect-src 'self' {api}; img-src 'self' data:; frame-ancestors 'none'; "
       "form-action 'self'; base-uri 'none'")


def _host() -> str:
    return request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host


def _api_origins(port: int, tls: bool) -> tuple[str, str]:
    return (f"{'https' if tls else 'http'}://{_host()}:{port}", f"{'wss' if tls else 'ws'}://{_host()}:{port}")


def _cti_port() -> tuple[int, bool] | None:
    """(the JSON API's port, over TLS) of the running CTI server, or None."""
    rt = core.runtime()
    client = rt.client("cti")
    if client is None or not client.enabled(core.current_config()):
        return None
    try:
        figures = client.sessions()
    except (ApplyError, OSError):
        return None
    port = figures.get("api_port")
    return (int(port), not rt.ctx.lab) if port else None


def _call_log(extension: str) -> list[dict]:
    try:
        return core.runtime().client("pbx").cdr_query(party=extension, limit=CALL_LOG)
    except (ApplyError, OSError, AttributeError):
        return []


def _other_party(row: dict, extension: str) -> str:
    return row.get("callee") or row.get("dialled") or "" if row.get("caller") == extension else row.get("caller") or ""


def caller_name(number: str, login: str) -> dict:
    """{"name", "company"} of a number: a colleague's extension, else the user's personal contacts, else
    the shared ones (appliance/contacts.py)."""
    user = next((u for u in core.current_config().users if u.extension == number and u.enabled), None)
    if user is not None:
        return {"name": user.full_name, "company": ""}
    found = contacts.lookup(core.runtime().ctx.data_dir, number, login)
    return {"name": found.name, "company": found.company} if found else {"name": "", "company": ""}


@bp.route("/")
@core.login_required
def index():
    user = core.current_user()
    config = core.current_config()
    api = _cti_port() if user.extension else None
    colleagues = [u for u in sorted(config.users, key=lambda u: u.extension or "")
                  if u.enabled and u.extension and u.extension != user.extension]
    log = [{**row, "other": _other_party(row, user.extension)} for row in _call_log(user.extension)] \
        if user.extension else []
    settings = config.pbx.extensions.get(user.extension) if user.extension else None
    origins = _api_origins(*api) if api else ("", "")
    response = render_template("desk/index.html", user=user, colleagues=colleagues, log=log, api=api,
                               settings=settings, crm_url=config.cti.crm_url, http_api=origins[0],
                               ws_api=origins[1])
    return response, 200, {"Content-Security-Policy": CSP.format(api=" ".join(origins).strip())}


@bp.route("/token", methods=["POST"])
@core.login_required
def token():
    """A desk token for the signed-in user's own extension (CSRF-checked POST; never cached)."""
    user = core.current_user()
    body, status = {}, 200
    if not user.extension:
        body, status = {"error": _("You have no extension, so there is no phone to drive.")}, 404
    else:
        try:
            minted = core.runtime().client("cti").mint_desk_token(user.login)
        except (ApplyError, OSError, ValueError):
            minted = {}
        if not minted:
            body, status = {"error": _("The CTI server is not running: ask your administrator.")}, 503
        else:
            http, ws = _api_origins(minted["port"], minted["tls"])
            body = {"token": minted["token"], "expires": minted["expires"], "extension": minted["extension"],
                    "api": http, "events": f"{ws}/api/v1/events"}
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/caller")
@core.login_required
def caller():
    """The name and company of a caller's number, and the "open in CRM" link, for the pop-up."""
    number = request.args.get("number", "")
    if not NUMBER.match(number):
        return jsonify({"error": _("not a phone number")}), 400
    found = caller_name(number, core.current_user().login)
    template = core.current_config().cti.crm_url
    crm = template.replace("{number}", quote(number, safe="")) if template else ""
    return jsonify({**found, "number": number, "crm": crm})
