"""The log viewer: every log file of the box (appliance/logfiles.py) with its size and time, the last lines
of one (a filter on text, 100 to 2000 lines) and its download. Read-only: admins and read-only admins."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request, send_file
from flask_babel import format_datetime

from appliance import logfiles
from webadmin import core
from webadmin.core import N_

bp = Blueprint("logs", __name__, url_prefix="/logs")
NAV = [(N_("System"), N_("Logs"), "logs.index")]
LINES = (100, 500, 2000)


def _ctx():
    return core.runtime().ctx


@bp.route("/")
@core.admin_required
def index():
    return render_template("logs/index.html", files=logfiles.files(_ctx()), when=_when)


def _when(stamp: float) -> str:
    from datetime import UTC, datetime
    return format_datetime(datetime.fromtimestamp(stamp, UTC), "short")


def _path(service: str, name: str):
    try:
        return logfiles.path_of(_ctx(), service, name)
    except ValueError:
        abort(404)


@bp.route("/<service>/<name>")
@core.admin_required
def view(service: str, name: str):
    path = _path(service, name)
    lines = request.args.get("lines", type=int, default=LINES[0])
    lines = lines if lines in LINES else LINES[0]
    contains = request.args.get("contains", "")[:100]
    shown = logfiles.tail(path, lines, contains)
    return render_template("logs/view.html", service=service, name=name, lines=lines, choices=LINES,
                           contains=contains, shown=shown, size=path.stat().st_size)


@bp.route("/<service>/<name>/download")
@core.admin_required
def download(service: str, name: str):
    path = _path(service, name)
    return send_file(path, mimetype="text/plain", as_attachment=True, download_name=f"{service}-{name}",
                     max_age=0)
