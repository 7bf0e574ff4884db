"""First-boot setup: exists only while system.initialized is false. A short guided setup of five steps
(box and administrator, internet, first users, a trunk, summary), server-rendered, without JavaScript,
written as ONE revision ("first-boot setup") by the summary's button and not before.

State between steps: every value travels in the form itself (hidden fields of the steps not shown), so
the server holds no half-applied configuration and "Back" keeps everything. Two things never travel in
a page: passwords (the administrator's, and the trunk's) are typed on the summary step, the only step
that writes, so none is ever echoed into HTML or put in the (signed, not encrypted) session cookie, and
the administrator's password is hashed there only; and the console's setup code, checked on the first
step, leaves in the signed session only a mark that it was accepted, tied to the code then active (a new
code, after a restart, voids it).

Each "Next" checks its step: the simple rules here, then the real schema and services on the whole
document built so far (engine.validate, nothing written); the final apply is engine.update, whose
errors bring the admin back to the step holding the field. A POST without any step button (`go`) is the
one-request setup scripts use (the OS image test): every field in one form, the same checks, the same
single revision."""
from __future__ import annotations

import hashlib
import re
import zoneinfo
from functools import cache

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from appliance import schema
from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import LANGUAGES, hash_password, new_secret
from webadmin import core, forms, trunk_templates
from webadmin.blueprints.firewall import split_list
from webadmin.core import N_
from webadmin.i18n import language_choices, select_locale
from webadmin.security import Busy, SetupCode

bp = Blueprint("setup", __name__, url_prefix="/setup")
TZ_PATTERN = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
STEPS = (("box", N_("Box and administrator")), ("internet", N_("Internet")),
         ("people", N_("First users and extensions")), ("trunk", N_("Telephone line (trunk)")),
         ("summary", N_("Summary")))
STEP_NAMES = tuple(name for name, _label in STEPS)
ERROR_FIELDS = {
    "system.company_name": "company_name",
    "system.mail_domain": "mail_domain",
    "system.timezone": "timezone",
    "system.language": "language",
    "network.lan.address": "lan_address",
    "network.wan.mode": "wan_mode",
    "network.wan.address": "wan_address",
    "network.wan.gateway": "wan_gateway",
    "network.wan.dns": "wan_dns",
    "network.wan.pppoe_user": "wan_pppoe_user",
    "network.wan.pppoe_password": "wan_pppoe_password",
    "network.wan": "wan_gateway",  # the model's own checks: "needs an address and a gateway", "inside the subnet"
}
WAN_MODES = (("dhcp", N_("Automatic (DHCP from the internet router or modem)")),
             ("static", N_("Fixed address (static)")),
             ("pppoe", N_("PPPoE (a DSL line: user name and password from the provider)")),
             ("none", N_("No internet connection")))
BOX_FIELDS = ("login", "full_name", "company_name", "mail_domain", "timezone", "language")
INTERNET_FIELDS = ("lan_address", "wan_mode", "wan_address", "wan_gateway", "wan_dns", "wan_pppoe_user")
ROW_FIELDS = ("full_name", "login", "extension")
TRUNK_FIELDS = ("trunk_template", "t_filled", "t_name", "t_host", "t_port", "t_transport", "t_username",
                "t_registration", "t_from_number", "t_route")
SECRET_FIELDS = ("password", "password2", "t_password", "wan_pppoe_password")  # typed on the summary, never carried
ROWS, MORE_ROWS, MAX_ROWS = 3, 3, 30
CODE_OK = "officebox.setup_code_ok"  # session: the setup code was accepted (fingerprint of the active one)


@cache
def time_zones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if TZ_PATTERN.match(z) and not z.startswith("Etc/"))


def lan_address_error(value: str) -> str | None:
    """The schema's rule for the box's LAN address (the CLI and restore obey it too), checked early."""
    try:
        schema.host_interface(value)
    except ValueError as exc:
        return str(exc)
    return None


def setup_code_error(code: str) -> str | None:
    """The one-time code printed on the console (a wrong one counts toward the sign-in lock-out)."""
    setup_code = SetupCode(core.runtime().ctx.data_dir)
    if not setup_code.active():
        return _("no setup code is active: restart the box and read the new one on its console")
    lockout = current_app.extensions[core.LOCKOUT_KEY]
    keys = (("setup-addr", request.remote_addr or "?"),)
    if lockout.wait_time(*keys) > 0:
        return _("too many wrong setup codes: wait a minute before trying again")
    try:
        if core.password_check(lambda: setup_code.matches(code)):
            lockout.succeeded(*keys)
            return None
    except Busy:
        return _(core.BUSY_MESSAGE)
    lockout.failed(*keys)
    return _("this is not the setup code shown on the box’s console")


