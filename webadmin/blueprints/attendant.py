"""Auto attendant pages: attendants and their menus (options per key, greeting recorded by phone,
uploaded or typed and spoken by espeak-ng, with a listen button), time profiles (opening hours per
weekday with breaks, the country's public holidays shown, the company's dates, an iCalendar import)
and the night service switch. Everything is the `pbx` section of the document (apply_change); the
greeting files are the PBX's (services/pbx/attendant/greetings.py). Works without JavaScript.
"""
from __future__ import annotations

import datetime
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from services.pbx.attendant import ics, timeprofile
from services.pbx.attendant.greetings import Greetings
from services.pbx.config import WEEKDAYS
from services.pbx.prompts import AudioError, PromptError
from webadmin import core, forms, usedby
from webadmin.blueprints.pbx import PERMISSIONS
from webadmin.blueprints.voice import ACCEPT, PROMPT_UPLOAD_LIMIT, _saved, prompt_library
from webadmin.core import N_

bp = Blueprint("attendant", __name__, url_prefix="/attendant")
NAV = [(N_("Telephony"), N_("Auto attendants"), "attendant.index"),
       (N_("Telephony"), N_("Time profiles"), "attendant.profiles")]
core.LARGE_UPLOADS["attendant.greeting_upload"] = PROMPT_UPLOAD_LIMIT
KEYS = "1234567890*#"
STATE_TEXTS = [("open", N_("Greeting text when open")), ("break", N_("Greeting text during a break")),
               ("closed", N_("Greeting text when closed")), ("holiday", N_("Greeting text on a holiday"))]
ACTIONS = [("", N_("(nothing)")), ("extension", N_("Extension")), ("group", N_("Ring group")),
           ("voicemail", N_("Voicemail box")), ("menu", N_("Another menu")), ("attendant", N_("Another attendant")),
           ("operator", N_("The operator")), ("external", N_("External number")),
           ("dial_by_name", N_("Dial by name")), ("repeat", N_("Repeat the menu")), ("hangup", N_("Hang up"))]
STATES = [("open", N_("Open")), ("break", N_("Break")), ("closed", N_("Closed")), ("holiday", N_("Holiday"))]
DAYS = dict(zip(WEEKDAYS, [N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"),
                           N_("Saturday"), N_("Sunday")], strict=True))
RANGE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
DATE_LINE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(\d{4}-\d{2}-\d{2}))?\s*(.*)$")
ICS_LIMIT = ics.MAX_BYTES


def _greetings() -> Greetings:
    return Greetings(core.runtime().ctx.data_dir)


def _pbx():
    return core.current_config().pbx


def _index_of(items, name: str) -> int:
    index = next((i for i, item in enumerate(items) if item.name == name), None)
    if index is None:
        abort(404)
    return index


def _apply(summary: str, mutate, prefix: str, fields: dict[str, str] | None = None):
    return forms.apply_form(summary, mutate, prefix, fields=fields)


# -- attendants ---------------------------------------------------------------------------------------
@bp.route("/", methods=["GET"])
@core.admin_required
def index(errors: dict | None = None, general: list | None = None, status: int = 200):
    cfg = _pbx()
    numbers = {dest: number for number, dest in cfg.application_numbers.items()}
    dids = {d.destination: d.number for d in cfg.dids}
    return render_template("attendant/index.html", attendants=cfg.attendants, numbers=numbers, dids=dids,
                           profiles=cfg.time_profiles, errors=errors or {}, general=general or [],
                           states=_states(cfg)), status


def _states(cfg) -> dict[str, str]:
    from services.pbx.attendant import clock
    now = clock.now()
    return {p.name: timeprofile.state(p, now) for p in cfg.time_profiles}


@bp.route("/new", methods=["POST"])
@core.admin_required
def create():
    name = forms.text("name", 40)

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("attendants", []).append(
            {"name": name, "menus": [{"name": "main", "options": [{"key": "0", "action": "operator"}]}]})

    count = len(_pbx().attendants)
    errors, general = _apply(f"new attendant {name}", mutate, f"pbx.attendants.{count}")
    if errors or general:
        return index(errors, general, 400)
    flash(_("Attendant %(name)s created.", name=name), "success")
    return redirect(url_for("attendant.edit", name=name))


