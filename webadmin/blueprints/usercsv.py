"""Users as CSV: export, and import with a preview (add / change / unchanged / error per row, each bad cell's
problem in plain words by its line and column, all in the error summary at the top) then, once the file has no
error, one confirm that applies every row as one revision. The preview carries the file's
text and the revision it was planned on: the confirm plans again on that revision and applies only
if the plan is the one shown (a conflicting change meanwhile is refused as everywhere else)."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, Response, g, render_template, request
from flask_babel import gettext as _

from appliance import schema, usercsv
from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import hash_password, new_secret
from webadmin import core, forms, setupsheet
from webadmin.core import N_

bp = Blueprint("usercsv", __name__, url_prefix="/users")
ACTION_LABELS = {"add": N_("add"), "change": N_("change"), "unchanged": N_("unchanged"), "error": N_("error")}
# the message ids of appliance/usercsv.py's Text messages (a whole file refused, a row's error), shown translated
MESSAGES = (N_("the file is empty"), N_("the file is larger than %(kb)d KB; split it into smaller files"),
            N_("the file is not UTF-8 text: in your spreadsheet, save it as \"CSV UTF-8\""),
            N_("the file is not a CSV text file"),
            N_("the file has more than %(rows)d users; split it into smaller files"),
            N_("line %(line)d cannot be read (%(reason)s); check its quotes"),
            N_("unknown column(s) %(unknown)s; the columns are %(columns)s"),
            N_("the first line must name the columns, with at least login and full_name"),
            N_("a column is named twice in the first line"), N_("write yes or no"),
            N_("enter a whole number of megabytes up to %(most)d (0: no limit), "
               "or leave it empty for the box's default"),
            N_("use at least %(num)d characters"), N_("use at most %(num)d characters"),
            N_("this line has more cells than the first line has columns"), N_("this field is required"),
            N_("an initial password is only for new users; leave it empty"),
            N_("you cannot remove your own admin rights or disable your own account"),
            N_("this login is already on line %(line)d of the file"),
            N_("use 2 to 32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter, "
               "like anna.martin"),
            N_("use 2 to 6 digits, like 201"), N_("enter an e-mail address, like anna@example.com"),
            N_("enter a login, like anna.martin"), N_("enter the user's full name, like Anna Martin"),
            N_("write one of: %(choices)s"), N_("remove the line breaks, tabs and other control characters"),
            N_("already used by %(user)s; choose another one"),
            N_("also on line %(line)d of the file; choose another one"))


@bp.route("/export.csv")
@core.admin_required
def export():
    delimiter = ";" if request.args.get("separator") == "semicolon" else ","
    config = core.current_config()
    mail = getattr(config, "mail", None)
    body = usercsv.export(config.users, dict(mail.user_quota_mb) if mail else {}, delimiter)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=officebox-users.csv", "Cache-Control": "no-store"})


def _validate(document: dict) -> list[tuple[str, str]]:
    try:
        core.runtime().engine.validate(document)
    except ConfigError as err:
        return [(p.path, p.message) for p in err.problems]
    return []


def _plan(text: str, document: dict):
    _, rows = usercsv.read(usercsv.decode(text.encode("utf-8")))
    own = core.current_user().login
    planned, general = usercsv.plan(rows, document, own, _validate)
    for row in planned:
        row.errors = [(column, shown(column, message)) for column, message in row.errors]
    return planned, [shown("", message) for message in general]


def cell_errors(planned) -> tuple[dict[str, str], dict[int, list[tuple[str, str, str, str]]]]:
    """The error summary's entries ({key: "Line 3, extension: ..."}, each key the id of its cell's message
    f-<key>) and each line's [(key, column, cell as typed, message)]."""
    summary: dict[str, str] = {}
    by_line: dict[int, list[tuple[str, str, str, str]]] = {}
    for row in planned:
        for column, message in row.errors:
            key = base = f"line{row.line}_{column or 'line'}"
            count = 1
            while key in summary:
                count += 1
                key = f"{base}_{count}"
            summary[key] = _("Line %(line)d, %(column)s: %(message)s", line=row.line, column=column,
                             message=message) if column else _("Line %(line)d: %(message)s", line=row.line,
                                                                   message=message)
            value = row.cells.get(column, "") if column != "password" else ""
            by_line.setdefault(row.line, []).append((key, column, value, message))
    return summary, by_line


def shown(column: str, message: str) -> str:
    """A row's or the file's problem in the reader's language (a validator's own words as friendly as known)."""
    if isinstance(message, usercsv.Text):
        return _(message.msgid, **message.values)
    return forms.friendly(column, message)


