"""The browser phone of the staff pages: the signed-in user's own extension, registered over SIP on
WebSocket (services/pbx/sip/ws.py) by SIP.js (vendored by `make setup`, served from static/vendor).

The page never asks for the SIP secret: its script fetches the signed-in user's credentials from
/webphone/credentials (POST with the session's CSRF token, answered no-store, only ever the caller's
own), with the box's TURN server and its short-lived credentials (services/pbx/webrtc/turn.py) for
browsers whose network lets no UDP through to the box. The page's Content-Security-Policy allows a
WebSocket to the PBX's port only.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_babel import gettext as _

from appliance.service import ApplyError
from webadmin import core

bp = Blueprint("webphone", __name__, url_prefix="/webphone")
CSP = ("default-src 'self'; connect-src 'self' {ws}; img-src 'self' data:; media-src 'self' blob:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _page_host() -> str:
    return request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host


def _phone(login: str = "") -> dict:
    client = core.runtime().client("pbx")
    try:
        return (client.webphone(login) if client is not None else None) or {}
    except (ApplyError, OSError, AttributeError):
        return {}


def _ws_url(phone: dict | None = None) -> str | None:
    """wss://<the name this page was loaded by>:<the PBX's WebSocket port>/ws, or None if not served."""
    port = (phone if phone is not None else _phone()).get("ws_port")
    return f"wss://{_page_host()}:{port}/ws" if port else None


def _ice_servers(phone: dict) -> list[dict]:
    """The box's TURN server (UDP, TCP and TLS, by the name the page was loaded by, which the box
    certificate names) with the PBX's short-lived credentials, when it runs one."""
    relay = phone.get("turn")
    if not relay:
        return []
    host, port = _page_host(), relay["port"]
    urls = [f"turn:{host}:{port}?transport=udp", f"turn:{host}:{port}?transport=tcp"]
    if relay.get("tls_port"):
        urls.append(f"turns:{host}:{relay['tls_port']}?transport=tcp")
    return [{"urls": urls,
             "username": relay["username"], "credential": relay["credential"]}]


@bp.route("/")
@core.login_required
def index():
    user = core.current_user()
    ws = _ws_url() if user.extension else None
    response = render_template("webphone/index.html", user=user, ws=ws)
    return response, 200, {"Content-Security-Policy": CSP.format(ws=ws or "")}


@bp.route("/credentials", methods=["POST"])
@core.login_required
def credentials():
    """The signed-in user's SIP account for the page's script (CSRF-checked POST; never cached)."""
    user = core.current_user()
    phone = _phone(user.login) if user.extension else {}
    ws = _ws_url(phone)
    if not user.extension:
        body, status = {"error": _("You have no extension, so there is no phone to register.")}, 404
    elif ws is None:
        body, status = {"error": _("The telephone service does not serve browser phones right now.")}, 503
    else:
        config = core.current_config()
        body = {"username": user.extension, "password": user.sip_secret, "display_name": user.full_name,
                "uri": f"sip:{user.extension}@{config.system.domain}", "ws": ws,
                "ice_servers": _ice_servers(phone)}
        status = 200
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