@bp.route("/<name>", methods=["GET", "POST"])
@core.admin_required
def edit(name: str):
    cfg = _pbx()
    i = _index_of(cfg.attendants, name)
    att = cfg.attendants[i]
    errors: dict[str, str] = {}
    general: list[str] = []
    values = att.model_dump(mode="json")
    if request.method == "POST":
        values.update(profile=forms.text("profile", 40), operator=forms.text("operator", 10),
                      permission=forms.text("permission", 20), fallback=forms.text("fallback", 40),
                      language=forms.text("language", 10), timeout=_int("timeout"), attempts=_int("attempts"),
                      entry={s: forms.text(f"entry_{s}", 40) for s, _label in STATES if forms.text(f"entry_{s}", 40)})

        def mutate(doc: dict) -> None:
            doc["pbx"]["attendants"][i].update({k: values[k] for k in (
                "profile", "operator", "permission", "fallback", "language", "timeout", "attempts", "entry")})

        fields = {f"pbx.attendants.{i}.entry.{s}": f"entry_{s}" for s, _label in STATES}
        errors, general = _apply(f"attendant {name}", mutate, f"pbx.attendants.{i}", fields)
        if not errors and not general:
            flash(_("Attendant %(name)s saved.", name=name), "success")
            return redirect(url_for("attendant.edit", name=name))
    return render_template("attendant/edit.html", att=att, values=values, errors=errors, general=general,
                           profiles=cfg.time_profiles, permissions=PERMISSIONS, states=STATES,
                           nav_active="attendant.index"), (400 if errors or general else 200)


def _int(name: str) -> int | str:
    value = forms.text(name, 10)
    return int(value) if value.isdigit() else value


@bp.route("/<name>/delete", methods=["GET", "POST"])
@core.admin_required
def delete(name: str):
    i = _index_of(_pbx().attendants, name)
    if not usedby.confirmed():
        return usedby.confirm_page("attendant", name, _("attendant"), url_for("attendant.index"),
                                   lambda doc: doc["pbx"]["attendants"].pop(i), nav_active="attendant.index")
    general = forms.remove_item(f"remove attendant {name}", "pbx", "attendants", i, N_("attendant"))
    if general:
        return index({}, general, 400)
    flash(_("Attendant %(name)s removed.", name=name), "success")
    return redirect(url_for("attendant.index"))


# -- menus ----------------------------------------------------------------------------------------------
@bp.route("/<name>/menus/new", methods=["POST"])
@core.admin_required
def menu_create(name: str):
    i = _index_of(_pbx().attendants, name)
    menu = forms.text("menu", 40)

    def mutate(doc: dict) -> None:
        doc["pbx"]["attendants"][i]["menus"].append({"name": menu})

    errors, general = _apply(f"attendant {name}: new menu {menu}", mutate, f"pbx.attendants.{i}")
    if errors or general:
        flash("; ".join([*general, *errors.values()]), "error")
        return redirect(url_for("attendant.edit", name=name))
    return redirect(url_for("attendant.menu", name=name, menu=menu))


