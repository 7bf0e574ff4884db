"""Telephony pages: extensions, ring groups, trunks, outbound routes, DIDs, dial plan and permission
classes (configuration, through apply_change), live registrations and calls, call records (+ CSV).

Live data comes only from the pbx service's public methods (registrations, call_media, trunks,
bans, unban, cdr_query, cdr_csv, status) and, for the live calls, the pbx.call events on the bus;
everything else is the `pbx` section of the document.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.bus import appliance_bus
from appliance.clients import ServiceRestarting
from appliance.service import ApplyError
from services.pbx.events import CALL_TOPIC
from services.pbx.voicemail.pin import PIN, hash_pin
from webadmin import core, forms, pickers, usedby
from webadmin.core import N_

bp = Blueprint("pbx", __name__, url_prefix="/pbx")
NAV = [(N_("Telephony"), N_("Extensions"), "pbx.extensions"), (N_("Telephony"), N_("Ring groups"), "pbx.groups"),
       (N_("Telephony"), N_("Trunks"), "pbx.trunks"), (N_("Telephony"), N_("Outbound routes"), "pbx.routes"),
       (N_("Telephony"), N_("DIDs (inbound numbers)"), "pbx.dids"),
       (N_("Telephony"), N_("Paging groups"), "pbx.paging_groups"),
       (N_("Telephony"), N_("Dial plan & permissions"), "pbx.dialplan"),
       (N_("Telephony"), N_("Live registrations"), "pbx.registrations"),
       (N_("Telephony"), N_("Live calls"), "pbx.calls"),
       (N_("Telephony"), N_("Call records"), "pbx.cdr")]
PERMISSIONS = [("internal", N_("Internal only")), ("local", N_("Local")), ("national", N_("National")),
               ("international", N_("International"))]
DISPOSITIONS = ("answered", "missed", "busy", "failed", "transferred")
DIRECTIONS = ("internal", "inbound", "outbound")
CDR_PAGE = 50


def _pbx():
    """The pbx service's client (its methods work whether it runs or not)."""
    return core.service_or_404("pbx")


def _friendly(message: str, hint: str = "") -> str:
    if message.startswith("String should match pattern") or message == "is not in the expected format":
        return _("not valid: %(hint)s", hint=hint) if hint else _("contains characters that are not allowed here")
    if message.startswith("Input should be a valid integer"):
        return _("enter a whole number")
    if message.startswith("Input should be a valid number"):
        return _("enter a number")
    return message