def _code_fingerprint() -> str | None:
    """Names the active setup code (a digest of its stored hash; the code itself is not in it)."""
    try:
        return hashlib.sha256(SetupCode(core.runtime().ctx.data_dir).path.read_bytes()).hexdigest()[:32]
    except FileNotFoundError:
        return None


def code_accepted() -> bool:
    fingerprint = _code_fingerprint()
    return fingerprint is not None and session.get(CODE_OK) == fingerprint


# -- the values of every step ------------------------------------------------------------------------
def _defaults() -> dict[str, str]:
    config = core.current_config()
    wan = config.network.wan
    values = {
        "login": "admin", "full_name": "", "company_name": config.system.company_name,
        "mail_domain": config.system.mail_domain, "timezone": config.system.timezone, "language": select_locale(),
        "lan_address": str(config.network.lan.address), "wan_mode": wan.mode,
        "wan_address": str(wan.address or ""), "wan_gateway": str(wan.gateway or ""),
        "wan_dns": ", ".join(str(d) for d in wan.dns), "wan_pppoe_user": wan.pppoe_user, "rows": str(ROWS),
        "trunk_template": "", "t_filled": "", "t_name": "", "t_host": "", "t_port": "5060", "t_transport": "udp",
        "t_username": "", "t_registration": "", "t_from_number": "", "t_route": "on",
    }
    for i in range(ROWS):
        values.update({f"u{i}_{f}": "" for f in ROW_FIELDS})
    return values


def _row_count() -> int:
    try:
        return min(max(int(forms.text("rows", 4)), ROWS), MAX_ROWS)
    except ValueError:
        return ROWS


def _posted(defaults: dict[str, str]) -> dict[str, str]:
    """Every step's values from the form (the shown step's inputs and the others' hidden fields)."""
    values = dict(defaults)
    rows = _row_count()
    values["rows"] = str(rows)
    for name in (*BOX_FIELDS, *INTERNET_FIELDS, *TRUNK_FIELDS):
        if name in request.form:
            values[name] = forms.text(name, 300)
    for i in range(rows):
        for f in ROW_FIELDS:
            values[f"u{i}_{f}"] = forms.text(f"u{i}_{f}", 200)
    values["t_registration"] = "on" if forms.checkbox("t_registration") else ""
    values["t_route"] = "on" if forms.checkbox("t_route") else ""
    for name in ("login", "mail_domain", *(f"u{i}_login" for i in range(rows))):
        values[name] = values[name].lower()
    values["language"] = values["language"] or select_locale()
    values["wan_mode"] = values["wan_mode"] or "dhcp"
    return values


def _people(values: dict[str, str]) -> list[tuple[int, dict[str, str]]]:
    """(row number, {full_name, login, extension}) of each row with anything typed in it."""
    rows = [(i, {f: values.get(f"u{i}_{f}", "") for f in ROW_FIELDS}) for i in range(int(values["rows"]))]
    return [(i, row) for i, row in rows if any(row.values())]


def _trunk(values: dict[str, str]):
    return trunk_templates.template(values["trunk_template"])


def _fill_template(values: dict[str, str]) -> None:
    """The chosen template's defaults in the trunk's fields; a field the admin changed is kept (one still
    empty, or holding the previous template's or the blank form's default, takes the new default)."""
    tpl = _trunk(values)
    if tpl is None:
        return
    blank = _defaults()
    before = _template_values(trunk_templates.template(values["t_filled"]))
    for name, default in _template_values(tpl).items():
        if not values[name] or values[name] == before.get(name, blank[name]):
            values[name] = default
    values["t_filled"] = tpl.key


def _template_values(tpl) -> dict[str, str]:
    if tpl is None:
        return {}
    return {"t_name": tpl.name, "t_host": tpl.host, "t_port": str(tpl.port), "t_transport": tpl.transport,
            "t_registration": "on" if tpl.registration else "", "t_route": "on"}


def _hidden(values: dict[str, str], step: str) -> list[tuple[str, str]]:
    """The values of the other steps, carried in hidden fields (never a password nor the setup code)."""
    shown = set(_step_fields(step, values))
    return [(name, value) for name, value in values.items() if name not in shown]


def _step_fields(step: str, values: dict[str, str]) -> tuple[str, ...]:
    if step == "box":
        return BOX_FIELDS
    if step == "internet":
        return INTERNET_FIELDS
    if step == "people":
        return tuple(f"u{i}_{f}" for i in range(int(values["rows"])) for f in ROW_FIELDS)
    if step == "trunk":
        return tuple(n for n in TRUNK_FIELDS if n != "t_filled")
    return ()


