"""Call centre: the supervisor's live wallboard (server-sent events; the page shows the state without
JavaScript too), the queues' configuration (pbx.queues: members and skills, strategy, timings,
priorities) and the reports (per queue, agent, hour, day; an SVG chart and CSV). Live data and records
come only through the PBX's client (acd_wallboard, acd_report)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time
import zoneinfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.bus import appliance_bus
from appliance.clients import ServiceRestarting
from appliance.service import ApplyError
from webadmin import core, forms, usedby
from webadmin.core import N_

bp = Blueprint("callcentre", __name__, url_prefix="/callcentre")
NAV = [(N_("Telephony"), N_("Call centre wallboard"), "callcentre.wallboard"),
       (N_("Telephony"), N_("Call queues"), "callcentre.queues"),
       (N_("Telephony"), N_("Call centre reports"), "callcentre.reports")]
STRATEGIES = [("longest_idle", N_("Longest idle agent")), ("ring_all", N_("Ring all free agents")),
              ("fewest_calls", N_("Fewest calls")), ("round_robin", N_("Round robin")),
              ("skills", N_("Skills (highest level first)"))]
STATE_NAMES = {"available": N_("available"), "ringing": N_("ringing"), "on_call": N_("on a call"),
               "wrap_up": N_("wrap-up"), "paused": N_("paused"), "logged_out": N_("logged out")}
NUMBERS = ("max_wait", "max_length", "announce_every", "callback_every", "agent_timeout", "wrap_up",
           "auto_pause_after", "service_level", "priority", "vip_priority", "web_callback_pending")
SUPERVISE_MODES = [("monitor", N_("Listen")), ("whisper", N_("Whisper")), ("barge", N_("Barge in"))]
SUPERVISE_REFUSALS = {"not_allowed": N_("You are not a supervisor of this agent's queues."),
                      "no_call": N_("The agent is not on a call any more."),
                      "supervised": N_("Somebody supervises this call already."),
                      "no_phone": N_("Your extension has no registered phone for the box to ring."),
                      "mode": N_("Choose listen, whisper or barge in."),
                      "down": N_("The telephony service is not running; try again in a moment.")}
MAX_STREAMS = 2  # wallboard event streams at once: each holds one of the server's few worker threads
STREAM_SECONDS = 120  # then the browser reconnects (EventSource does it by itself)
_streams = threading.BoundedSemaphore(MAX_STREAMS)


def _pbx():
    return core.service_or_404("pbx")


def _tz() -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(core.current_config().system.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _day_start() -> float:
    now = dt.datetime.now(_tz())
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def supervises(ext: str | None) -> list[str]:
    """The queues whose supervisors include `ext` (services/pbx/acd/monitor.py authorises the same way)."""
    return [q.name for q in core.current_config().pbx.queues if ext in q.supervisors] if ext else []


def _viewer() -> list[str] | None:
    """Who may see the wallboard: admins (None: every queue) and supervisors (the queues they supervise);
    anybody else gets 403."""
    user = core.current_user()
    if core.sees_admin_pages(user):
        return None
    mine = supervises(user.extension if user else None)
    if not mine:
        abort(403)
    return mine


def _board(only: list[str] | None = None) -> dict:
    return _filtered(_pbx().acd_wallboard(_day_start()), only)


def _filtered(board: dict, only: list[str] | None) -> dict:
    """A supervisor's board: only the queues they supervise, their agents and calls."""
    board.setdefault("calls", [])
    if only is not None:
        board["queues"] = [q for q in board["queues"] if q["name"] in only]
        board["agents"] = [a for a in board["agents"] if set(a["queues"]) & set(only)]
        board["calls"] = [c for c in board["calls"] if c["queue"] in only]
    return board


def _may_supervise(ext: str | None, agent: str) -> bool:
    return bool(ext) and ext != agent and any(
        q.member(agent) and ext in q.supervisors for q in core.current_config().pbx.queues)