def _apply(summary: str, mutate, prefix: str, hints: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """apply_form with friendlier field messages; returns (field errors, general errors)."""
    errors, general = forms.apply_form(summary, mutate, prefix, top=True)
    return {name: _friendly(msg, (hints or {}).get(name, "")) for name, msg in errors.items()}, general


# -- generic list sections: groups, trunks, routes, DIDs ----------------------------------------------
@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"          # text | int | float | bool | select | list | secret
    help: str = ""
    options: list = field(default_factory=list)
    optional: bool = False      # empty input -> None (instead of "")
    default: object = None      # shown on a new item
    picks: str = ""             # a webadmin.pickers kind offered as a datalist


@dataclass
class Section:
    name: str                   # key in document["pbx"] and URL part
    title: str
    singular: str
    key: str                    # the identifying field
    fields: list[Field]
    columns: list[tuple[str, str]]     # (field, heading) for the list


SECTIONS = {s.name: s for s in [
    Section("groups", N_("Ring groups"), N_("ring group"), "number", [
        Field("number", N_("Number"), help=N_("2 to 6 digits, not an extension")),
        Field("name", N_("Name")),
        Field("strategy", N_("Strategy"), "select", options=[("simultaneous", N_("Ring all at once")),
              ("in_order", N_("In order")), ("round_robin", N_("Round robin"))], default="simultaneous"),
        Field("members", N_("Members"), "list", help=N_("extension numbers, separated by commas or spaces")),
        Field("member_timeout", N_("Seconds per member"), "int", help=N_("in order / round robin"), default=15),
        Field("timeout", N_("Total timeout (s)"), "int", default=30),
        Field("overflow", N_("Overflow destination"), optional=True, picks="destinations",
              help=N_("extension, group or number called after the timeout; empty: busy")),
        Field("pickup", N_("Pickup group"), "bool", default=True,
              help=N_("members pick up each other's ringing calls with the pickup code")),
    ], [("number", N_("Number")), ("name", N_("Name")), ("strategy", N_("Strategy")), ("members", N_("Members")),
        ("timeout", N_("Timeout (s)")), ("overflow", N_("Overflow"))]),
    Section("paging_groups", N_("Paging groups"), N_("paging group"), "number", [
        Field("number", N_("Number"), help=N_("2 to 6 digits, not an extension")),
        Field("name", N_("Name")),
        Field("members", N_("Members"), "list", help=N_("extension numbers, separated by commas or spaces")),
        Field("max_seconds", N_("Longest announcement (s)"), "int", default=120),
    ], [("number", N_("Number")), ("name", N_("Name")), ("members", N_("Members"))]),
    Section("trunks", N_("Trunks"), N_("trunk"), "name", [
        Field("name", N_("Name"), help=N_("letters, digits, '_' or '-'")),
        Field("host", N_("Carrier host"), help=N_("host name or address of the carrier's SIP server")),
        Field("port", N_("Port"), "int", default=5060),
        Field("transport", N_("Transport"), "select", options=[("udp", N_("UDP")), ("tcp", N_("TCP"))], default="udp"),
        Field("username", N_("User name")),
        Field("auth_password", N_("Password"), "secret", help=N_("leave empty to keep the current password")),
        Field("registration", N_("Register to the carrier"), "bool"),
        Field("register_expires", N_("Registration interval (s)"), "int", default=600),
        Field("from_number", N_("Presented number"), help=N_("caller number shown on this trunk")),
        Field("number_format", N_("Number format"), "select", options=[("national", N_("National")),
                                                                     ("e164", N_("E.164"))],
              default="national"),
        Field("max_channels", N_("Channels"), "int", help=N_("simultaneous calls; more go to the next trunk"),
              default=30),
        Field("invite_timeout", N_("Failover after (s)"), "float", help=N_("seconds without answer before the backup"),
              default=8.0),
    ], [("name", N_("Name")), ("host", N_("Host")), ("port", N_("Port")), ("transport", N_("Transport")),
        ("registration", N_("Registers")), ("max_channels", N_("Channels"))]),
    Section("routes", N_("Outbound routes"), N_("outbound route"), "name", [
        Field("name", N_("Name")),
        Field("prefix", N_("Dialled prefix"), help=N_("digits the dialled number starts with; empty matches all")),
        Field("strip", N_("Digits to strip"), "int", default=0),
        Field("prepend", N_("Digits to prepend")),
        Field("trunks", N_("Trunks"), "list", help=N_("trunk names in order: primary first, then backups")),
    ], [("name", N_("Name")), ("prefix", N_("Prefix")), ("strip", N_("Strip")), ("prepend", N_("Prepend")),
        ("trunks", N_("Trunks"))]),
    Section("dids", N_("DIDs (inbound numbers)"), N_("DID"), "number", [
        Field("number", N_("Number"), help=N_("as received from the carrier")),
        Field("destination", N_("Destination"), help=N_("extension or ring group number"), picks="destinations"),
    ], [("number", N_("Number")), ("destination", N_("Destination"))]),
]}


REFERENCE_KINDS = {"groups": "group", "trunks": "trunk"}  # appliance.references kinds of the sections


def _section(name: str) -> Section:
    section = SECTIONS.get(name)
    if section is None:
        abort(404)
    return section


def _items(section: Section) -> list[dict]:
    return [item.model_dump() for item in getattr(core.current_config().pbx, section.name)]


def _posted(section: Section, old: dict | None) -> dict:
    """The item as posted; values pydantic cannot read stay strings so it reports them per field."""
    item: dict = {}
    for f in section.fields:
        raw = forms.text(f.name, 2000)
        if f.kind == "bool":
            item[f.name] = forms.checkbox(f.name)
        elif f.kind == "list":
            item[f.name] = [v for v in raw.replace(",", " ").split() if v]
        elif f.kind == "secret":
            item[f.name] = raw if raw else (old or {}).get(f.name, "")
        elif f.kind in ("int", "float", "select"):
            if raw or f.default is None:   # empty: the schema's default
                item[f.name] = raw
        elif f.optional:
            item[f.name] = raw or None
        else:
            item[f.name] = raw
    return item


def _display(item: dict, section: Section) -> dict:
    """Form values: lists joined, secrets never echoed."""
    out = {}
    for f in section.fields:
        value = item.get(f.name, f.default)
        if f.kind == "list" and isinstance(value, list):
            value = ", ".join(value)
        if f.kind == "secret":
            value = ""
        out[f.name] = value
    return out


def _list_view(section: str):
    spec = _section(section)
    extra = {}
    if spec.name == "trunks":
        extra["live"] = {t["name"]: t for t in _pbx().trunks()}
    return render_template("pbx/section_list.html", section=spec, items=_items(spec),
                           nav_active=f"pbx.{spec.name}", **extra)


def _form_view(section: str, key: str | None = None):
    spec = _section(section)
    items = _items(spec)
    keys = [str(i[spec.key]) for i in items]
    if key is not None and key not in keys:
        abort(404)
    index = keys.index(key) if key is not None else len(items)
    old = items[index] if key is not None else None
    values = _display(old or {}, spec)
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        item = _posted(spec, old)

        def mutate(doc: dict) -> None:
            section_list = doc.setdefault("pbx", {}).setdefault(spec.name, [])
            if key is None:
                section_list.append(item)
                return
            for i, existing in enumerate(section_list):
                if str(existing.get(spec.key)) == key:
                    section_list[i] = item
                    return
            raise ConfigError({"": _("the %(what)s %(key)s no longer exists", what=_(spec.singular), key=key)})

        label = item.get(spec.key) or "?"
        summary = f"{'edit' if key else 'add'} {spec.singular} {label}"
        hints = {f.name: _(f.help) for f in spec.fields if f.help}
        errors, general = _apply(summary, mutate, f"pbx.{spec.name}.{index}", hints)
        if not errors and not general:
            flash(_("The %(what)s %(key)s was saved.", what=_(spec.singular), key=label), "success")
            return redirect(url_for(f"pbx.{spec.name}"))
        values = _display(item, spec)
    picks = pickers.choices(*{f.picks for f in spec.fields if f.picks})
    return render_template("pbx/section_form.html", section=spec, values=values, errors=errors,
                           general=general, key=key, picks=picks, nav_active=f"pbx.{spec.name}"), \
        (400 if errors or general else 200)


def _delete_view(section: str, key: str):
    spec = _section(section)
    if key not in [str(i[spec.key]) for i in _items(spec)]:
        abort(404)

    def mutate(doc: dict) -> None:
        doc["pbx"][spec.name] = [i for i in doc["pbx"].get(spec.name, []) if str(i.get(spec.key)) != key]

    if not usedby.confirmed():
        return usedby.confirm_page(REFERENCE_KINDS.get(spec.name), key, _(spec.singular),
                                   url_for(f"pbx.{spec.name}"), mutate, nav_active=f"pbx.{spec.name}")

    errors, general = _apply(f"delete {spec.singular} {key}", mutate, f"pbx.{spec.name}")
    if errors or general:
        flash(_("The %(what)s %(key)s was not deleted: %(reasons)s", what=_(spec.singular), key=key,
                reasons="; ".join([*errors.values(), *general])), "error")
    else:
        flash(_("The %(what)s %(key)s was deleted.", what=_(spec.singular), key=key), "success")
    return redirect(url_for(f"pbx.{spec.name}"))


for _name in SECTIONS:
    bp.add_url_rule(f"/{_name}/", endpoint=_name, view_func=core.admin_required(_list_view),
                    defaults={"section": _name})
bp.add_url_rule("/<section>/new", endpoint="item_new", view_func=core.admin_required(_form_view),
                methods=["GET", "POST"])
bp.add_url_rule("/<section>/<key>/edit", endpoint="item_edit", view_func=core.admin_required(_form_view),
                methods=["GET", "POST"])
bp.add_url_rule("/<section>/<key>/delete", endpoint="item_delete", view_func=core.admin_required(_delete_view),
                methods=["GET", "POST"])


# -- extensions --------------------------------------------------------------------------------------
@bp.route("/")
@core.admin_required
def extensions():
    config = core.current_config()
    contacts: dict[str, list[dict]] = {}
    for reg in _pbx().registrations():
        contacts.setdefault(reg["extension"], []).append(reg)
    rows = []
    for user in sorted((u for u in config.users if u.extension), key=lambda u: u.extension):
        settings = config.pbx.extensions.get(user.extension)
        rows.append({"user": user, "settings": settings, "contacts": contacts.get(user.extension, []),
                     "permission": config.pbx.permissions.get(user.login, config.pbx.default_permission),
                     "own_permission": user.login in config.pbx.permissions})
    return render_template("pbx/extensions.html", rows=rows)


EXT_FIELDS = ("dnd", "forward_always", "forward_busy", "forward_no_answer", "no_answer_timeout", "blf_watchers",
              "voicemail", "voicemail_pin_from_own")
VOICEMAIL = [("", N_("Default (on)")), ("on", N_("On")), ("off", N_("Off"))]
FORWARD_FIELDS = EXT_FIELDS[:5]  # what a user may also set for themselves (account page)
BLF_WATCHERS = [("everyone", N_("Every extension")), ("same_groups", N_("Extensions in a ring group with it")),
                ("nobody", N_("Nobody"))]
FORWARD_HINT = N_("an extension, group or number (digits, *, # or +)")  # translated where used
# appliance/clients.py's text while the PBX process restarts, shown translated
RESTARTING = N_("the PBX is restarting: its call records are back in a moment")


def posted_call_handling() -> dict:
    """The posted forwarding fields (FORWARD_FIELDS; also the staff's own form on the account page)."""
    return {"dnd": forms.checkbox("dnd"), "forward_always": forms.optional("forward_always", 40),
            "forward_busy": forms.optional("forward_busy", 40),
            "forward_no_answer": forms.optional("forward_no_answer", 40),
            "no_answer_timeout": forms.text("no_answer_timeout", 10) or 20}


@bp.route("/extensions/<ext>", methods=["GET", "POST"])
@core.admin_required
def extension_edit(ext: str):
    config = core.current_config()
    user = next((u for u in config.users if u.extension == ext), None)
    if user is None:
        abort(404)
    settings = config.pbx.extensions.get(ext)
    values = settings.model_dump() if settings else {"dnd": False, "forward_always": None, "forward_busy": None,
                                                     "forward_no_answer": None, "no_answer_timeout": 20,
                                                     "blf_watchers": "everyone", "voicemail": None,
                                                     "voicemail_pin_from_own": True}
    values["permission"] = config.pbx.permissions.get(user.login, "")
    values["voicemail"] = {True: "on", False: "off"}.get(values["voicemail"], "")
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = posted_call_handling() | {"blf_watchers": forms.text("blf_watchers", 20) or "everyone",
                                           "permission": forms.text("permission", 20),
                                           "voicemail": forms.text("voicemail", 10),
                                           "voicemail_pin_from_own": not forms.checkbox("voicemail_no_pin_from_own")}
        pin, pin_hash = forms.text("voicemail_pin", 20), None
        if values["permission"] and values["permission"] not in dict(PERMISSIONS):
            errors["permission"] = _("choose a permission class from the list")
        elif values["voicemail"] not in dict(VOICEMAIL):
            errors["voicemail"] = _("choose default, on or off")
        elif pin and not PIN.match(pin):
            errors["voicemail_pin"] = _("a voicemail PIN has 4 to 12 digits")
        else:
            pin_hash = hash_pin(pin) if pin else None
            stored = dict(values, voicemail={"on": True, "off": False}.get(values["voicemail"]))

            def mutate(doc: dict) -> None:
                pbx = doc.setdefault("pbx", {})
                kept = pbx.setdefault("extensions", {}).get(ext) or {}  # fields this form does not show stay
                pbx["extensions"][ext] = kept | {k: stored[k] for k in EXT_FIELDS}
                if pin_hash or forms.checkbox("voicemail_pin_clear"):
                    for entry in doc.get("users", []):
                        if entry.get("login") == user.login:
                            entry["voicemail_pin_hash"] = pin_hash
                perms = pbx.setdefault("permissions", {})
                if values["permission"]:
                    perms[user.login] = values["permission"]
                else:
                    perms.pop(user.login, None)

            errors, general = _apply(f"call handling of extension {ext}", mutate, f"pbx.extensions.{ext}",
                                     dict.fromkeys(("forward_always", "forward_busy", "forward_no_answer"),
                                                   _(FORWARD_HINT)))
            if not errors and not general:
                flash(_("Extension %(ext)s was saved.", ext=ext), "success")
                return redirect(url_for("pbx.extensions"))
    return render_template("pbx/extension_form.html", user=user, ext=ext, values=values, errors=errors,
                           general=general, permissions=PERMISSIONS, blf_watchers=BLF_WATCHERS,
                           voicemail_choices=VOICEMAIL, has_pin=bool(user.voicemail_pin_hash),
                           nav_active="pbx.extensions", picks=pickers.choices("destinations"),
                           default_permission=config.pbx.default_permission), (400 if errors or general else 200)


# -- dial plan and permission classes -----------------------------------------------------------------
DIALPLAN_LISTS = ("local_prefixes", "emergency_numbers")
DIALPLAN_TEXT = ("country_code", "national_prefix", "international_prefix", "default_permission")


@bp.route("/dialplan", methods=["GET", "POST"])
@core.admin_required
def dialplan():
    config = core.current_config()
    pbx = config.pbx
    values = {k: getattr(pbx, k) for k in DIALPLAN_TEXT} | {k: ", ".join(getattr(pbx, k)) for k in DIALPLAN_LISTS}
    values["public_address"] = str(pbx.public_address or "")
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {k: forms.text(k, 40) for k in DIALPLAN_TEXT} | {k: forms.text(k, 2000) for k in DIALPLAN_LISTS}
        values["public_address"] = forms.text("public_address", 40)

        def mutate(doc: dict) -> None:
            section = doc.setdefault("pbx", {})
            for k in DIALPLAN_TEXT:
                section[k] = values[k]
            for k in DIALPLAN_LISTS:
                section[k] = values[k].replace(",", " ").split()
            section["public_address"] = values["public_address"] or None

        errors, general = _apply("dial plan settings", mutate, "pbx", {
            "country_code": _("1 to 4 digits, without + or 00"), "national_prefix": _("up to 3 digits"),
            "international_prefix": _("1 to 4 digits"), "public_address": _("an IPv4 address, e.g. 203.0.113.7")})
        if not errors and not general:
            flash(_("The dial plan was saved."), "success")
            return redirect(url_for("pbx.dialplan"))
    users = {u.login: u for u in config.users}
    overrides = [(login, users.get(login), cls) for login, cls in sorted(pbx.permissions.items())]
    assignable = [u for u in sorted(config.users, key=lambda u: u.login) if u.login not in pbx.permissions]
    return render_template("pbx/dialplan.html", values=values, errors=errors, general=general,
                           permissions=PERMISSIONS, overrides=overrides, assignable=assignable), \
        (400 if errors or general else 200)


@bp.route("/permissions", methods=["POST"])
@core.admin_required
def permission_set():
    """Give a user their own permission class (create or change)."""
    login, cls = forms.text("login", 64), forms.text("permission", 20)
    if core.current_config().user(login) is None or cls not in dict(PERMISSIONS):
        flash(_("Choose a user and a permission class."), "error")
        return redirect(url_for("pbx.dialplan"))

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("permissions", {})[login] = cls

    return _save_permission(f"permission class of {login}: {cls}", mutate,
                            f"{login} now has the permission class {cls}.")


@bp.route("/permissions/<login>/delete", methods=["POST"])
@core.admin_required
def permission_delete(login: str):
    if login not in core.current_config().pbx.permissions:
        abort(404)

    def mutate(doc: dict) -> None:
        doc["pbx"]["permissions"].pop(login, None)

    return _save_permission(f"permission class of {login}: default", mutate,
                            f"{login} now has the default permission class.")


def _save_permission(summary: str, mutate, done: str):
    errors, general = _apply(summary, mutate, "pbx.permissions")
    if errors or general:
        flash(_("Not saved: %(reasons)s", reasons="; ".join([*errors.values(), *general])), "error")
    else:
        flash(done, "success")
    return redirect(url_for("pbx.dialplan"))


# -- live views ----------------------------------------------------------------------------------------
@bp.route("/registrations")
@core.admin_required
def registrations():
    svc = _pbx()
    names = {u.extension: u.full_name for u in core.current_config().users if u.extension}
    regs = sorted(svc.registrations(), key=lambda r: (r["extension"], r["contact"]))
    return render_template("pbx/registrations.html", regs=regs, names=names, bans=svc.bans(),
                           status=svc.status())


@bp.route("/bans/<path:source>/delete", methods=["POST"])
@core.admin_required
def unban(source: str):
    try:
        _pbx().unban(source)
    except ServiceRestarting:
        flash(_("The telephony service is restarting; try again in a moment."), "warning")
    else:
        flash(_("%(source)s may send requests again.", source=source), "success")
    return redirect(url_for("pbx.registrations"))


@bp.route("/calls")
@core.admin_required
def calls():
    """The calls in progress as the call events tell them (retained per call on the bus until cleared),
    with the media figures the engine reports for each."""
    svc = _pbx()
    live = appliance_bus(core.runtime().ctx).retained(CALL_TOPIC)
    media = svc.call_media()
    calls = sorted(({**data, "id": key, "relay": media.get(key, {})} for key, data in live.items()),
                   key=lambda c: c.get("started") or 0)
    return render_template("pbx/calls.html", calls=calls, status=svc.status(), now=dt.datetime.now().timestamp())


@bp.route("/calls/<call_id>/end", methods=["POST"])
@core.admin_required
def end_call(call_id: str):
    """The admin hangs up a call in progress (a stuck or unwanted call): both sides get BYE or CANCEL."""
    try:
        ended = _pbx().end_call(call_id[:100])
    except ServiceRestarting:
        flash(_("The telephony service is restarting; try again in a moment."), "warning")
    else:
        if ended:
            flash(_("The call was ended."), "success")
        else:
            flash(_("That call has ended already."), "info")
    return redirect(url_for("pbx.calls"))


# -- call records ---------------------------------------------------------------------------------------
def _cdr_filters() -> tuple[dict, dict, dict[str, str]]:
    """(form values, service filters, errors) from the query string; dates are days in the box's zone."""
    args = request.args
    values = {k: (args.get(k) or "").strip()[:40] for k in ("since", "until", "party", "disposition", "direction")}
    filters: dict = {}
    errors: dict[str, str] = {}
    try:
        tz = zoneinfo.ZoneInfo(core.current_config().system.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    for name, shift in (("since", 0), ("until", 1)):
        if values[name]:
            try:
                day = dt.date.fromisoformat(values[name])
            except ValueError:
                errors[name] = _("enter a date as YYYY-MM-DD")
                continue
            start = dt.datetime.combine(day + dt.timedelta(days=shift), dt.time(), tz)
            filters[name] = start.timestamp()
    if values["party"]:
        if not all(c.isdigit() or c in "+*#" for c in values["party"]):
            errors["party"] = _("enter an extension or a number (digits, +, * or #)")
        else:
            filters["party"] = values["party"]
    for name, allowed in (("disposition", DISPOSITIONS), ("direction", DIRECTIONS)):
        if values[name]:
            if values[name] in allowed:
                filters[name] = values[name]
            else:
                errors[name] = _("choose a value from the list")
    if "since" in filters and "until" in filters and filters["until"] <= filters["since"]:
        errors["until"] = _("the end date must not be before the start date")
    return values, filters, errors


@bp.route("/cdr")
@core.admin_required
def cdr():
    values, filters, errors = _cdr_filters()
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 100000))
    try:
        rows = [] if errors else _pbx().cdr_query(**filters, limit=CDR_PAGE + 1, offset=(page - 1) * CDR_PAGE)
    except ApplyError as exc:
        flash(_(str(exc)), "error")  # RESTARTING, translated
        rows = []
    more = len(rows) > CDR_PAGE
    query = {k: v for k, v in values.items() if v}
    return render_template("pbx/cdr.html", rows=rows[:CDR_PAGE], values=values, errors=errors, page=page,
                           more=more, query=query, dispositions=DISPOSITIONS, directions=DIRECTIONS), \
        (400 if errors else 200)


@bp.route("/cdr.csv")
@core.admin_required
def cdr_csv():
    _unused, filters, errors = _cdr_filters()
    if errors:
        problems = "; ".join(f"{k}: {v}" for k, v in errors.items())
        abort(400, description=_("Invalid filter: %(problems)s", problems=problems))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
    try:
        pieces = _pbx().cdr_csv(**filters)
    except ApplyError as exc:
        abort(503, description=_(str(exc)))
    return Response(pieces, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'})
