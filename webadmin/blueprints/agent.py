"""The agent panel (staff side): a user with an extension who is an agent of a call queue sees their
state and logs in, out, pauses with a reason or resumes, as the feature codes do on the phone. Through
the PBX's client only (acd_agent, acd_agent_action). Agents of a queue that takes chats also see the chats
offered to them, accept them, reply and close them (acd_chat_agent, acd_chat_act); static/chat.js shows new
messages and new offers without a reload."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.clients import ServiceRestarting
from webadmin import core
from webadmin.blueprints.callcentre import STATE_NAMES, supervises
from webadmin.core import N_

bp = Blueprint("agent", __name__, url_prefix="/agent")
REASONS = [("break", N_("break")), ("lunch", N_("lunch")), ("meeting", N_("meeting")),
           ("training", N_("training")), ("paperwork", N_("paperwork"))]
ACTIONS = ("login", "logout", "pause", "resume")
CHAT_ACTIONS = ("accept", "reply", "close")
CHAT_REFUSALS = {"gone": N_("This chat is over."), "taken": N_("Another agent took this chat."),
                 "limit": N_("You cannot take more chats now."), "text": N_("Please write a message."),
                 "passed": N_("This chat was not taken in time and is offered to another agent now."),
                 "too_many": N_("This chat is too long; close it."),
                 "down": N_("The telephony service is restarting; try again in a moment.")}


def _me() -> tuple[str, object]:
    user = core.current_user()
    pbx = core.service("pbx")
    if user is None or not user.extension or pbx is None:
        abort(404)
    return user.extension, pbx


@bp.route("/")
@core.login_required
def index():
    user = core.current_user()
    if not user.extension or core.service("pbx") is None:
        return render_template("callcentre/agent.html", agent=None, queues=[], states=STATE_NAMES, reasons=REASONS)
    ext, pbx = _me()
    queues = [q.name for q in core.current_config().pbx.queues if q.member(ext)]
    chats = pbx.acd_chat_agent(ext) if _takes_chats(ext) else None
    return render_template("callcentre/agent.html", agent=pbx.acd_agent(ext), queues=queues, states=STATE_NAMES,
                           reasons=REASONS, supervisor=bool(supervises(ext)), chats=chats,
                           chat_sig=_signature(chats) if chats else "",
                           transcripts=pbx.acd_chat_transcripts(ext, 10) if chats else [])


def _takes_chats(ext: str) -> bool:
    return any(q.chat and q.member(ext) for q in core.current_config().pbx.queues)


def _signature(chats: dict) -> str:
    """What the page shows (the chats offered and taken): its script reloads it when this changes."""
    return ",".join(str(c["id"]) for c in chats["offered"]) + ";" + ",".join(str(c["id"]) for c in chats["open"])


@bp.route("/chats")
@core.login_required
def chats_state():
    user, pbx = core.current_user(), core.service("pbx")
    if not user.extension or pbx is None or not _takes_chats(user.extension):
        return jsonify({"sig": ""})  # nothing to watch
    return jsonify({"sig": _signature(pbx.acd_chat_agent(user.extension))})


@bp.route("/chats/<int:chat_id>/messages")
@core.login_required
def chat_messages(chat_id: int):
    """The agent's open chat's messages after `after` (as the public page's), or state "closed"."""
    ext, pbx = _me()
    after = request.args.get("after", 0, type=int) or 0
    chat = next((c for c in pbx.acd_chat_agent(ext)["open"] if c["id"] == chat_id), None)
    if chat is None:
        return jsonify({"state": "closed", "messages": []})
    return jsonify({"state": chat["state"], "count": chat["count"],
                    "messages": [m for m in chat["messages"] if m["n"] > after]})


@bp.route("/chats", methods=["POST"])
@core.login_required
def chat_act():
    ext, pbx = _me()
    action = request.form.get("action", "")
    chat_id = request.form.get("chat", type=int)
    if action not in CHAT_ACTIONS or chat_id is None:
        abort(400)
    try:
        out = pbx.acd_chat_act(ext, action, chat_id, request.form.get("text", "")[:4000])
    except ServiceRestarting:
        out = {"reason": "down"}
    if "status" not in out:
        flash(_("Not done: %(reason)s", reason=_(CHAT_REFUSALS.get(out.get("reason", ""), CHAT_REFUSALS["down"]))),
              "error")
    return redirect(url_for("agent.index") + (f"#chat-{chat_id}" if out.get("status") == "open" else ""))


@bp.route("/", methods=["POST"])
@core.login_required
def act():
    ext, pbx = _me()
    action = request.form.get("action", "")
    reason = request.form.get("reason", "")
    if action not in ACTIONS or (action == "pause" and reason not in dict(REASONS)):
        abort(400)
    try:
        out = pbx.acd_agent_action(ext, action, reason)
    except ServiceRestarting:
        flash(_("The telephony service is restarting; try again in a moment."), "warning")
        return redirect(url_for("agent.index"))
    if "error" in out:
        flash(_("Not done: %(reason)s", reason=out["error"]), "error")
    else:
        flash(_("You are now %(state)s.", state=_(STATE_NAMES.get(out["status"], out["status"]))), "success")
    return redirect(url_for("agent.index"))