# -- wallboard --------------------------------------------------------------------------------------
@bp.route("/")
@core.login_required
def wallboard():
    only = _viewer()
    states = {state: _(label) for state, label in STATE_NAMES.items()}
    user = core.current_user()
    board = _board(only)
    for call in board["calls"]:
        call["may_supervise"] = _may_supervise(user.extension, call["agent"])
    return render_template("callcentre/wallboard.html", board=board, states=STATE_NAMES,
                           states_json=json.dumps(states), modes=SUPERVISE_MODES,
                           supervisor=any(c["may_supervise"] for c in board["calls"]), is_admin=only is None)


@bp.route("/wallboard.json")
@core.login_required
def wallboard_json():
    return Response(json.dumps(_board(_viewer())), mimetype="application/json", headers={"Cache-Control": "no-store"})


@bp.route("/calls/<agent>/supervise", methods=["POST"])
@core.login_required
def supervise(agent: str):
    """Listen / Whisper / Barge on an agent's call: the box rings the supervisor's own phone and joins it
    to the call in that mode once answered. Only a supervisor of one of the agent's queues (else 403)."""
    user = core.current_user()
    mode = request.form.get("mode", "")
    if not _may_supervise(user.extension, agent):
        abort(403)
    if mode not in dict(SUPERVISE_MODES):
        abort(400)
    try:
        out = _pbx().acd_supervise(user.extension, agent, mode)
    except ServiceRestarting:
        out = {"error": "down"}
    if "error" in out:
        flash(_(SUPERVISE_REFUSALS.get(out["error"], SUPERVISE_REFUSALS["down"])), "error")
    else:
        flash(_("Your phone %(ext)s is ringing: answer it to join %(agent)s's call (%(mode)s). "
                "On the phone, 4 listens, 5 whispers, 6 barges in.", ext=user.extension, agent=agent,
                mode=_(dict(SUPERVISE_MODES)[mode])), "success")
    return redirect(url_for("callcentre.wallboard"))


@bp.route("/events")
@core.login_required
def events():
    """Server-sent events: the board each time a queue or an agent changes (the bus's pbx.queue and
    pbx.agent topics), and every second for the waiting times. 503 when MAX_STREAMS are open already
    (the page then polls wallboard.json)."""
    only = _viewer()
    if "text/event-stream" not in request.headers.get("Accept", ""):
        abort(406)  # an event stream only for EventSource, never for a crawler or a plain link
    if not _streams.acquire(blocking=False):
        abort(503)
    client, day_start = _pbx(), _day_start()
    changed = threading.Event()
    bus = appliance_bus(core.runtime().ctx)
    offs = [bus.subscribe(topic, lambda _event: changed.set()) for topic in ("pbx.queue", "pbx.agent")]
    closed = []

    def close() -> None:
        """Once, whether the stream ran to its end, the client left, or it never started."""
        if not closed:
            closed.append(True)
            for off in offs:
                off()
            _streams.release()

    def stream():
        try:
            yield "retry: 1000\n\n"
            last, ends = None, time.monotonic() + STREAM_SECONDS
            while time.monotonic() < ends:
                changed.wait(1.0)
                changed.clear()
                board = json.dumps(_filtered(client.acd_wallboard(day_start), only))
                if board != last:
                    last = board
                    yield f"event: board\ndata: {board}\n\n"
        finally:
            close()
    response = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(close)
    return response


# -- queues -----------------------------------------------------------------------------------------
def _queues() -> list:
    return list(core.current_config().pbx.queues)


@bp.route("/queues")
@core.admin_required
def queues():
    return _queues_page()


def _queues_page(errors: dict[str, str] | None = None, general: list[str] | None = None,
                 public: dict | None = None):
    pbx = core.current_config().pbx
    public = public or {"public_web": pbx.public_web, "public_web_port": str(pbx.public_web_port)}
    return render_template("callcentre/queues.html", queues=_queues(), strategies=dict(STRATEGIES), public=public,
                           errors=errors or {}, general=general or []), 400 if errors or general else 200


