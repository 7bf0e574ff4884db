"""Staff's own call recordings: the recorded calls their extension took part in, played and
downloaded (through PbxClient, which checks the extension took part; any other name: 404)."""
from __future__ import annotations

from flask import Blueprint, abort, render_template

from appliance.service import ApplyError
from webadmin import core
from webadmin.blueprints.recording import audio_response, fetch

bp = Blueprint("myrecordings", __name__, url_prefix="/account/recordings")


@bp.route("/")
@core.login_required
def index():
    user = core.current_user()
    rows, unavailable = [], False
    if user.extension:
        try:
            rows = core.service("pbx").recordings(user.extension, 200)
        except ApplyError:
            unavailable = True
    return render_template("recording/mine.html", rows=rows, unavailable=unavailable, extension=user.extension)


@bp.route("/<name>.wav")
@core.login_required
def audio(name: str):
    user = core.current_user()
    if not user.extension:
        abort(404)
    return audio_response(fetch(f"{name}.wav", user.extension), f"{name}.wav")
