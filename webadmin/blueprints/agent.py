"""The agent panel (staff side): a user with an extension who is an agent of a call queue sees their
state and logs in, out, pauses with a reason or resumes, as the feature codes do on the phone. Through
the PBX's client only (acd_agent, acd_agent_action)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.clients import ServiceRestarting
from webadmin import core
from webadmin.blueprints.callcentre import STATE_NAMES, supervises
from webadmin.core import N_

bp = Blueprint("agent", __name__, url_prefix="/agent")
REASONS = [("break", N_("break")), ("lunch", N_("lunch")), ("meeting", N_("meeting")),
           ("training", N_("training")), ("paperwork", N_("paperwork"))]
ACTIONS = ("login", "logout", "pause", "resume")


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
    return render_template("callcentre/agent.html", agent=pbx.acd_agent(ext), queues=queues, states=STATE_NAMES,
                           reasons=REASONS, supervisor=bool(supervises(ext)))


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