@bp.route("/public-port", methods=["POST"])
@core.admin_required
def public_port():
    """The public call-centre pages on a port of their own, open from the WAN (pbx.public_web; served by
    webadmin/publicsite.py, opened by the PBX's "public-web" firewall Listener)."""
    public = {"public_web": forms.checkbox("public_web"), "public_web_port": forms.text("public_web_port", 10)}

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).update(public_web=public["public_web"],
                                         public_web_port=public["public_web_port"] or 8443)
    errors, general = forms.apply_form(_("public call-centre pages"), mutate, prefix="pbx")
    if errors or general:
        return _queues_page(errors, general, public)
    flash(_("The public pages are served on port %(port)s from the Internet.", port=public["public_web_port"])
          if public["public_web"] else _("The public pages are reachable from the LAN only."), "success")
    return redirect(url_for("callcentre.queues"))


def _members_text(q) -> str:
    return "\n".join(f"{m.agent}:{m.skill}" for m in q.members) if q else ""


def _parse_pairs(text: str, field: str, errors: dict[str, str], key: str, value: str) -> list | dict:
    """Lines "201:5" (or "201") -> [{key: "201", value: 5}]."""
    out = []
    for line in (x.strip() for x in text.replace(",", "\n").splitlines()):
        if not line:
            continue
        left, _sep, right = line.partition(":")
        if right and not right.strip().isdigit():
            errors[field] = _("write one per line as number:level, e.g. 201:5")
            continue
        out.append({key: left.strip(), **({value: int(right)} if right else {})})
    return out


@bp.route("/queues/new", methods=["GET", "POST"], defaults={"name": None})
@bp.route("/queues/<name>", methods=["GET", "POST"])
@core.admin_required
def queue_form(name: str | None):
    queues = _queues()
    index = next((i for i, q in enumerate(queues) if q.name == name), None)
    if name is not None and index is None:
        abort(404)
    current = queues[index] if index is not None else None
    errors: dict[str, str] = {}
    general: list[str] = []
    values = current.model_dump() if current else {"strategy": "longest_idle"}
    values["members_text"] = _members_text(current)
    values["vip_text"] = ", ".join(current.vip_callers) if current else ""
    values["supervisors_text"] = ", ".join(current.supervisors) if current else ""
    values["web_numbers_text"] = ", ".join(current.web_callback_numbers) if current else ""
    values["did_text"] = "\n".join(f"{k}:{v}" for k, v in current.did_priorities.items()) if current else ""
    if request.method == "POST":
        item = {k: forms.text(k, 60) for k in ("number", "name", "title", "strategy", "moh_class")}
        item["overflow"] = forms.optional("overflow", 40)
        for k in NUMBERS:
            raw = forms.text(k, 10)
            if raw:
                item[k] = raw
        members = _parse_pairs(forms.text("members_text", 4000), "members_text", errors, "agent", "skill")
        item["members"] = members
        item["vip_callers"] = [v.strip() for v in forms.text("vip_text", 8000).replace("\n", ",").split(",")
                               if v.strip()]
        item["supervisors"] = [v.strip() for v in forms.text("supervisors_text", 2000).replace("\n", ",").split(",")
                               if v.strip()]
        item["web_callback"] = request.form.get("web_callback") == "on"
        item["chat"] = request.form.get("chat") == "on"
        item["web_callback_numbers"] = [v.strip() for v in forms.text("web_numbers_text", 2000).replace("\n", ",")
                                        .split(",") if v.strip()]
        dids = _parse_pairs(forms.text("did_text", 4000), "did_text", errors, "number", "priority")
        item["did_priorities"] = {d["number"]: d.get("priority", 0) for d in dids}
        values.update(item, members_text=forms.text("members_text", 4000), vip_text=forms.text("vip_text", 8000),
                      supervisors_text=forms.text("supervisors_text", 2000),
                      web_numbers_text=forms.text("web_numbers_text", 2000), did_text=forms.text("did_text", 4000))
        if not errors:
            def mutate(doc: dict) -> None:
                items = doc["pbx"].setdefault("queues", [])
                if index is None:
                    items.append(item)
                else:
                    items[index] = {**items[index], **item}
            at = len(queues) if index is None else index
            errors, general = forms.apply_form(_("call queue %(name)s", name=item["name"]), mutate,
                                               prefix=f"pbx.queues.{at}", top=True)
            errors = {{"members": "members_text", "vip_callers": "vip_text", "supervisors": "supervisors_text",
                       "web_callback_numbers": "web_numbers_text",
                       "did_priorities": "did_text"}.get(k, k): v for k, v in errors.items()}
            if not errors and not general:
                flash(_("Queue %(name)s saved.", name=item["name"]), "success")
                return redirect(url_for("callcentre.queues"))
    status = 400 if errors or general else 200
    return render_template("callcentre/queue_form.html", values=values, errors=errors, general=general,
                           strategies_shown=[(v, _(label)) for v, label in STRATEGIES], new=index is None), status


