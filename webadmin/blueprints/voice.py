"""Voice pages: the prompt sets per language (listen, upload, restore the generated one), the box's
prompt language, and the music-on-hold classes (create, upload, listen, delete; "default" stays).

Audio is served by these pages to an HTML5 <audio> element; everything works without JavaScript.
Uploads are converted once with sox in the request's thread (seconds for a 10-minute MP3).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from services.pbx.moh import MohLibrary
from services.pbx.prompts import LANGUAGES, AudioError, PromptError, PromptLibrary, PromptsUnavailable
from webadmin import core, forms, usedby
from webadmin.blueprints.system import _saved_upload as saved_upload
from webadmin.core import N_

bp = Blueprint("voice", __name__, url_prefix="/voice")
# "Hold music", not "Music on hold": the words "on hold" in every page's menu would read as a held call
NAV = [(N_("Telephony"), N_("Prompts"), "voice.prompts"), (N_("Telephony"), N_("Hold music"), "voice.moh")]
PROMPT_UPLOAD_LIMIT = 40 * 1024 * 1024     # two minutes of 44.1 kHz stereo WAV
MOH_UPLOAD_LIMIT = 200 * 1024 * 1024       # ten minutes of 48 kHz stereo 24-bit WAV
core.LARGE_UPLOADS["voice.prompt_upload"] = PROMPT_UPLOAD_LIMIT
core.LARGE_UPLOADS["voice.moh_upload"] = MOH_UPLOAD_LIMIT
ACCEPT = ".wav,.mp3,.ogg,audio/wav,audio/mpeg,audio/ogg"
LIBRARY_KEY = "officebox.prompts"


def prompt_library() -> PromptLibrary:
    """One library per app (it remembers that the generated set is ready), in the box's language."""
    lib = current_app.extensions.get(LIBRARY_KEY)
    if lib is None:
        lib = current_app.extensions[LIBRARY_KEY] = PromptLibrary(core.runtime().ctx.data_dir)
    lib.default_language = core.current_config().pbx.prompt_language
    return lib


def moh_library() -> MohLibrary:
    return MohLibrary(core.runtime().ctx.data_dir)


@contextlib.contextmanager
def _saved(field: str, folder: Path):
    """The posted file in a temporary file on the disk it goes to; None if none was chosen."""
    upload = request.files.get(field)
    if upload is None or not upload.filename:
        yield None
        return
    folder.mkdir(parents=True, exist_ok=True)
    with saved_upload(upload, folder) as path:
        yield path


def _language_or_404(lang: str) -> str:
    if lang not in LANGUAGES:
        abort(404)
    return lang


# -- prompts --------------------------------------------------------------------------------------
@bp.route("/prompts", endpoint="prompts", methods=["GET", "POST"])
@core.admin_required
def prompts_index():
    lang = request.args.get("lang", "")
    lang = lang if lang in LANGUAGES else core.current_config().pbx.prompt_language
    general: list[str] = []
    if request.method == "POST":
        chosen = forms.text("prompt_language", 10)

        def mutate(doc: dict) -> None:
            doc.setdefault("pbx", {})["prompt_language"] = chosen

        errors, general = forms.apply_form("prompt language", mutate, prefix="pbx")
        general += [f"{name}: {message}" for name, message in errors.items()]
        if not general:
            flash(_("Callers without a language of their own now hear %(language)s.", language=LANGUAGES[chosen]),
                  "success")
            return redirect(url_for("voice.prompts", lang=chosen))
    box_language = core.current_config().pbx.prompt_language
    return render_template("voice/prompts.html", lang=lang, languages=LANGUAGES, general=general,
                           entries=prompt_library().listing(lang), box_language=box_language,
                           record_code=core.current_config().pbx.feature_codes.prompt_record), (400 if general else 200)


@bp.route("/prompts/<lang>/<key>")
@core.admin_required
def prompt(lang: str, key: str, general: list[str] | None = None, status: int = 200):
    lang = _language_or_404(lang)
    entry = next((e for e in prompt_library().listing(lang) if e["key"] == key), None)
    if entry is None:
        abort(404)
    return render_template("voice/prompt.html", lang=lang, language=LANGUAGES[lang], entry=entry,
                           general=general or [], accept=ACCEPT, nav_active="voice.prompts"), status


@bp.route("/prompts/<lang>/<key>.wav")
@core.admin_required
def prompt_audio(lang: str, key: str):
    rate = 16000 if request.args.get("rate") == "16000" else 8000
    try:
        path = prompt_library().prompt_path(key, _language_or_404(lang), rate)
    except PromptsUnavailable as err:
        abort(503, description=str(err))
    except PromptError:
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)


@bp.route("/prompts/<lang>/<key>/upload", methods=["POST"])
@core.admin_required
def prompt_upload(lang: str, key: str):
    lib = prompt_library()
    with _saved("audio", lib.custom_root) as path:
        if path is None:
            return prompt(lang, key, [_("Choose a WAV, MP3 or OGG file to upload.")], 400)
        try:
            lib.replace(key, _language_or_404(lang), path)
        except PromptError:
            abort(404)
        except AudioError as err:
            return prompt(lang, key, [_("The file was refused: %(reason)s.", reason=err)], 400)
    flash(_("The prompt %(key)s (%(language)s) now plays your recording.", key=key, language=LANGUAGES[lang]),
          "success")
    return redirect(url_for("voice.prompt", lang=lang, key=key))


