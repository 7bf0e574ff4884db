"""Conference pages: the meet-me rooms of the configuration (list, add, edit, delete; the PIN is stored
argon2-hashed and never shown) and each room's participants live (refreshed every few seconds, no
JavaScript needed), with mute / unmute and remove. Live data comes from the pbx service's
conference_rooms, conference_mute and conference_remove (appliance.clients.PbxClient)."""
from __future__ import annotations

import re
import time

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.clients import ServiceRestarting
from appliance.service import ApplyError
from services.pbx.conference import hash_pin
from webadmin import core, forms, usedby
from webadmin.core import N_

bp = Blueprint("conference", __name__, url_prefix="/conference")
NAV = [(N_("Telephony"), N_("Conferences"), "conference.rooms")]
ALONE = [("music", N_("Hold music")), ("prompt", N_("A prompt saying they are alone"))]
KEYS = [(k, k) for k in ("*", "#", *"0123456789")]
CODE_KEYS = [("count_key", "1"), ("lock_key", "2"), ("remove_key", "3")]  # the codes' fields and defaults
REFRESH = 5  # seconds between refreshes of the live view


def _pbx():
    return core.service_or_404("pbx")


def _live() -> dict[str, dict]:
    try:
        return {r["name"]: r for r in _pbx().conference_rooms()}
    except ApplyError:
        return {}  # the PBX is restarting: no live figures for a moment


def _rooms() -> list[dict]:
    return [r.model_dump() for r in core.current_config().pbx.conference_rooms]


@bp.route("/")
@core.admin_required
def rooms():
    live = _live()
    adhoc = [r for r in live.values() if r["adhoc"]]
    return render_template("conference/rooms.html", rooms=_rooms(), live=live, adhoc=adhoc)


def _posted(old: dict | None, errors: dict[str, str]) -> dict:
    item = {"number": forms.text("number", 10), "name": forms.text("name", 40), "title": forms.text("title", 60),
            "max_participants": forms.text("max_participants", 6) or "10", "alone": forms.text("alone", 10),
            "tones": forms.checkbox("tones"), "mute_key": forms.text("mute_key", 1) or "*",
            "pin_hash": (old or {}).get("pin_hash"),
            "leaders": [e for e in re.split(r"[\s,;]+", forms.text("leaders", 200)) if e]}
    for field, default in CODE_KEYS:
        item[field] = request.form.get(field, default)[:1]  # empty: no such code
    pin = forms.text("pin", 20)
    if forms.checkbox("no_pin"):
        item["pin_hash"] = None
    elif pin:
        try:
            item["pin_hash"] = hash_pin(pin)
        except ValueError:
            errors["pin"] = _("a conference PIN has 4 to 12 digits")
    return item


@bp.route("/new", endpoint="new", methods=["GET", "POST"])
@bp.route("/<name>/edit", endpoint="edit", methods=["GET", "POST"])
@core.admin_required
def edit(name: str | None = None):
    items = _rooms()
    names = [r["name"] for r in items]
    if name is not None and name not in names:
        abort(404)
    index = names.index(name) if name is not None else len(items)
    old = items[index] if name is not None else None
    values = dict(old or {"max_participants": 10, "alone": "music", "tones": True, "mute_key": "*", "leaders": [],
                          **dict(CODE_KEYS)})
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        item = _posted(old, errors)
        values = item
        if not errors:
            def mutate(doc: dict) -> None:
                rooms = doc.setdefault("pbx", {}).setdefault("conference_rooms", [])
                if name is None:
                    rooms.append(item)
                    return
                for i, existing in enumerate(rooms):
                    if existing.get("name") == name:
                        rooms[i] = item
                        return
                raise ConfigError({"": _("the conference room %(name)s no longer exists", name=name)})

            errors, general = forms.apply_form(f"{'edit' if name else 'add'} conference room {item['name'] or '?'}",
                                               mutate, f"pbx.conference_rooms.{index}")
            if not errors and not general:
                flash(_("The conference room %(name)s was saved.", name=item["name"]), "success")
                return redirect(url_for("conference.rooms"))
    return render_template("conference/edit.html", values=values, errors=errors, general=general, name=name,
                           alone=[(v, _(t)) for v, t in ALONE], keys=KEYS,
                           code_keys=[("", _("No key")), *KEYS]), (400 if errors or general else 200)


@bp.route("/<name>/delete", methods=["GET", "POST"])
@core.admin_required
def delete(name: str):
    names = [r["name"] for r in _rooms()]
    if name not in names:
        abort(404)
    if not usedby.confirmed():
        return usedby.confirm_page("conference", name, _("conference room"), url_for("conference.rooms"),
                                   lambda doc: doc["pbx"]["conference_rooms"].pop(names.index(name)),
                                   nav_active="conference.rooms")
    general = forms.remove_item(f"delete conference room {name}", "pbx", "conference_rooms", names.index(name),
                                N_("conference room"))
    if general:
        flash(_("The conference room %(name)s was not deleted: %(reasons)s", name=name, reasons="; ".join(general)),
              "error")
    else:
        flash(_("The conference room %(name)s was deleted.", name=name), "success")
    return redirect(url_for("conference.rooms"))


@bp.route("/<name>/live")
@core.admin_required
def live(name: str):
    room = _live().get(name)
    if room is None:
        if name not in [r["name"] for r in _rooms()]:
            abort(404)
        room = {"name": name, "participants": [], "adhoc": False}
    return render_template("conference/live.html", room=room, refresh=REFRESH, now=time.time())


@bp.route("/<name>/participants/<int:pid>/mute", methods=["POST"])
@core.admin_required
def mute(name: str, pid: int):
    muted = forms.checkbox("muted")
    done = _call(lambda svc: svc.conference_mute(name, pid, muted))
    if done is False:
        flash(_("That participant has left the conference."), "error")
    return redirect(url_for("conference.live", name=name))


@bp.route("/<name>/participants/<int:pid>/remove", methods=["POST"])
@core.admin_required
def remove(name: str, pid: int):
    done = _call(lambda svc: svc.conference_remove(name, pid))
    if done:
        flash(_("The participant was removed from the conference."), "success")
    elif done is False:
        flash(_("That participant has left the conference."), "error")
    return redirect(url_for("conference.live", name=name))


def _call(fn) -> bool | None:
    """The action's outcome; None (and the reason flashed) if the PBX could not be asked."""
    try:
        return bool(fn(_pbx()))
    except ServiceRestarting as err:
        flash(str(err), "error")
    except ApplyError as err:
        flash(forms.general_error(err), "error")
    return None