@bp.route("/queues/<name>/delete", methods=["GET", "POST"])
@core.admin_required
def queue_delete(name: str):
    index = next((i for i, q in enumerate(_queues()) if q.name == name), None)
    if index is None:
        abort(404)
    if not usedby.confirmed():
        return usedby.confirm_page("queue", name, _("call queue"), url_for("callcentre.queues"),
                                   lambda doc: doc["pbx"]["queues"].pop(index), nav_active="callcentre.queues")
    problems = forms.remove_item(_("remove call queue %(name)s", name=name), "pbx", "queues", index, N_("queue"))
    for problem in problems:
        flash(problem, "error")
    if not problems:
        flash(_("Queue %(name)s removed.", name=name), "success")
    return redirect(url_for("callcentre.queues"))


# -- reports ----------------------------------------------------------------------------------------
def _report_args() -> tuple[dict, dict[str, str]]:
    args = request.args
    today = dt.datetime.now(_tz()).date()
    values = {"by": args.get("by", "queue"), "since": (args.get("since") or (today - dt.timedelta(days=6)).isoformat()),
              "until": args.get("until") or today.isoformat(), "queue": (args.get("queue") or "")[:32]}
    errors: dict[str, str] = {}
    if values["by"] not in ("queue", "agent", "hour", "day"):
        errors["by"] = _("choose a value from the list")
    forms.date_range(values, errors, _tz())
    return values, errors


def _rows(values: dict) -> list[dict]:
    return _pbx().acd_report(values["since_ts"], values["until_ts"], values["by"],
                             core.current_config().system.timezone, values["queue"])


@bp.route("/reports")
@core.admin_required
def reports():
    values, errors = _report_args()
    rows: list[dict] = []
    chats: list[dict] = []
    takes_chats = any(q.chat for q in _queues())
    if not errors:
        try:
            rows = _rows(values)
            if takes_chats:
                chats = _pbx().acd_chat_report(values["since_ts"], values["until_ts"], values["by"],
                                               core.current_config().system.timezone, values["queue"])
        except ApplyError as exc:
            flash(_(str(exc)), "error")
    top = max([r["offered"] for r in rows] or [1])
    chart = [{"key": r["key"], "answered": r["answered"], "abandoned": r["abandoned"], "offered": r["offered"],
              "answered_h": round(100 * r["answered"] / top), "abandoned_h": round(100 * r["abandoned"] / top)}
             for r in rows]
    return render_template("callcentre/reports.html", values=values, errors=errors, rows=rows, chart=chart,
                           chats=chats, takes_chats=takes_chats,
                           queue_options=[(q.name, q.title or q.name) for q in _queues()]), (400 if errors else 200)


CSV_COLUMNS = ("key", "offered", "answered", "abandoned", "abandoned_wait", "asa", "aht", "service_level",
               "longest_wait", "overflowed", "callbacks")


@bp.route("/reports.csv")
@core.admin_required
def reports_csv():
    values, errors = _report_args()
    if errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in errors.items()))
    try:
        rows = _rows(values)
    except ApplyError as exc:
        abort(503, description=_(str(exc)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([values["by"], *CSV_COLUMNS[1:]])
    for row in rows:
        writer.writerow([_safe_cell(row[c]) for c in CSV_COLUMNS])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="callcentre-{values["by"]}.csv"', "Cache-Control": "no-store"})


def _safe_cell(value):
    """A cell a spreadsheet would run as a formula gets an apostrophe first (as the users' CSV export)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
