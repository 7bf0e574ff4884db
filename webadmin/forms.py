"""Form helpers: read fields, and turn a ConfigError into per-field messages an admin understands
(routed by field path, never by message text), or a ChangedMeanwhile into the difference to review."""
from __future__ import annotations

import datetime as dt

from flask import request
from flask_babel import gettext as _
from markupsafe import Markup

from appliance.apply import ChangedMeanwhile, ConfigError
from appliance.service import ApplyError
from appliance.users import MIN_PASSWORD_LENGTH
from webadmin.core import N_

MAX_PASSWORD_LENGTH = 256

# shown instead of a bare pattern mismatch ("is not in the expected format"), keyed by the field's last name
PATTERN_HINTS = {
    "login": N_("use 2 to 32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter"),
    "extension": N_("use 2 to 6 digits"),
    "email": N_("enter a valid e-mail address, like anna@example.com"),
    "hostname": N_("use lower-case letters, digits and '-' only"),
    "domain": N_("enter a domain name, like office.lan"),
    "mail_domain": N_("enter a domain name, like example.com"),
    "timezone": N_("choose a time zone from the list"),
    "interface": N_("enter an interface name, like eth0"),
}


def friendly(path: str, message: str) -> str:
    name = path.rsplit(".", 1)[-1]
    mismatch = message.startswith("String should match pattern") or message == "is not in the expected format"
    if mismatch and name in PATTERN_HINTS:
        return _(PATTERN_HINTS[name])
    if message == "String should have at least 1 character":
        return _("this field is required")
    return message


def _sibling(path: str, prefix: str) -> str | None:
    """'users.3.extension' with prefix 'users.2' -> 'extension': the same field of another list item."""
    parent, _, index = prefix.rpartition(".")
    if not parent or not index.isdigit() or not path.startswith(parent + "."):
        return None
    other, _, rest = path[len(parent) + 1:].partition(".")
    return rest if other.isdigit() and other != index and rest else None


def form_errors(err: ConfigError, prefix: str = "", fields: dict[str, str] | None = None) \
        -> tuple[dict[str, str], list[str]]:
    """Split `err.problems` into ({form field: message}, [general messages]), by field path only.

    `fields` maps exact dotted paths to form field names; with `prefix` ("users.3"), paths below it
    map to the rest of the path ("users.3.extension" -> "extension"). The same problem reported on
    another item of that list (a duplicate extension, seen from the other user) is not repeated.
    """
    fields = fields or {}
    by_field: dict[str, str] = {}
    general: list[str] = []
    own = [p for p in err.problems if prefix and p.path.startswith(prefix + ".")]  # first: siblings see them
    for path, message in own + [p for p in err.problems if p not in own]:
        text = friendly(path, message)
        name = fields.get(path)
        if name is None and prefix and path.startswith(prefix + "."):
            name = path[len(prefix) + 1:]
        if name is None and prefix and by_field.get(_sibling(path, prefix) or "") == text:
            continue
        if name is not None and name not in by_field:
            by_field[name] = text
        elif name is not None:  # a second problem with the same field: keep it visible
            general.append(f"{name.replace('_', ' ')}: {text}")
        else:
            general.append(f"{path}: {text}" if path and path != prefix else text)
    return by_field, general


def changed_meanwhile(err: ChangedMeanwhile) -> Markup:
    """The conflict message with the difference since the form was shown (secrets masked)."""
    rev = err.current
    who = _("revision #%(id)s by %(author)s (%(summary)s)", id=rev.id, author=rev.author, summary=rev.summary) \
        if rev else _("another change")
    where = " " + _("Both changed %(paths)s.", paths=", ".join(err.paths)) if err.paths else ""
    lines = Markup("").join(Markup('<span class="{}">{}</span>').format(diff_line_class(line), line)
                            for line in err.diff.splitlines())
    text = _("The configuration was changed meanwhile by %(who)s; nothing was saved.", who=who)
    advice = _("Here is the difference since the page was shown; check it, then save again:")
    return Markup('{}{} {}<pre class="diff">{}</pre>').format(text, where, advice, lines)


