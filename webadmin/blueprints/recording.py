"""Call recording and manager/secretary settings (pbx.recording, pbx.secretaries), and the recordings
themselves for admins: played (HTML5 audio) and downloaded from the call records page. The audio comes
through the PBX's client (PbxClient.recording_audio), never from the PBX's files. A read-only admin
sees the settings but hears no recording (core.secret: conversations are as private as credentials)."""
from __future__ import annotations

import re

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.service import ApplyError
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("recording", __name__, url_prefix="/pbx/recording")
NAV = [(N_("Telephony"), N_("Recording and secretaries"), "recording.index")]
NOTICES = (("none", N_("No notice")), ("tone", N_("A beep")), ("prompt", N_("A spoken notice")))


def _numbers(name: str) -> list[str]:
    return [v for v in re.split(r"[\s,;]+", forms.text(name, 4000)) if v]


def audio_response(found, name: str) -> Response:
    """A recording (PbxClient.recording_audio's answer) as audio/wav; 404 if there is none."""
    if found is None:
        abort(404)
    size, pieces = found
    disposition = "attachment" if request.args.get("download") else "inline"
    return Response(pieces, mimetype="audio/wav", headers={
        "Content-Length": str(size), "Content-Disposition": f'{disposition}; filename="{name}"',
        "Cache-Control": "private, no-store"})


def fetch(name: str, extension: str | None = None):
    try:
        return core.service("pbx").recording_audio(name, extension)
    except ApplyError:
        abort(503)


@bp.app_context_processor
def _hears_recordings() -> dict:
    user = core.current_user()
    return {"hears_recordings": user is not None and user.role == "admin"}


@bp.route("/<name>.wav")
@core.secret
@core.admin_required
def audio(name: str):
    return audio_response(fetch(f"{name}.wav"), f"{name}.wav")


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def index():
    errors, general = {}, []
    if request.method == "POST":
        settings = {"extensions": _numbers("extensions"), "groups": _numbers("groups"), "trunks": _numbers("trunks"),
                    "on_demand": forms.checkbox("on_demand"), "notice": forms.text("notice"),
                    "retention_days": forms.text("retention_days"), "max_disk_mb": forms.text("max_disk_mb")}

        def mutate(doc: dict) -> None:
            doc["pbx"]["recording"] = settings
        errors, general = forms.apply_form("change the call recording settings", mutate, prefix="pbx.recording",
                                           top=True)
        if not errors and not general:
            flash(_("Recording settings saved."), "success")
            return redirect(url_for("recording.index"))
        return _page(errors, general, dict(request.form))
    return _page(errors, general)


@bp.route("/secretaries", methods=["POST"])
@core.admin_required
def secretaries():
    pair = {"manager": forms.text("manager", 6), "secretary": forms.text("secretary", 6),
            "screening": forms.checkbox("screening"), "bypass": _numbers("bypass")}

    def mutate(doc: dict) -> None:
        pairs = [p for p in doc["pbx"].setdefault("secretaries", []) if p.get("manager") != pair["manager"]]
        doc["pbx"]["secretaries"] = [*pairs, pair]
    index = sum(p.manager != pair["manager"] for p in core.current_config().pbx.secretaries)  # the new pair's place
    errors, general = forms.apply_form(f"manager {pair['manager']}: secretary {pair['secretary']}", mutate,
                                       prefix=f"pbx.secretaries.{index}", top=True)
    if errors or general:
        return _page(errors, general, dict(request.form))
    flash(_("Manager %(manager)s: secretary saved.", manager=pair["manager"]), "success")
    return redirect(url_for("recording.index"))


@bp.route("/secretaries/<int:index>/delete", methods=["POST"])
@core.admin_required
def delete_secretary(index: int):
    general = forms.remove_item("remove a manager's secretary", "pbx", "secretaries", index, N_("secretary"))
    if general:
        return _page({}, general)
    flash(_("Secretary removed."), "success")
    return redirect(url_for("recording.index"))


def _page(errors: dict, general: list, form: dict | None = None):
    """The page; `form`: what was posted to a form that failed, shown again instead of the configuration."""
    pbx = core.current_config().pbx
    return render_template("recording/index.html", rec=pbx.recording, pairs=pbx.secretaries, codes=pbx.feature_codes,
                           notices=[(k, _(v)) for k, v in NOTICES], errors=errors, general=general,
                           form=form or {}), \
        (400 if errors or general else 200)
