"""Call accounting: the tariffs, the currency and the monthly budgets (pbx.accounting), and the cost reports
per user, department, trunk and month (an SVG chart, CSV and PDF). Figures come only through the PBX's
client (accounting_usage)."""
from __future__ import annotations

import csv
import datetime as dt
import io

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.service import ApplyError
from webadmin import core, forms, pdf_font
from webadmin.blueprints.callcentre import _safe_cell, _tz
from webadmin.core import N_

bp = Blueprint("accounting", __name__, url_prefix="/accounting")
NAV = [(N_("Telephony"), N_("Call tariffs"), "accounting.tariffs"),
       (N_("Telephony"), N_("Call costs"), "accounting.reports")]
GROUPS = (("user", N_("user")), ("department", N_("department")), ("trunk", N_("trunk")), ("month", N_("month")))
TARIFF_FIELDS = ("prefix", "per_minute", "setup", "increment", "trunk", "name")


def _pbx():
    return core.service_or_404("pbx")


# -- tariffs and budgets ----------------------------------------------------------------------------
def _tariffs_text(tariffs) -> str:
    return "\n".join(";".join(str(getattr(t, f)) for f in TARIFF_FIELDS) for t in tariffs)


FORM_FIELDS = ("currency", "tariffs_text", "budgets_text")


def _parse_tariffs(text: str, errors: dict[str, str]) -> list[dict]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(";")]
        if len(cells) < 4 or len(cells) > 6:
            errors["tariffs_text"] = _("line %(n)d: write prefix;price per minute;setup;increment[;trunk[;name]]",
                                       n=number)
            return out
        out.append(dict(zip(TARIFF_FIELDS, cells, strict=False)))
    return out


def _parse_budgets(text: str, errors: dict[str, str]) -> dict[str, str]:
    out = {}
    for line in (x.strip() for x in text.splitlines()):
        if not line:
            continue
        login, sep, amount = line.partition(":")
        if not sep or not amount.strip():
            errors["budgets_text"] = _("write one per line as login:amount, e.g. alice:50")
            return out
        out[login.strip()] = amount.strip()
    return out


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def tariffs():
    settings = core.current_config().pbx.accounting
    values = {"currency": settings.currency, "tariffs_text": _tariffs_text(settings.tariffs),
              "budgets_text": "\n".join(f"{k}:{v:g}" for k, v in settings.budgets.items())}
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {"currency": forms.text("currency", 3).upper(), "tariffs_text": forms.text("tariffs_text", 200000),
                  "budgets_text": forms.text("budgets_text", 50000)}
        items = _parse_tariffs(values["tariffs_text"], errors)
        budgets = _parse_budgets(values["budgets_text"], errors)
        if not errors:
            def mutate(doc: dict) -> None:
                doc.setdefault("pbx", {})["accounting"] = {"currency": values["currency"], "tariffs": items,
                                                           "budgets": budgets}
            errors, general = forms.apply_form(_("call tariffs"), mutate, prefix="pbx.accounting", top=True)
            errors = {{"tariffs": "tariffs_text", "budgets": "budgets_text"}.get(k, k): v for k, v in errors.items()}
            general += [f"{k}: {v}" for k, v in errors.items() if k not in FORM_FIELDS]
            errors = {k: v for k, v in errors.items() if k in FORM_FIELDS}
            if not errors and not general:
                flash(_("Call tariffs saved."), "success")
                return redirect(url_for("accounting.tariffs"))
    return render_template("accounting/tariffs.html", values=values, errors=errors, general=general), \
        (400 if errors or general else 200)


# -- reports ----------------------------------------------------------------------------------------
def _report_args() -> tuple[dict, dict[str, str]]:
    today = dt.datetime.now(_tz()).date()
    args = request.args
    values = {"by": args.get("by", "user"), "since": args.get("since") or today.replace(day=1).isoformat(),
              "until": args.get("until") or today.isoformat()}
    errors: dict[str, str] = {}
    if values["by"] not in dict(GROUPS):
        errors["by"] = _("choose a value from the list")
    forms.date_range(values, errors, _tz())
    return values, errors


def group(usage: list[dict], by: str, users) -> list[dict]:
    """Rows of accounting_usage summed per user (full name), department, trunk or month."""
    people = {u.extension: u for u in users if u.extension}

    def key(item: dict) -> str:
        person = people.get(item["extension"])
        if by == "user":
            return person.full_name if person else item["extension"]
        if by == "department":
            return person.department if person else ""
        return item[by]
    sums: dict[str, dict] = {}
    for item in usage:
        row = sums.setdefault(key(item), {"key": key(item), "calls": 0, "answered": 0, "seconds": 0.0,
                                          "cost": 0.0, "unrated": 0})
        for name in ("calls", "answered", "unrated"):
            row[name] += item[name]
        row["seconds"] = round(row["seconds"] + item["seconds"], 3)
        row["cost"] = round(row["cost"] + item["cost"], 4)
    return sorted(sums.values(), key=lambda r: (-r["cost"], r["key"]))