def general_error(err: ApplyError) -> str | Markup:
    """The message of an apply that failed as a whole (a conflict comes with its difference)."""
    return changed_meanwhile(err) if isinstance(err, ChangedMeanwhile) else str(err)


def diff_line_class(line: str) -> str:
    """The CSS class of one line of a unified diff."""
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    return {"+": "diff-add", "-": "diff-del"}.get(line[:1], "")


def posted_to(*actions: str) -> bool:
    """This page is the answer to a POST to one of `actions` (form action URLs): a form of a page with
    several, re-shown because it failed (macros.html form_open shows its summary by it)."""
    return request.method == "POST" and request.path in {a.split("#")[0].split("?")[0] for a in actions}


def text(name: str, max_length: int = 200) -> str:
    """A stripped text field from the posted form (never None, bounded length)."""
    return (request.form.get(name) or "").strip()[:max_length]


def optional(name: str, max_length: int = 200) -> str | None:
    value = text(name, max_length)
    return value or None


def checkbox(name: str) -> bool:
    return request.form.get(name) in ("on", "1", "true", "yes")


def new_password(errors: dict[str, str], field: str = "password", repeat: str = "password2") -> str | None:
    """The posted new password if it is acceptable and typed twice the same; else None and `errors` set."""
    password = request.form.get(field) or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        errors[field] = _("use at least %(num)d characters", num=MIN_PASSWORD_LENGTH)
    elif len(password) > MAX_PASSWORD_LENGTH:
        errors[field] = _("use at most %(num)d characters", num=MAX_PASSWORD_LENGTH)
    elif password != request.form.get(repeat):
        errors[repeat] = _("the two passwords differ")
    else:
        return password
    return None


def top_fields(errors: dict[str, str], general: list[str]) -> tuple[dict[str, str], list[str]]:
    """'sources.2' -> 'sources': list items are edited in one form field."""
    out: dict[str, str] = {}
    for name, message in errors.items():
        out.setdefault(name.split(".")[0], message)
    return out, general


def apply_form(summary: str, mutate, prefix: str = "", fields: dict[str, str] | None = None,
               top: bool = False) -> tuple[dict[str, str], list[str]]:
    """Apply a form's change as one revision: (field errors, general errors), both empty on success.
    `top`: errors on list items are shown by the list's field (see top_fields)."""
    from webadmin import core
    try:
        core.apply_change(summary, mutate)
    except ConfigError as err:
        errors, general = form_errors(err, prefix=prefix, fields=fields)
        return top_fields(errors, general) if top else (errors, general)
    except ApplyError as err:
        return {}, [general_error(err)]
    return {}, []


def remove_item(summary: str, section: str, key: str, index: int, what: str) -> list[str]:
    """Remove item `index` of doc[section][key] as one revision; the general errors (empty: removed)."""
    def mutate(doc: dict) -> None:
        items = doc[section][key]
        if not 0 <= index < len(items):
            raise ConfigError({"": _("that %(what)s no longer exists", what=_(what))})
        del items[index]
    return apply_form(summary, mutate)[1]


def date_range(values: dict, errors: dict[str, str], zone) -> None:
    """A report's days: values["since"] and values["until"] (YYYY-MM-DD, the end day included) give
    values["since_ts"] and values["until_ts"] (epoch seconds at midnight in `zone`); errors by field."""
    times = {}
    for name, shift in (("since", 0), ("until", 1)):
        try:
            day = dt.date.fromisoformat(values[name][:10])
        except ValueError:
            errors[name] = _("enter a date as YYYY-MM-DD")
            continue
        times[name] = dt.datetime.combine(day + dt.timedelta(days=shift), dt.time(), zone).timestamp()
    if not errors and times["until"] <= times["since"]:
        errors["until"] = _("the end date must not be before the start date")
    values.update(since_ts=times.get("since"), until_ts=times.get("until"))
