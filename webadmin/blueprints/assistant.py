"""Personal assistant pages: a staff member sets their own (/assistant/, linked from My account), an admin
anyone's (/assistant/<ext>, linked from the extension form): on or off, the greeting (typed text
spoken by the box; recorded by phone with the assistant code), the mobile number and up to five
choices a caller of an unanswered call may press. The pbx.extensions.<ext>.assistant section, applied
as one revision; a listen button plays the greeting callers hear."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from services.pbx.attendant.greetings import Greetings
from services.pbx.config import ExtensionSettings
from services.pbx.prompts import AudioError, PromptError
from webadmin import core, forms
from webadmin.blueprints.voice import prompt_library
from webadmin.core import N_

bp = Blueprint("assistant", __name__, url_prefix="/assistant")
KINDS = [("", N_("(none)")), ("voicemail", N_("Voicemail")), ("mobile", N_("My mobile")),
         ("external", N_("Another number")), ("colleague", N_("A colleague or secretary")),
         ("operator", N_("The operator"))]
CHOICES = 5


def _settings(ext: str):
    return (core.current_config().pbx.extensions.get(ext) or ExtensionSettings()).assistant


def _own_extension() -> str | None:
    user = core.current_user()
    return user.extension if user is not None else None


def _known(ext: str) -> str:
    if core.current_config().user_by_extension(ext) is None:
        abort(404)
    return ext


@bp.route("/", methods=["GET", "POST"])
@core.login_required
def own():
    ext = _own_extension()
    if not ext:
        return render_template("attendant/assistant.html", ext=None, own=True, general=[])
    return _form(ext, own=True)


@bp.route("/<ext>", methods=["GET", "POST"])
@core.admin_required
def extension(ext: str):
    return _form(_known(ext), own=False)


def _form(ext: str, own: bool):
    current = _settings(ext)
    values = current.model_dump(mode="json")
    rows = [{"kind": c.kind, "number": c.number} for c in current.choices]
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        rows = [{"kind": forms.text(f"kind_{n}", 20), "number": forms.text(f"number_{n}", 32)} for n in range(CHOICES)]
        values = {"enabled": forms.checkbox("enabled"), "greeting_text": forms.text("greeting_text", 500),
                  "mobile": forms.text("mobile", 32), "choices": [r for r in rows if r["kind"]]}

        def mutate(doc: dict) -> None:
            settings = doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {})
            settings["assistant"] = values

        at = f"pbx.extensions.{ext}.assistant"
        fields = {f"{at}.choices.{n}.number": f"number_{n}" for n in range(CHOICES)}
        errors, general = forms.apply_form(f"personal assistant of {ext}", mutate, at, fields)
        if not errors and not general:
            flash(_("The personal assistant of %(ext)s is saved.", ext=ext), "success")
            return redirect(url_for("assistant.own") if own else url_for("assistant.extension", ext=ext))
    rows += [{"kind": "", "number": ""}] * (CHOICES - len(rows))
    code = core.current_config().pbx.feature_codes.assistant
    recorded = Greetings.recorded(Greetings(core.runtime().ctx.data_dir).assistant_stem(ext)) is not None
    return render_template("attendant/assistant.html", ext=ext, own=own, values=values, rows=rows, kinds=KINDS,
                           errors=errors, general=general, code=code, recorded=recorded,
                           nav_active=None if own else "pbx.extensions"), (400 if errors or general else 200)


@bp.route("/<ext>/greeting.wav")
@core.login_required
def greeting(ext: str):
    """The greeting a caller hears (the recording, the typed text spoken, else the generated words)."""
    user = core.current_user()
    if user.extension != ext and not core.sees_admin_pages(user):
        abort(404)
    _known(ext)
    store = Greetings(core.runtime().ctx.data_dir)
    pa = _settings(ext)
    lang = core.current_config().user_by_extension(ext).language.replace("_", "-")
    try:
        path = store.chosen(store.assistant_stem(ext), pa.greeting_text, lang) \
            or prompt_library().prompt_path("vm-unavailable", lang)
    except (AudioError, PromptError) as err:
        abort(503, description=str(err))
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