@bp.route("/prompts/<lang>/<key>/restore", methods=["POST"])
@core.admin_required
def prompt_restore(lang: str, key: str):
    try:
        prompt_library().restore(key, _language_or_404(lang))
    except PromptError:
        abort(404)
    flash(_("The prompt %(key)s (%(language)s) is the generated one again.", key=key, language=LANGUAGES[lang]),
          "success")
    return redirect(url_for("voice.prompt", lang=lang, key=key))


# -- music on hold --------------------------------------------------------------------------------
def _class_or_404(name: str):
    chosen = next((c for c in core.current_config().pbx.moh_classes if c.name == name), None)
    if chosen is None:
        abort(404)
    return chosen


def _moh_page(general: list[str] | None = None, errors: dict | None = None, values: dict | None = None,
              status: int = 200):
    return render_template("voice/moh.html", classes=core.current_config().pbx.moh_classes, accept=ACCEPT,
                           general=general or [], errors=errors or {}, values=values or {}), status


def _moh_change(summary: str, mutate, message: str, done=None, undo=None):
    """Apply a change of the classes as one revision; `done` after it (files go once the configuration no
    longer names them), `undo` if it was refused (files stored for it go again)."""
    general = forms.apply_form(summary, mutate)[1]
    if general:
        if undo:
            undo()
        return _moh_page(general, status=400)
    if done:
        done()
    flash(message, "success")
    return redirect(url_for("voice.moh"))


@bp.route("/moh", endpoint="moh")
@core.admin_required
def moh_index():
    return _moh_page()


@bp.route("/moh/classes", methods=["POST"])
@core.admin_required
def moh_create():
    name = forms.text("name", 40)
    index = len(core.current_config().pbx.moh_classes)

    def mutate(doc: dict) -> None:
        classes = doc.setdefault("pbx", {}).setdefault("moh_classes", [{"name": "default", "files": []}])
        if any(c["name"] == name for c in classes):
            raise ConfigError({f"pbx.moh_classes.{index}.name": _("a class of that name exists")})
        classes.append({"name": name, "files": []})

    errors, general = forms.apply_form(f"music on hold class {name}", mutate, prefix=f"pbx.moh_classes.{index}")
    if errors or general:
        if "name" in errors and "pattern" in errors["name"]:
            errors["name"] = _("use 1 to 32 letters, digits, '_' or '-'")
        return _moh_page(general, errors, {"name": name}, 400)
    flash(_("The class %(name)s was created; upload its music below.", name=name), "success")
    return redirect(url_for("voice.moh"))


@bp.route("/moh/<name>/delete", methods=["GET", "POST"])
@core.admin_required
def moh_delete(name: str):
    """Asked first (webadmin/usedby.py): the extensions and queues that use the class, which then play the
    default one."""
    _class_or_404(name)
    if name == "default":
        return _moh_page([_("The default class cannot be deleted (calls without a class of their own use it).")],
                         status=400)

    def mutate(doc: dict) -> None:
        doc["pbx"]["moh_classes"] = [c for c in doc["pbx"]["moh_classes"] if c["name"] != name]

    if not usedby.confirmed():
        return usedby.confirm_page("moh_class", name, _("music on hold class"), url_for("voice.moh"), mutate,
                                   nav_active="voice.moh")

    return _moh_change(f"delete music on hold class {name}", mutate, _("The class %(name)s was deleted.", name=name),
                       done=lambda: moh_library().remove_class(name))


@bp.route("/moh/<name>/upload", methods=["POST"])
@core.admin_required
def moh_upload(name: str):
    _class_or_404(name)
    library = moh_library()
    title = (request.files.get("audio").filename if request.files.get("audio") else "")[:100]
    with _saved("audio", library.root) as path:
        if path is None:
            return _moh_page([_("Choose a WAV, MP3 or OGG file to upload.")], status=400)
        try:
            file_id, seconds = library.add(name, path)
        except AudioError as err:
            return _moh_page([_("%(file)s was refused: %(reason)s.", file=title, reason=err)], status=400)

    def mutate(doc: dict) -> None:
        for entry in doc["pbx"]["moh_classes"]:
            if entry["name"] == name:
                entry.setdefault("files", []).append({"id": file_id, "title": title, "seconds": round(seconds, 1)})

    return _moh_change(f"music on hold {name}: add {title}", mutate,
                       _("%(file)s (%(seconds)d s) was added to %(name)s.", file=title, seconds=seconds, name=name),
                       undo=lambda: library.remove(name, file_id))


@bp.route("/moh/<name>/files/<file_id>/delete", methods=["POST"])
@core.admin_required
def moh_file_delete(name: str, file_id: str):
    chosen = _class_or_404(name)
    if file_id not in [f.id for f in chosen.files]:
        abort(404)

    def mutate(doc: dict) -> None:
        for entry in doc["pbx"]["moh_classes"]:
            if entry["name"] == name:
                entry["files"] = [f for f in entry["files"] if f["id"] != file_id]

    return _moh_change(f"music on hold {name}: remove a file", mutate,
                       _("The file was removed from %(name)s.", name=name),
                       done=lambda: moh_library().remove(name, file_id))


@bp.route("/moh/<name>/files/<file_id>.wav")
@core.admin_required
def moh_audio(name: str, file_id: str):
    chosen = _class_or_404(name)
    if file_id not in [f.id for f in chosen.files]:
        abort(404)
    path = moh_library().file_path(name, file_id, 16000)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)


@bp.route("/moh/builtin.wav")
@core.admin_required
def moh_builtin():
    return send_file(moh_library().builtin(16000), mimetype="audio/wav", conditional=True, max_age=0)