def _refused(exc: usercsv.CsvError):
    reason = shown("", exc.args[0])
    return _page(columns=usercsv.IMPORT_COLUMNS, file_error=_("This file cannot be imported: %(reason)s.",
                                                              reason=reason), status=400)


def _digest(text: str, planned) -> str:
    summary = "|".join(f"{r.line}:{r.action}:{','.join(r.changed)}" for r in planned)
    return hashlib.sha256((text + "\n" + summary).encode()).hexdigest()


def _document_of(base: int | None) -> dict:
    rev = core.runtime().store.revision(base) if base is not None else None
    return schema.to_document(rev.config if rev is not None else core.current_config())


def _page(template: str = "users/import.html", status: int = 200, **context):
    response = Response(render_template(template, labels=ACTION_LABELS, max_rows=usercsv.MAX_ROWS,
                                        max_kb=usercsv.MAX_BYTES // 1024, **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/import", methods=["GET", "POST"])
@core.admin_required
def import_preview():
    if request.method == "GET":
        return _page(columns=usercsv.IMPORT_COLUMNS)
    upload = request.files.get("file")
    data = upload.read(usercsv.MAX_BYTES + 1) if upload else b""
    try:
        text = usercsv.decode(data)
        base = core.runtime().store.current_id()
        planned, general = _plan(text, _document_of(base))
    except usercsv.CsvError as exc:
        return _refused(exc)
    g.officebox_base = base  # the confirm builds on the revision this preview was planned on
    return _preview(text, planned, general)


def _preview(text: str, planned, general, warning: str | None = None, status: int = 200):
    counts = {action: sum(r.action == action for r in planned) for action in ACTION_LABELS}
    errors, cells = cell_errors(planned)
    if (errors or general) and status == 200:
        status = 400
    return _page("users/import_preview.html", status, rows=planned, general=general, counts=counts, text=text,
                 digest=_digest(text, planned), warning=warning, errors=errors, cells=cells,
                 generated=sum(r.action == "add" and not r.password for r in planned))


@bp.route("/import/confirm", methods=["POST"])
@core.admin_required
def import_confirm():
    posted = request.form.get(core.BASE_FIELD, "")
    base = int(posted) if posted.isdigit() else None
    try:
        text = usercsv.decode(request.form.get("text", "").encode("utf-8"))  # a browser posts CR LF
        planned, general = _plan(text, _document_of(base))
    except usercsv.CsvError as exc:
        return _refused(exc)
    if general or any(r.action == "error" for r in planned):
        return _preview(text, planned, general, _("Nothing was saved: the file still has errors. Correct them in "
                                                  "the file, then choose it again."), 400)
    if _digest(text, planned) != request.form.get("digest"):
        return _preview(text, planned, general, _("The result of the import changed since the preview (the "
                        "file or the configuration changed meanwhile). Nothing was saved: check the rows again."), 409)
    todo = [r for r in planned if r.action in ("add", "change")]
    if not todo:
        return _preview(text, planned, general, _("There is nothing to import: no row adds or changes a user."), 400)
    passwords = {r.login: r.password or new_secret(14) for r in todo if r.action == "add"}
    with ThreadPoolExecutor(2) as pool:  # argon2 takes a fraction of a second per password
        hashes = dict(zip(passwords, pool.map(hash_password, passwords.values()), strict=True))

    def mutate(doc: dict) -> None:
        doc.update(usercsv.applied(doc, todo, lambda row: hashes[row.login])[0])

    adds = sum(r.action == "add" for r in todo)
    try:
        core.apply_change(f"import users from CSV: {adds} added, {len(todo) - adds} changed", mutate)
    except ConfigError as err:
        _fields, messages = forms.form_errors(err)
        return _preview(text, planned, general, _("Nothing was saved: %(problems)s", problems="; ".join(messages)), 400)
    except ApplyError as err:
        return _preview(text, planned, [forms.general_error(err)], None, 409)
    shown = [(r, passwords[r.login] if r.action == "add" and not r.password else None) for r in todo]
    welcome = _welcome([r.login for r in todo if r.action == "add"]) if forms.checkbox("welcome_mail") else None
    return _page("users/import_done.html", rows=shown, welcome=welcome)


def _welcome(logins: list[str]) -> dict:
    """The welcome mail to each new user: {"sent": n, "failed": [(login, why)]}."""
    config = core.current_config()
    sent, failed = 0, []
    for login in logins:
        problem = setupsheet.send_welcome(config.user(login), config)
        if problem:
            failed.append((login, problem))
        else:
            sent += 1
    return {"sent": sent, "failed": failed}