@bp.route("/<name>/menus/<menu>", methods=["GET", "POST"])
@core.admin_required
def menu(name: str, menu: str):
    cfg = _pbx()
    i = _index_of(cfg.attendants, name)
    att = cfg.attendants[i]
    j = _index_of(att.menus, menu)
    current = att.menus[j]
    values = current.model_dump(mode="json")
    options = {o.key: o for o in current.options}
    rows = {k: {"action": options[k].action if k in options else "", "target": options[k].target if k in options
                else ""} for k in KEYS}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        rows = {k: {"action": forms.text(f"action_{_key_name(k)}", 20),
                    "target": forms.text(f"target_{_key_name(k)}", 40)} for k in KEYS}
        posted = [{"key": k, "action": r["action"], "target": r["target"]} for k, r in rows.items() if r["action"]]
        texts = {state: forms.text(f"state_text_{state}", 1000) for state, _label in STATE_TEXTS}
        values.update(greeting_text=forms.text("greeting_text", 1000), number=forms.text("number", 10),
                      dial_extensions=forms.checkbox("dial_extensions"), options=posted,
                      state_texts={state: text for state, text in texts.items() if text})

        def mutate(doc: dict) -> None:
            doc["pbx"]["attendants"][i]["menus"][j].update(
                {k: values[k] for k in ("greeting_text", "number", "dial_extensions", "options", "state_texts")})

        at = f"pbx.attendants.{i}.menus.{j}"
        fields = {f"{at}.options.{n}{rest}": f"target_{_key_name(o['key'])}" for n, o in enumerate(posted)
                  for rest in ("", ".target", ".key", ".action")}
        errors, general = _apply(f"attendant {name}: menu {menu}", mutate, at, fields)
        if not errors and not general:
            flash(_("Menu %(menu)s saved.", menu=menu), "success")
            return redirect(url_for("attendant.menu", name=name, menu=menu))
    recorded = Greetings.recorded(_greetings().menu_stem(name, menu)) is not None
    return render_template("attendant/menu.html", att=att, menu=current, values=values, rows=rows, keys=KEYS,
                           key_name=_key_name, actions=ACTIONS, errors=errors, general=general, recorded=recorded,
                           state_texts=STATE_TEXTS,
                           accept=ACCEPT, nav_active="attendant.index"), (400 if errors or general else 200)


def _key_name(key: str) -> str:
    return {"*": "star", "#": "hash"}.get(key, key)


@bp.route("/<name>/menus/<menu>/delete", methods=["GET", "POST"])
@core.admin_required
def menu_delete(name: str, menu: str):
    """Asked first (webadmin/usedby.py): the other menus and the entries that lead to it."""
    att_i = _index_of(_pbx().attendants, name)
    j = _index_of(_pbx().attendants[att_i].menus, menu)

    def mutate(doc: dict) -> None:
        del doc["pbx"]["attendants"][att_i]["menus"][j]

    if not usedby.confirmed():
        return usedby.confirm_page("menu", f"{name}/{menu}", _("menu"), url_for("attendant.menu", name=name, menu=menu),
                                   mutate, nav_active="attendant.index")

    errors, general = _apply(f"attendant {name}: remove menu {menu}", mutate, f"pbx.attendants.{att_i}")
    if errors or general:
        flash("; ".join([*general, *errors.values()]), "error")
        return redirect(url_for("attendant.menu", name=name, menu=menu))
    _greetings().remove(_greetings().menu_stem(name, menu))
    flash(_("Menu %(menu)s removed.", menu=menu), "success")
    return redirect(url_for("attendant.edit", name=name))


@bp.route("/<name>/menus/<menu>/greeting.wav")
@core.admin_required
def greeting_audio(name: str, menu: str):
    """What a caller hears as this menu's greeting: the recording, else the spoken text, else the welcome."""
    att = _pbx().attendants[_index_of(_pbx().attendants, name)]
    current = att.menus[_index_of(att.menus, menu)]
    store = _greetings()
    lang = att.language or _pbx().prompt_language
    try:
        path = store.chosen(store.menu_stem(name, menu), current.greeting_text, lang) \
            or prompt_library().prompt_path("att-welcome", lang)
    except (AudioError, PromptError) as err:
        abort(503, description=str(err))
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)


@bp.route("/<name>/menus/<menu>/upload", methods=["POST"])
@core.admin_required
def greeting_upload(name: str, menu: str):
    att = _pbx().attendants[_index_of(_pbx().attendants, name)]
    _index_of(att.menus, menu)
    store = _greetings()
    stem = store.menu_stem(name, menu)
    with _saved("audio", stem.parent) as path:
        if path is None:
            flash(_("Choose a WAV, MP3 or OGG file to upload."), "error")
        else:
            try:
                store.store_upload(stem, path)
            except AudioError as err:
                flash(_("The file was refused: %(reason)s.", reason=err), "error")
            else:
                flash(_("Menu %(menu)s now plays your recording.", menu=menu), "success")
    return redirect(url_for("attendant.menu", name=name, menu=menu))