def step_of(field: str) -> str:
    """The step whose page holds the form field `field`."""
    if field in ("setup_code", *BOX_FIELDS):
        return "box"
    if field in INTERNET_FIELDS:
        return "internet"
    if re.fullmatch(r"u[0-9]+_[a-z_]+", field):
        return "people"
    if field in SECRET_FIELDS:
        return "summary"
    if field in TRUNK_FIELDS:
        return "trunk"
    return "summary"


# -- checks ------------------------------------------------------------------------------------------
def _local_errors(step: str, values: dict[str, str], final: bool) -> dict[str, str]:
    """The rules a page checks itself (the schema's come from the engine); `final`: the summary's button."""
    errors: dict[str, str] = {}
    if step == "box":
        if values["language"] not in LANGUAGES:
            errors["language"] = _("choose a language from the list")
        if values["timezone"] not in time_zones():
            errors["timezone"] = _("choose a time zone from the list")
        for name in ("login", "full_name", "company_name", "mail_domain"):
            if not values[name]:
                errors[name] = _("this field is required")
    elif step == "internet":
        if message := lan_address_error(values["lan_address"]):
            errors["lan_address"] = message
        if values["wan_mode"] not in dict(WAN_MODES):
            errors["wan_mode"] = _("choose how the box reaches the internet from the list")
        elif values["wan_mode"] == "static":
            for name in ("wan_address", "wan_gateway", "wan_dns"):
                if not values[name]:
                    errors[name] = _("this field is required with a fixed address")
            if values["wan_address"] and "/" not in values["wan_address"]:
                errors["wan_address"] = _("enter the address with its prefix, like 203.0.113.10/24")
        elif values["wan_mode"] == "pppoe" and not values["wan_pppoe_user"]:
            errors["wan_pppoe_user"] = _("a PPPoE connection needs the user name your provider gave you")
    elif step == "people":
        for i, row in _people(values):
            for f in ROW_FIELDS:
                if not row[f]:
                    errors[f"u{i}_{f}"] = _("this field is required for each user (or empty the whole row)")
    elif step == "trunk" and values["trunk_template"]:
        tpl = _trunk(values)
        if tpl is None:
            errors["trunk_template"] = _("choose a template from the list")
            return errors
        for name in ("t_name", "t_host"):
            if not values[name]:
                errors[name] = _("this field is required")
        if values["t_registration"] and not values["t_username"]:
            errors["t_username"] = _("a trunk that registers needs the user name the provider gave you")
    elif step == "summary" and final:
        forms.new_password(errors)
        if values["trunk_template"] and values["t_registration"] and not request.form.get("t_password"):
            errors["t_password"] = _("a trunk that registers needs the password the provider gave you")
    if step == "summary" and final and values["wan_mode"] == "pppoe" and not request.form.get("wan_pppoe_password"):
        errors["wan_pppoe_password"] = _("a PPPoE connection needs the password your provider gave you")
    return errors


def _code_errors(typed: str | None) -> dict[str, str]:
    """`typed`: the code as posted (the first step, the one-request setup); None: the session's mark only."""
    if typed is None or (not typed and code_accepted()):
        if code_accepted():
            return {}
        return {"setup_code": _("enter the setup code again: the one accepted before is no longer active")}
    if message := setup_code_error(typed):
        session.pop(CODE_OK, None)
        return {"setup_code": message}
    session[CODE_OK] = _code_fingerprint()
    return {}


def _error_fields(values: dict[str, str]) -> dict[str, str]:
    """Engine paths -> form fields for the document `_mutate` builds from `values`."""
    fields = dict(ERROR_FIELDS)
    fields.update({f"network.wan.dns.{i}": "wan_dns" for i in range(len(split_list(values["wan_dns"])))})
    for n, (i, _row) in enumerate(_people(values), start=1):
        fields.update({f"users.{n}.{f}": f"u{i}_{f}" for f in ROW_FIELDS})
    index = len(core.current_config().pbx.trunks)
    fields.update({f"pbx.trunks.{index}.{f[2:]}": f for f in TRUNK_FIELDS if f.startswith("t_")})
    fields.update({f"pbx.trunks.{index}.auth_password": "t_password", f"pbx.trunks.{index}": "t_name"})
    fields.update({f"pbx.routes.{i}": "t_name" for i in range(len(core.current_config().pbx.routes) + 1)})
    return fields


