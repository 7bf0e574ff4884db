"""The public call-back page (no sign-in): /public/callback/<queue>, for the company to link or embed in
its website (frames allowed). The visitor leaves a number, and optionally a name and a subject; the request
waits in the queue (services/pbx/acd/callback.py) and the page says its position.

Abuse limits, with no CAPTCHA: a signed form token that must be between MIN_AGE seconds and TOKEN_AGE old
and is taken once; a honeypot field people never see; RATE requests per address per RATE_WINDOW seconds;
the PBX accepts only numbers matching the queue's patterns and a bounded number of pending requests.
"""
from __future__ import annotations

import collections
import threading
import time

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeTimedSerializer

from appliance.clients import ServiceRestarting
from webadmin import core
from webadmin.core import N_

bp = Blueprint("public", __name__, url_prefix="/public")
MIN_AGE, TOKEN_AGE = 3.0, 3600  # seconds
RATE, RATE_WINDOW, MAX_ADDRESSES = 3, 600.0, 10_000
REFUSALS = {"number": N_("This number cannot be called back. Please enter a number of this country."),
            "full": N_("Too many requests are waiting. Please try again later."),
            "duplicate": N_("This number is already waiting to be called back."),
            "queue": N_("This service does not take call-back requests."),
            "down": N_("The telephone system is not available. Please try again later.")}


class RateLimit:
    """At most `count` requests per address in `window` seconds; the oldest addresses are forgotten first."""

    def __init__(self, count: int, window: float, addresses: int) -> None:
        self.count, self.window, self.addresses = count, window, addresses
        self.seen: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self.lock = threading.Lock()

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self.lock:
            times = self.seen.pop(address, None) or collections.deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            self.seen[address] = times
            while len(self.seen) > self.addresses:
                self.seen.popitem(last=False)
            if len(times) >= self.count:
                return False
            times.append(now)
            return True


limits = RateLimit(RATE, RATE_WINDOW, MAX_ADDRESSES)
_used_tokens: collections.OrderedDict[str, None] = collections.OrderedDict()
_used_lock = threading.Lock()


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="officebox-public-callback")


def _token_problem(token: str, queue: str) -> str | None:
    try:
        data = _signer().loads(token, max_age=TOKEN_AGE)
    except BadSignature:
        return _("This form is out of date. Please fill it in again.")
    if not isinstance(data, dict) or data.get("q") != queue:
        return _("This form is out of date. Please fill it in again.")
    if time.time() - float(data.get("t", 0)) < MIN_AGE:
        return _("That was too fast. Please check the form and send it again.")
    with _used_lock:
        if token in _used_tokens:
            return _("This form was sent already.")
        _used_tokens[token] = None
        while len(_used_tokens) > MAX_ADDRESSES:
            _used_tokens.popitem(last=False)
    return None


def _page(q, message: str = "", error: str = "", values: dict | None = None, status: int = 200):
    token = _signer().dumps({"q": q.name, "t": time.time()})
    response = current_app.make_response((render_template(
        "callcentre/public_callback.html", queue=q, token=token, message=message, error=error,
        values=values or {}), status))
    return _secured(response)


def _secured(response, token_in_url: bool = False):
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; frame-ancestors *; "
                                                   "form-action 'self'; base-uri 'none'")
    if token_in_url:  # a chat's address is its secret: not sent on to other pages, not cached
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/callback/<name>", methods=["GET", "POST"])
@core.public
def callback(name: str):
    q = next((q for q in core.current_config().pbx.queues if q.name == name and q.web_callback), None)
    if q is None:
        abort(404)
    if request.method == "GET":
        return _page(q)
    values = {k: request.form.get(k, "")[:200] for k in ("number", "name", "subject")}
    if request.form.get("website"):  # the honeypot: people never see it
        return _page(q, error=_("The request was refused."), status=400)
    problem = _token_problem(request.form.get("token", ""), q.name)
    if problem:
        return _page(q, error=problem, values=values, status=400)
    if not limits.allow(request.remote_addr or "?"):
        return _page(q, error=_("Too many requests from your address. Please try again later."), values=values,
                     status=429)
    pbx = core.service("pbx")
    try:
        out = pbx.acd_web_callback(q.name, values["number"], values["name"], values["subject"]) if pbx else \
            {"reason": "down"}
    except ServiceRestarting:
        out = {"reason": "down"}
    if "position" not in out:
        return _page(q, error=_(REFUSALS.get(out.get("reason", ""), REFUSALS["down"])), values=values, status=400)
    return _page(q, message=_("Thank you. We will call you back as soon as an agent is free; you are number "
                              "%(position)d in the queue.", position=out["position"]))