@bp.route("/<name>/menus/<menu>/recording/delete", methods=["POST"])
@core.admin_required
def greeting_remove(name: str, menu: str):
    att = _pbx().attendants[_index_of(_pbx().attendants, name)]
    _index_of(att.menus, menu)
    _greetings().remove(_greetings().menu_stem(name, menu))
    flash(_("The recording was removed: the menu plays its text or the generated welcome."), "success")
    return redirect(url_for("attendant.menu", name=name, menu=menu))


# -- time profiles ------------------------------------------------------------------------------------
@bp.route("/profiles", methods=["GET"])
@core.admin_required
def profiles(errors: dict | None = None, general: list | None = None, status: int = 200):
    cfg = _pbx()
    return render_template("attendant/profiles.html", profiles=cfg.time_profiles, states=_states(cfg),
                           errors=errors or {}, general=general or [], days=DAYS), status


@bp.route("/profiles/new", methods=["POST"])
@core.admin_required
def profile_create():
    name = forms.text("name", 40)
    office = [{"start": "09:00", "end": "12:30"}, {"start": "14:00", "end": "18:00"}]

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("time_profiles", []).append(
            {"name": name, "hours": {day: office for day in WEEKDAYS[:5]}})

    count = len(_pbx().time_profiles)
    errors, general = _apply(f"new time profile {name}", mutate, f"pbx.time_profiles.{count}")
    if errors or general:
        return profiles(errors, general, 400)
    flash(_("Time profile %(name)s created.", name=name), "success")
    return redirect(url_for("attendant.profile", name=name))


def _ranges(text: str) -> list[dict] | None:
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = RANGE.match(part)
        if not m:
            return None
        ranges.append({"start": m[1].zfill(5), "end": m[2].zfill(5)})
    return ranges


def _dates(text: str) -> tuple[list[dict], list[str]]:
    found, bad = [], []
    for line in filter(None, (ln.strip() for ln in text.splitlines()[:500])):
        m = DATE_LINE.match(line)
        if not m:
            bad.append(line)
            continue
        found.append({"date": m[1], "end": m[2], "name": m[3].strip()[:80]})
    return found, bad


def _dates_text(profile) -> str:
    return "\n".join(f"{d.date}{'..' + str(d.end) if d.end else ''} {d.name}".strip() for d in profile.dates)


@bp.route("/profiles/<name>", methods=["GET", "POST"])
@core.admin_required
def profile(name: str):
    cfg = _pbx()
    i = _index_of(cfg.time_profiles, name)
    current = cfg.time_profiles[i]
    hours = {d: ", ".join(f"{r.start}-{r.end}" for r in current.hours.get(d, [])) for d in WEEKDAYS}
    values = {"country": current.country, "public_holidays": current.public_holidays,
              "night_service": current.night_service, "dates": _dates_text(current)}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        hours = {d: forms.text(f"hours_{d}", 200) for d in WEEKDAYS}
        values = {"country": forms.text("country", 2).upper(), "public_holidays": forms.checkbox("public_holidays"),
                  "night_service": forms.checkbox("night_service"), "dates": request.form.get("dates", "")[:40000]}
        parsed = {d: _ranges(t) for d, t in hours.items()}
        errors = {f"hours_{d}": _("write the ranges like 09:00-12:00, 14:00-18:00") for d, r in parsed.items()
                  if r is None}
        dates, bad = _dates(values["dates"])
        if bad:
            errors["dates"] = _("not a date line (YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD, then a name): %(line)s",
                                line=bad[0][:60])
        if not errors:
            def mutate(doc: dict) -> None:
                doc["pbx"]["time_profiles"][i].update(
                    hours={d: r for d, r in parsed.items() if r}, country=values["country"],
                    public_holidays=values["public_holidays"], night_service=values["night_service"], dates=dates)

            at = f"pbx.time_profiles.{i}"
            fields = {f"{at}.hours.{d}": f"hours_{d}" for d in WEEKDAYS}
            fields |= {f"{at}.hours.{d}.{n}.{x}": f"hours_{d}" for d in WEEKDAYS for n in range(4)
                       for x in ("start", "end")}
            errors, general = _apply(f"time profile {name}", mutate, at, fields)
            errors = {_profile_field(k, v): v for k, v in errors.items()}
            if not errors and not general:
                flash(_("Time profile %(name)s saved.", name=name), "success")
                return redirect(url_for("attendant.profile", name=name))
    year = datetime.date.today().year
    public = _public_holidays(values["country"] or current.country, year)
    return render_template("attendant/profile.html", profile=current, hours=hours, values=values, errors=errors,
                           general=general, days=DAYS, public=public, year=year, countries=_countries(),
                           nav_active="attendant.profiles"), (400 if errors or general else 200)