def _engine_errors(err: ConfigError, values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    return forms.form_errors(err, prefix="users.0", fields=_error_fields(values))


def _dry_run(values: dict[str, str], step: str) -> tuple[dict[str, str], list[str]]:
    """The whole document as built up to `step`, through the real schema and services; nothing written."""
    doc = schema.to_document(core.current_config())
    try:
        _mutate(values, None, "", upto=step)(doc)
        core.runtime().engine.validate(doc)
    except ConfigError as err:
        return _engine_errors(err, values)
    return {}, []


def _routed(errors: dict[str, str], general: list[str], here: str) -> tuple[str, dict[str, str], list[str]]:
    """Errors -> (the first step holding one of the fields, its errors, the rest as general messages)."""
    if not errors:
        return here, errors, general
    target = min((step_of(name) for name in errors), key=STEP_NAMES.index)
    labels = dict(STEPS)
    mine = {name: msg for name, msg in errors.items() if step_of(name) == target}
    others = [f"{_(labels[step_of(name)])}: {msg}" for name, msg in errors.items() if step_of(name) != target]
    return target, mine, others + general


def _check_step(step: str, values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    errors = _local_errors(step, values, final=False)
    if step == "box":
        errors.update(_code_errors(forms.text("setup_code", 32)) if "setup_code" in request.form
                      else _code_errors(None))
    if errors or step == "summary":
        return errors, []
    found, general = _dry_run(values, step)
    later = {name for name in found if STEP_NAMES.index(step_of(name)) > STEP_NAMES.index(step)}
    for name in later:  # not asked yet (values carried from a visit after going back): checked there
        found.pop(name)
    if any(step_of(name) == step for name in found):  # the other side of a clash with an earlier step
        found = {name: msg for name, msg in found.items() if step_of(name) == step}
    return found, general


# -- the view ----------------------------------------------------------------------------------------
@bp.route("/", methods=["GET", "POST"])
@core.public
def wizard():
    values = _defaults()
    step, errors, general, notice = "box", {}, [], ""
    if request.method == "POST":
        values = _posted(values)
        go = request.form.get("go")
        shown = request.form.get("step")
        shown = shown if shown in STEP_NAMES else "box"
        here = STEP_NAMES.index(shown)
        step = shown
        if go is None or go == "apply":
            done, step, errors, general = _finish(values, one_request=go is None)
            if done:
                return done
        elif go == "back":
            step = STEP_NAMES[max(here - 1, 0)]
        elif go.startswith("to:") and go[3:] in STEP_NAMES[:here]:
            step = go[3:]
        elif go == "more" and shown == "people":
            values["rows"] = str(min(int(values["rows"]) + MORE_ROWS, MAX_ROWS))
            for i in range(int(values["rows"])):
                for f in ROW_FIELDS:
                    values.setdefault(f"u{i}_{f}", "")
        elif go == "skip" and shown in ("people", "trunk"):
            if shown == "people":
                values.update({f"u{i}_{f}": "" for i in range(int(values["rows"])) for f in ROW_FIELDS})
            else:
                values["trunk_template"] = ""
            step = STEP_NAMES[here + 1]
        elif go == "next" and shown != "summary":
            if shown == "trunk" and values["trunk_template"] and values["t_filled"] != values["trunk_template"]:
                _fill_template(values)  # a template just picked: show its settings to check first
                notice = _("The template's settings are filled in: check them and complete what is missing.")
            else:
                errors, general = _check_step(shown, values)
                if not errors and not general:
                    step = STEP_NAMES[here + 1]
    return _page(step, values, errors, general, notice)


def _page(step: str, values: dict[str, str], errors: dict[str, str], general: list[str], notice: str = ""):
    return render_template(
        "setup/wizard.html", step=step, steps=STEPS, number=STEP_NAMES.index(step) + 1, values=values,
        errors=errors, general=general, notice=notice, hidden=_hidden(values, step), code_ok=code_accepted(),
        rows=range(int(values["rows"])), more_rows=int(values["rows"]) < MAX_ROWS, people=_people(values),
        templates=[("", _("No trunk now"))] + [(t.key, _(t.label)) for t in trunk_templates.TEMPLATES],
        template=_trunk(values), wan_modes=[(k, _(v)) for k, v in WAN_MODES],
        time_zones=time_zones(), languages=language_choices(),
    ), (400 if errors or general else 200)


def _finish(values: dict[str, str], one_request: bool):
    """The summary's button (or the one-request setup): every step checked again, then one revision."""
    errors: dict[str, str] = {}
    for name in STEP_NAMES:
        errors.update(_local_errors(name, values, final=True))
    errors.update(_code_errors(forms.text("setup_code", 32) if one_request else None))
    general: list[str] = []
    if not errors:
        password = request.form.get("password") or ""
        trunk_password = (request.form.get("t_password") or "")[:128] if values["t_registration"] else ""
        try:
            _apply(values, hash_password(password), trunk_password)
        except ConfigError as err:
            errors, general = _engine_errors(err, values)
        except ApplyError as err:
            general = [forms.general_error(err)]
        else:
            SetupCode(core.runtime().ctx.data_dir).discard()
            session.pop(CODE_OK, None)
            flash(_("OfficeBox is set up. Sign in with your administrator account."), "success")
            if _people(values):
                flash(_("The new users have no password yet: set one for each of them on the Users page, "
                        "where their setup sheets are too."), "info")
            return redirect(url_for("auth.login")), "", {}, []
    step, errors, general = _routed(errors, general, "summary")
    return None, step, errors, general


def _mutate(values: dict[str, str], password_hash: str | None, trunk_password: str, upto: str = "summary"):
    """The change of the steps up to `upto` (all of them for the apply) on a configuration document."""
    reached = STEP_NAMES.index(upto)

    def mutate(doc: dict) -> None:
        if doc["system"].get("initialized"):
            raise ConfigError({"": _("this box was set up meanwhile; sign in instead")})
        doc["system"].update(company_name=values["company_name"], mail_domain=values["mail_domain"],
                             timezone=values["timezone"], language=values["language"],
                             initialized=True)
        admin = {"login": values["login"], "full_name": values["full_name"], "role": "admin",
                 "language": values["language"], "enabled": True, "password_hash": password_hash}
        people = []
        if reached >= STEP_NAMES.index("internet") and "lan_address" in values:
            doc["network"]["lan"]["address"] = values["lan_address"]
            mode = values.get("wan_mode", "dhcp")
            wan = doc["network"]["wan"]
            wan["mode"] = mode
            if mode == "static":
                wan.update(address=values["wan_address"] or None, gateway=values["wan_gateway"] or None,
                           dns=split_list(values["wan_dns"]))
            else:
                wan.update(address=None, gateway=None)
            if mode == "pppoe":  # its password is typed on the summary (a step's dry run checks the rest)
                secret = (request.form.get("wan_pppoe_password") or "")[:200]
                wan.update(pppoe_user=values.get("wan_pppoe_user", ""),
                           pppoe_password=secret or ("typed on the summary" if password_hash is None else ""))
        if reached >= STEP_NAMES.index("people") and "rows" in values:
            # staff with no web password yet (as the Users page makes them without one); their phone secret
            # is random (appliance.users.new_secret: the secrets module) and shown by a reset on the Users page
            people = [{"login": row["login"], "full_name": row["full_name"], "extension": row["extension"],
                       "role": "staff", "language": values["language"], "enabled": True, "password_hash": None,
                       "sip_secret": new_secret()} for _i, row in _people(values)]
        doc["users"] = [admin, *people] + [u for u in doc.get("users", []) if u.get("login") != values["login"]]
        tpl = trunk_templates.template(values.get("trunk_template", ""))
        if reached >= STEP_NAMES.index("trunk") and tpl is not None:
            registration = bool(values["t_registration"])
            doc.setdefault("pbx", {}).setdefault("trunks", []).append({
                "name": values["t_name"], "host": values["t_host"], "port": values["t_port"] or 5060,
                "transport": values["t_transport"] or "udp", "username": values["t_username"] if registration else "",
                "auth_password": trunk_password, "registration": registration,
                "from_number": values["t_from_number"], "number_format": tpl.number_format})
            if values.get("t_route"):
                _route_outside_calls(doc["pbx"], values["t_name"])

    return mutate


def _route_outside_calls(pbx: dict, trunk: str) -> None:
    """Every external number out by `trunk`: a route for all numbers (empty prefix), or the trunk added as
    the backup of the one there is."""
    routes = pbx.setdefault("routes", [])
    for route in routes:
        if route.get("prefix", "") == "":
            if trunk not in route.setdefault("trunks", []):
                route["trunks"].append(trunk)
            return
    names = {r.get("name") for r in routes}
    name = next(n for n in ("outside", *(f"outside-{i}" for i in range(2, len(routes) + 3))) if n not in names)
    routes.append({"name": name, "prefix": "", "trunks": [trunk]})


def _apply(values: dict[str, str], password_hash: str, trunk_password: str = "") -> None:
    core.runtime().engine.update(values["login"], "first-boot setup", _mutate(values, password_hash, trunk_password))