# -- text chat (services/pbx/acd/chat.py) ---------------------------------------------------------------
# The start form is checked as the call-back's (signed token, honeypot, CHAT_RATE chats per address per
# RATE_WINDOW); a chat's page, its form and its JSON are known by the chat's unguessable token only, which is
# also what stops a cross-site form (a foreign page cannot know it).
CHAT_RATE = 3
chat_limits = RateLimit(CHAT_RATE, RATE_WINDOW, MAX_ADDRESSES)
CHAT_REFUSALS = {"no_agent": N_("No agent is available to chat right now."),
                 "text": N_("Please write a message."),
                 "email": N_("This is not an e-mail address."),
                 "full": N_("Too many chats are open. Please try again later."),
                 "queue": N_("This service does not take chats."),
                 "too_fast": N_("You are writing too fast. Please wait a moment."),
                 "too_many": N_("This chat is too long. Please start a new one."),
                 "closed": N_("This chat is closed."),
                 "gone": N_("This chat is over."),
                 "down": REFUSALS["down"]}


def _pbx_call(method: str, *args) -> dict:
    pbx = core.service("pbx")
    try:
        return getattr(pbx, method)(*args) if pbx else {"reason": "down"}
    except ServiceRestarting:
        return {"reason": "down"}


def _chat_queue(name: str):
    q = next((q for q in core.current_config().pbx.queues if q.name == name and q.chat), None)
    if q is None:
        abort(404)
    return q


def _start_page(q, error: str = "", values: dict | None = None, status: int = 200, no_agent: bool = False):
    token = _signer().dumps({"q": "chat:" + q.name, "t": time.time()})
    return _secured(current_app.make_response((render_template(
        "callcentre/public_chat_start.html", queue=q, token=token, error=error, values=values or {},
        no_agent=no_agent), status)))


@bp.route("/chat/<name>", methods=["GET", "POST"])
@core.public
def chat_start(name: str):
    q = _chat_queue(name)
    if request.method == "GET":
        return _start_page(q)
    values = {"name": request.form.get("name", "")[:200], "email": request.form.get("email", "")[:200],
              "text": request.form.get("text", "")[:4000]}
    if request.form.get("website"):
        return _start_page(q, error=_("The request was refused."), status=400)
    problem = _token_problem(request.form.get("token", ""), "chat:" + q.name)
    if problem:
        return _start_page(q, error=problem, values=values, status=400)
    if not chat_limits.allow(request.remote_addr or "?"):
        return _start_page(q, error=_("Too many requests from your address. Please try again later."),
                           values=values, status=429)
    values["mail"] = bool(request.form.get("mail"))
    out = _pbx_call("acd_chat_start", q.name, values["name"], values["email"], values["text"], values["mail"],
                    str(get_locale() or "en"))
    if "token" not in out:
        reason = out.get("reason", "down")
        return _start_page(q, error=_(CHAT_REFUSALS.get(reason, REFUSALS["down"])), values=values,
                           status=503 if reason in ("no_agent", "down", "full") else 400,
                           no_agent=reason == "no_agent")
    return redirect(url_for("public.chat", token=out["token"]), 303)


def _conversation(token: str, error: str = "", status: int = 200):
    chat = _pbx_call("acd_chat_visitor", token, 0)
    if "messages" not in chat:
        abort(404)
    q = next((q for q in core.current_config().pbx.queues if q.name == chat["queue"]), None)
    return _secured(current_app.make_response((render_template(
        "callcentre/public_chat.html", chat=chat, token=token, error=error,
        callback=bool(q and q.web_callback)), status)), token_in_url=True)


@bp.route("/chats/<token>", methods=["GET", "POST"])
@core.public
def chat(token: str):
    if request.method == "GET":
        return _conversation(token)
    out = _pbx_call("acd_chat_say", token, request.form.get("text", "")[:4000], request.form.get("action") == "close")
    if "count" not in out:
        if out.get("reason") == "gone":
            abort(404)
        return _conversation(token, _(CHAT_REFUSALS.get(out.get("reason", ""), REFUSALS["down"])), status=400)
    return redirect(url_for("public.chat", token=token), 303)


@bp.route("/chats/<token>/messages")
@core.public
def chat_messages(token: str):
    """New messages for the page's script: {"state", "agent_name", "count", "messages": [{n, who, text, time}]}."""
    chat = _pbx_call("acd_chat_visitor", token, request.args.get("after", 0, type=int) or 0)
    if "messages" not in chat:
        return _secured(jsonify({"state": "gone", "messages": []}), token_in_url=True), 404
    view = {k: chat[k] for k in ("state", "agent_name", "count", "messages")}
    return _secured(jsonify(view), token_in_url=True)


core.OWN_TOKEN_ENDPOINTS.add("public.callback")  # its form carries its own token (no session for visitors)
core.OWN_TOKEN_ENDPOINTS.update(("public.chat_start", "public.chat"))