def _rows(values: dict) -> list[dict]:
    config = core.current_config()
    usage = _pbx().accounting_usage(values["since_ts"], values["until_ts"], config.system.timezone)
    return group(usage, values["by"], config.users)


@bp.route("/reports")
@core.admin_required
def reports():
    values, errors = _report_args()
    rows: list[dict] = []
    if not errors:
        try:
            rows = _rows(values)
        except ApplyError as exc:
            flash(_(str(exc)), "error")
    top = max([r["cost"] for r in rows] or [0]) or 1
    chart = [{"key": r["key"], "cost": r["cost"], "h": round(100 * r["cost"] / top)} for r in rows[:40]]
    return render_template("accounting/reports.html", values=values, errors=errors, rows=rows, chart=chart,
                           groups=[(v, _(label)) for v, label in GROUPS],
                           currency=core.current_config().pbx.accounting.currency), (400 if errors else 200)


def _export_rows() -> tuple[dict, list[dict]]:
    values, errors = _report_args()
    if errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in errors.items()))
    try:
        return values, _rows(values)
    except ApplyError as exc:
        abort(503, description=_(str(exc)))


EXPORT_COLUMNS = ("key", "calls", "answered", "seconds", "cost", "unrated")


@bp.route("/reports.csv")
@core.admin_required
def reports_csv():
    values, rows = _export_rows()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([values["by"], *EXPORT_COLUMNS[1:4], f"cost ({core.current_config().pbx.accounting.currency})",
                     "unrated"])
    for row in rows:
        writer.writerow([_safe_cell(row[c]) for c in EXPORT_COLUMNS])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="call-costs-{values["by"]}.csv"', "Cache-Control": "no-store"})


@bp.route("/reports.pdf")
@core.admin_required
def reports_pdf():
    values, rows = _export_rows()
    currency = core.current_config().pbx.accounting.currency
    label = dict(GROUPS)[values["by"]]
    per = _(label)
    title = _("Call costs per %(by)s, %(since)s to %(until)s", by=per, since=values["since"], until=values["until"])
    head = [per, _("Calls"), _("Answered"), _("Minutes"), f"{_('Cost')} ({currency})"]
    body = [[r["key"] or "-", str(r["calls"]), str(r["answered"]), f"{r['seconds'] / 60:.1f}", f"{r['cost']:.2f}"]
            for r in rows]
    total = [_("Total"), str(sum(r["calls"] for r in rows)), str(sum(r["answered"] for r in rows)),
             f"{sum(r['seconds'] for r in rows) / 60:.1f}", f"{sum(r['cost'] for r in rows):.2f}"]
    return Response(table_pdf(title, head, [*body, total]), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="call-costs-{values["by"]}.pdf"', "Cache-Control": "no-store"})


# -- a PDF of one table (PDF 1.4; a Unicode font embedded when installed, else the standard Helvetica) ----
PAGE_W, PAGE_H, MARGIN, LINE = 595, 842, 50, 16
COLUMN_X = (MARGIN, 260, 330, 400, 470)


def _pdf_text(text: str) -> str:
    """A PDF string literal in WinAnsi (characters outside it become ?)."""
    raw = text.encode("cp1252", "replace").decode("latin-1")
    return "(" + raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _page(lines: list[tuple[int, int, int, str]], use: pdf_font.FontUse | None) -> bytes:
    ops = ["BT"]
    for x, y, size, text in lines:
        ops.append(f"1 0 0 1 {x} {y} Tm")
        runs = use.runs(text) if use else [(0, _pdf_text(text))]
        ops += [f"/F{index + 1} {size} Tf {string} Tj" for index, string in runs]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def table_pdf(title: str, head: list[str], rows: list[list[str]], fonts: list | None = None) -> bytes:
    """`fonts`: pdf_font.TrueType fonts (default: the installed Unicode fonts; none: Helvetica in WinAnsi)."""
    fonts = pdf_font.installed() if fonts is None else fonts
    use = pdf_font.FontUse(fonts) if fonts else None
    per_page = (PAGE_H - 2 * MARGIN - 3 * LINE) // LINE
    chunks = [rows[i:i + per_page] for i in range(0, len(rows), per_page)] or [[]]
    streams = []
    for chunk in chunks:
        y = PAGE_H - MARGIN
        lines = [(MARGIN, y, 14, title)]
        y -= 2 * LINE
        for row in [head, *chunk]:
            lines += [(x, y, 10, cell[:40]) for x, cell in zip(COLUMN_X, row, strict=True)]
            y -= LINE
        streams.append(_page(lines, use))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    if use:
        fonts_objects, resources = use.objects(len(objects) + 1)
        objects += fonts_objects
    else:
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        resources = b"<< /F1 3 0 R >>"
    kids = []
    for stream in streams:
        objects.append(pdf_font.stream_object(stream))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font %s >> "
                       b"/Contents %d 0 R >>" % (PAGE_W, PAGE_H, resources, len(objects)))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