def _profile_field(name: str, message: str) -> str:
    """The form field of a profile error: 'hours' problems name their day ("mon: ..."), dates are one field."""
    if name == "hours" and message[:3] in WEEKDAYS:
        return f"hours_{message[:3]}"
    return "dates" if name.startswith("dates") else name


def _public_holidays(country: str, year: int) -> list[tuple[datetime.date, str]]:
    try:
        found = {**timeprofile.public_holidays(country, year), **timeprofile.public_holidays(country, year + 1)}
    except (NotImplementedError, KeyError, AttributeError):
        return []
    return sorted(found.items())


def _countries() -> list[str]:
    import holidays
    return sorted(holidays.list_supported_countries())


@bp.route("/profiles/<name>/ics", methods=["POST"])
@core.admin_required
def profile_ics(name: str):
    i = _index_of(_pbx().time_profiles, name)
    upload = request.files.get("calendar")
    data = upload.read(ICS_LIMIT + 1) if upload is not None and upload.filename else b""
    try:
        if not data:
            raise ics.IcsError(_("choose an iCalendar (.ics) file"))
        events = ics.parse(data)
    except ics.IcsError as err:
        flash(_("The calendar was refused: %(reason)s.", reason=err), "error")
        return redirect(url_for("attendant.profile", name=name))
    known = {(d.date, d.end) for d in _pbx().time_profiles[i].dates}
    new = [e for e in events if (e["date"], e["end"]) not in known]

    def mutate(doc: dict) -> None:
        doc["pbx"]["time_profiles"][i].setdefault("dates", []).extend(
            {"date": e["date"].isoformat(), "end": e["end"].isoformat() if e["end"] else None, "name": e["name"]}
            for e in new)

    errors, general = _apply(f"time profile {name}: {len(new)} dates imported", mutate, f"pbx.time_profiles.{i}")
    if errors or general:
        flash("; ".join([*general, *errors.values()]), "error")
    else:
        flash(_("%(count)d dates imported.", count=len(new)), "success")
    return redirect(url_for("attendant.profile", name=name))


@bp.route("/profiles/<name>/night", methods=["POST"])
@core.admin_required
def night(name: str):
    i = _index_of(_pbx().time_profiles, name)
    on = forms.checkbox("on")

    def mutate(doc: dict) -> None:
        doc["pbx"]["time_profiles"][i]["night_service"] = on

    errors, general = _apply(f"night service {'on' if on else 'off'} ({name})", mutate, f"pbx.time_profiles.{i}")
    if errors or general:
        return profiles(errors, general, 400)
    flash(_("Night service is on for %(name)s: callers hear the closed menu.", name=name) if on else
          _("Night service is off for %(name)s: the opening hours apply.", name=name), "success")
    return redirect(url_for("attendant.profiles"))


@bp.route("/profiles/<name>/delete", methods=["GET", "POST"])
@core.admin_required
def profile_delete(name: str):
    i = _index_of(_pbx().time_profiles, name)
    if not usedby.confirmed():
        return usedby.confirm_page("time_profile", name, _("time profile"), url_for("attendant.profiles"),
                                   lambda doc: doc["pbx"]["time_profiles"].pop(i), nav_active="attendant.profiles")
    try:
        general = forms.remove_item(f"remove time profile {name}", "pbx", "time_profiles", i, N_("time profile"))
    except ConfigError as err:
        general = [str(err)]
    if general:
        return profiles({}, general, 400)
    flash(_("Time profile %(name)s removed.", name=name), "success")
    return redirect(url_for("attendant.profiles"))
