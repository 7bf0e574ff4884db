"""Users as CSV: export (no secrets, cells a spreadsheet would run as a formula are escaped) and import
(UTF-8 with or without BOM, comma or semicolon): each row planned as add / change / unchanged / error, with
every bad cell's problem in plain words (the expected format and an example), all at once.

The plan is pure: it reads the configuration document and never writes; the web admin applies the rows as
one revision once no row is in error (see webadmin/blueprints/usercsv.py)."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from appliance.text import CONTROL
from appliance.users import LANGUAGES, MIN_PASSWORD_LENGTH, User

MAX_BYTES = 256 * 1024
MAX_ROWS = 200  # each new user's password is hashed with argon2 (a fraction of a second each)
MAX_PASSWORD_LENGTH = 256
MAX_QUOTA_MB = 10_000_000
EXPORT_COLUMNS = ("login", "full_name", "email", "extension", "language", "role", "enabled", "vpn_enabled",
                  "mailbox_mb", "proxy_password")
IMPORT_COLUMNS = ("login", "full_name", "email", "extension", "language", "role", "enabled", "vpn_enabled",
                  "mailbox_mb", "password")
QUOTA = "mailbox_mb"  # the user's own mailbox size (mail.user_quota_mb); empty: the box's default
READ_ONLY = ("proxy_password",)  # exported for information, ignored on import
FLAGS = ("enabled", "vpn_enabled")
OPTIONAL = ("email", "extension")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
YES = {"yes", "y", "true", "1", "oui", "o", "x", "是"}
NO = {"no", "n", "false", "0", "non", "", "否"}
DEFAULTS = {"role": "staff", "enabled": True, "vpn_enabled": False}  # and the box's language
CHOICES = {"role": ("admin", "staff", "readonly"), "language": LANGUAGES}
UNIQUE = ("login", "extension", "email")  # across users (appliance/schema.py)
STAND_IN = {"login": "csv-line-%d", "full_name": "-"}  # for a bad required cell while the rest is checked


def N_(message: str) -> str:
    """Marks a message id the web admin translates where it shows it (this module has no Flask-Babel)."""
    return message


class Text(str):
    """A message in English that keeps its message id and values, so the web admin can show it translated
    (webadmin/blueprints/usercsv.py lists the ids)."""
    msgid: str
    values: dict

    def __new__(cls, msgid: str, **values) -> Text:
        text = super().__new__(cls, msgid % values if values else msgid)
        text.msgid, text.values = msgid, values
        return text


REQUIRED = N_("this field is required")
# a cell the user model refuses: by column for a format, else by the kind of problem (pydantic's error type)
FORMATS = {
    "login": N_("use 2 to 32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter, "
                "like anna.martin"),
    "extension": N_("use 2 to 6 digits, like 201"),
    "email": N_("enter an e-mail address, like anna@example.com"),
}
MISSING = {"login": N_("enter a login, like anna.martin"),
           "full_name": N_("enter the user's full name, like Anna Martin")}
CHOOSE = N_("write one of: %(choices)s")
TOO_LONG = N_("use at most %(num)d characters")
CONTROLS = N_("remove the line breaks, tabs and other control characters")
TAKEN = N_("already used by %(user)s; choose another one")
ALSO_ON_LINE = N_("also on line %(line)d of the file; choose another one")


class CsvError(ValueError):
    """The file as a whole cannot be read (args[0], a Text, says why in plain words)."""


@dataclass
class Row:
    line: int
    login: str
    action: str = "unchanged"  # add | change | unchanged | error
    errors: list[tuple[str, str]] = field(default_factory=list)  # (column, message)
    values: dict = field(default_factory=dict)  # the user fields this row sets
    changed: list[str] = field(default_factory=list)
    password: str | None = None  # the file's initial password of a new user
    quota: int | None | bool = False  # the own mailbox size to set (None: the default); False: keep
    cells: dict = field(default_factory=dict)  # the file's cells, as typed (shown next to their errors)
    existing: bool = False  # the login is an existing user's

    def columns_in_error(self) -> set[str]:
        return {column for column, _ in self.errors}


def _safe_cell(value: str) -> str:
    """A cell a spreadsheet would evaluate (=, +, -, @...) starts with an apostrophe, as OWASP advises."""
    return "'" + value if value.startswith(FORMULA_START) else value


def export(users: list[User], quotas: dict[str, int], delimiter: str = ",") -> str:
    """Every user as CSV text with a BOM (so Excel reads UTF-8); never a password hash or secret.
    `quotas`: login -> own mailbox size in MB (mail.user_quota_mb)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for user in sorted(users, key=lambda u: u.login):
        cells = {"login": user.login, "full_name": user.full_name, "email": user.email or "",
                 "extension": user.extension or "", "language": user.language, "role": user.role,
                 "enabled": _yes_no(user.enabled), "vpn_enabled": _yes_no(user.vpn_enabled),
                 QUOTA: str(quotas[user.login]) if user.login in quotas else "",
                 "proxy_password": _yes_no(bool(user.proxy_password_hash))}
        writer.writerow([_safe_cell(cells[c]) for c in EXPORT_COLUMNS])
    return out.getvalue()


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def decode(data: bytes) -> str:
    """The text of an uploaded file, or CsvError (empty, too large, not UTF-8)."""
    if not data.strip():
        raise CsvError(Text(N_("the file is empty")))
    if len(data) > MAX_BYTES:
        raise CsvError(Text(N_("the file is larger than %(kb)d KB; split it into smaller files"), kb=MAX_BYTES // 1024))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvError(Text(N_("the file is not UTF-8 text: in your spreadsheet, save it as \"CSV UTF-8\""))) from None
    if "\x00" in text:
        raise CsvError(Text(N_("the file is not a CSV text file")))
    return text.replace("\r\n", "\n")  # as a browser posts it back from the preview


def read(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(columns, [(line number, {column: cell})]) of a file's text, or CsvError."""
    header_line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [c.strip().lower().replace(" ", "_") for c in next(reader)]
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise CsvError(Text(N_("the file has more than %(rows)d users; split it into smaller files"),
                                    rows=MAX_ROWS))
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise CsvError(Text(N_("line %(line)d cannot be read (%(reason)s); check its quotes"), line=reader.line_num,
                             reason=str(exc))) from None
    unknown = [c for c in header if c not in IMPORT_COLUMNS and c not in READ_ONLY]
    if unknown:
        raise CsvError(Text(N_("unknown column(s) %(unknown)s; the columns are %(columns)s"),
                             unknown=", ".join(unknown), columns=", ".join(IMPORT_COLUMNS)))
    if "login" not in header:
        raise CsvError(Text(N_("the first line must name the columns, with at least login and full_name")))
    if len(set(header)) != len(header):
        raise CsvError(Text(N_("a column is named twice in the first line")))
    out = []
    for line, cells in rows:
        if len(cells) > len(header):
            cells = cells[:len(header)] + ["\x00"]  # marks the row as having too many cells
        out.append((line, {c: (cells[i].strip() if i < len(cells) else "") for i, c in enumerate(header)}))
    return header, out


def _unescape(value: str) -> str:
    """The export's apostrophe before a formula-like cell is not part of the value."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def _row_values(cells: dict[str, str], row: Row) -> dict:
    values: dict = {}
    for column, raw in cells.items():
        if column in READ_ONLY or column == "login":
            continue
        value = _unescape(raw)
        if column in FLAGS:
            if value.lower() not in YES | NO:
                row.errors.append((column, Text(N_("write yes or no"))))
            elif value:
                values[column] = value.lower() in YES
        elif column in OPTIONAL:
            values[column] = value or None
        elif column == QUOTA:
            if value and not (value.isdigit() and int(value) <= MAX_QUOTA_MB):
                row.errors.append((column, Text(N_("enter a whole number of megabytes up to %(most)d (0: no limit), "
                                                "or leave it empty for the box's default"), most=MAX_QUOTA_MB)))
            else:
                row.quota = int(value) if value else None
        elif column == "password":
            row.password = value or None
        elif column in ("role", "language"):
            if value:
                values[column] = value.lower() if column == "role" else value
        else:
            values[column] = value
    return values


def password_problem(password: str) -> Text | None:
    """The web admin's password rules, for an initial password given in the file."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return Text(N_("use at least %(num)d characters"), num=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        return Text(N_("use at most %(num)d characters"), num=MAX_PASSWORD_LENGTH)
    return None


def defaults(document: dict) -> dict:
    """What a new user has unless the file says otherwise."""
    return {**DEFAULTS, "language": document.get("system", {}).get("language", "en")}


def cell_problem(column: str, problem: dict, value: str) -> str:
    """A cell the user model refused, in plain words: the expected format with an example (pydantic's own
    text only for a kind of problem no column here can have)."""
    kind, context = problem["type"], problem.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and not value):
        return Text(MISSING.get(column, REQUIRED))
    if kind == "string_pattern_mismatch" and column in FORMATS:
        return Text(FORMATS[column])
    if kind == "literal_error" and column in CHOICES:
        return Text(CHOOSE, choices=", ".join(CHOICES[column]))
    if kind == "string_too_long":
        return Text(TOO_LONG, num=int(context.get("max_length", 0)))
    if CONTROL.search(value):
        return Text(CONTROLS)
    return problem["msg"].removeprefix("Value error, ")


def _plan_row(line: int, cells: dict[str, str], existing: dict | None, own_login: str | None,
              quotas: dict[str, int], new: dict) -> Row:
    row = Row(line=line, login=_unescape(cells.get("login", "")).lower(), cells=cells, existing=existing is not None)
    if "\x00" in cells.values():
        row.errors.append(("", Text(N_("this line has more cells than the first line has columns"))))
    if not row.login:
        row.errors.append(("login", Text(MISSING["login"])))
    row.values = _row_values(cells, row)
    if existing is not None and row.password:
        row.errors.append(("password", Text(N_("an initial password is only for new users; leave it empty"))))
    elif row.password and (problem := password_problem(row.password)):
        row.errors.append(("password", problem))
    if existing is not None and row.login == own_login and (
            row.values.get("role", "admin") != "admin" or row.values.get("enabled") is False):
        row.errors.append(("role", Text(N_("you cannot remove your own admin rights or disable your own account"))))
    base = existing or {**new, "login": row.login}
    candidate = {**base, **row.values}
    try:
        User.model_validate({**candidate, "sip_secret": candidate.get("sip_secret") or "checkonly"})
    except ValidationError as exc:
        for problem in exc.errors():
            column = str(problem["loc"][0]) if problem["loc"] else ""
            if column not in row.columns_in_error():
                row.errors.append((column, cell_problem(column, problem, str(candidate.get(column) or ""))))
    row.changed = [k for k, v in row.values.items() if existing is None or existing.get(k) != v]
    if row.quota is not False and (existing is None or quotas.get(row.login) != row.quota):
        row.changed.append(QUOTA)
    if row.errors:
        row.action = "error"
    elif existing is None:
        row.action = "add"
    elif row.changed:
        row.action = "change"
    return row


def plan(rows: list[tuple[int, dict[str, str]]], document: dict, own_login: str | None,
         validate: Callable[[dict], list[tuple[str, str]]]) -> tuple[list[Row], list[str]]:
    """Each row's action and errors against `document`, and the errors of no row in particular.
    `validate(document)` returns the (dotted path, message) problems of a whole document: uniqueness
    across users, the services' own checks. A row the whole document refuses is an error, and the rest
    is checked again without it (at most a few rounds)."""
    users = {u["login"]: u for u in document.get("users", [])}
    quotas = document.get("mail", {}).get("user_quota_mb", {})
    planned: list[Row] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        row = _plan_row(line, cells, users.get(_unescape(cells.get("login", "")).lower()), own_login, quotas,
                        defaults(document))
        if row.login and row.login in seen:
            row.errors.append(("login", Text(N_("this login is already on line %(line)d of the file"),
                                             line=seen[row.login])))
            row.action = "error"
        seen.setdefault(row.login, line)
        planned.append(row)
    candidate, where = checked_document(document, planned)
    general = _route(validate(candidate), candidate["users"], where)
    order = {column: i for i, column in enumerate(("login", *IMPORT_COLUMNS))}
    for row in planned:
        row.errors.sort(key=lambda error: order.get(error[0], -1))
        if row.errors:
            row.action = "error"
    return planned, general


def _set_quota(doc: dict, row: Row) -> None:
    """The row's mail quota into the copy (None: back to the default; False: the file has no quota column)."""
    if row.quota is False or "mail" not in doc:
        return
    quotas = doc["mail"]["user_quota_mb"]
    if row.quota is None:
        quotas.pop(row.login, None)
    else:
        quotas[row.login] = row.quota


def _writable_copy(document: dict) -> tuple[dict, dict[str, int]]:
    """A copy of `document` whose users and mail quotas rows may change; each login's user index."""
    doc = {**document, "users": [dict(u) for u in document.get("users", [])]}
    if "mail" in doc:
        doc["mail"] = {**doc["mail"], "user_quota_mb": dict(doc["mail"].get("user_quota_mb", {}))}
    return doc, {u["login"]: i for i, u in enumerate(doc["users"])}


def checked_document(document: dict, rows: list[Row]) -> tuple[dict, dict[int, Row]]:
    """A copy of `document` with every row that adds or changes a user, or is in error, applied without its bad
    cells (a bad login or full name of a new user has a stand-in), so the whole document can tell every other
    problem of each row at once; which user index each row wrote."""
    doc, index = _writable_copy(document)
    where: dict[int, Row] = {}
    for row in rows:
        bad = row.columns_in_error()
        if row.action == "unchanged" or "" in bad:
            continue
        values = {k: v for k, v in row.values.items() if k not in bad}
        if row.existing and "login" not in bad:
            doc["users"][index[row.login]].update(values)
            where[index[row.login]] = row
        else:
            user = {**defaults(document), "login": row.login, **values}
            for name, stand_in in STAND_IN.items():
                if name in bad or not user.get(name):
                    user[name] = stand_in % row.line if "%" in stand_in else stand_in
            try:
                User.model_validate({**user, "sip_secret": "checkonly"})
            except ValidationError:
                continue  # left out: its own problems are already on the row
            doc["users"].append(user)
            where[len(doc["users"]) - 1] = row
        if QUOTA not in bad and "login" not in bad:
            _set_quota(doc, row)
    return doc, where


def _route(problems: list[tuple[str, str]], users: list[dict], where: dict[int, Row]) -> list[str]:
    """Put each problem of the whole document on the row that wrote its field, by the field's path alone
    (users.<index>.<field>, mail.user_quota_mb.<login>); the problems of no row are returned. A cell already
    in error keeps its first message; the other side of a row's duplicate (an existing user) is not repeated."""
    bad = {row.line: row.columns_in_error() for row in where.values()}
    by_login = {row.login: row for row in where.values() if "login" not in bad[row.line]}
    general: list[str] = []
    for path, message in problems:
        parts = path.split(".")
        row, column = None, ""
        if parts[0] == "users" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(users):
            index, column = int(parts[1]), (parts[2] if len(parts) > 2 else "")
            row = where.get(index)
            if row is None and column in UNIQUE and _holders(users, index, column, where):
                continue
            message = _duplicate(users, index, column, where) or message
        elif path.startswith("mail.user_quota_mb."):
            row, column = by_login.get(path.split(".", 2)[2]), QUOTA
        if row is None:
            general.append(message)
        elif column not in bad[row.line]:
            row.errors.append((column, message))
    return general


def _holders(users: list[dict], index: int, column: str, within: dict | None = None) -> list[int]:
    """The other users (indexes, those in `within` if given) with user `index`'s value of `column`."""
    value = users[index].get(column)
    return [i for i, u in enumerate(users) if i != index and value is not None and u.get(column) == value
            and (within is None or i in within)]


def _duplicate(users: list[dict], index: int, column: str, where: dict[int, Row]) -> Text | None:
    """Who else has this user's login, extension or e-mail address: another line of the file or a user."""
    others = _holders(users, index, column) if column in UNIQUE else []
    if not others:
        return None
    if others[0] in where:
        return Text(ALSO_ON_LINE, line=where[others[0]].line)
    other = users[others[0]]
    return Text(TAKEN, user=f"{other.get('full_name', '')} ({other['login']})")


def applied(document: dict, rows: list[Row], hash_of: Callable[[Row], str | None]) -> tuple[dict, dict[int, Row]]:
    """A copy of `document` with the rows that add or change applied; which user index each row wrote."""
    doc, index = _writable_copy(document)
    where: dict[int, Row] = {}
    for row in rows:
        if row.action == "change":
            doc["users"][index[row.login]].update(row.values)
            where[index[row.login]] = row
        elif row.action == "add":
            doc["users"].append({**defaults(document), "login": row.login, **row.values, "password_hash": hash_of(row)})
            where[len(doc["users"]) - 1] = row
        if row.action in ("add", "change"):
            _set_quota(doc, row)
    return doc, where
