"""My account: every signed-in user (staff too) can see their details, change their own password and set
their own call forwarding (always / busy / no answer with its timeout / do not disturb), checked exactly
as the admin's extension form checks it (webadmin.blueprints.pbx), and choose the language of their pages.
My voicemail (/account/voicemail): their own box's messages per folder (listen, download, mark heard, save,
delete), greetings (upload, remove) and voicemail by e-mail, through the PBX's client only."""
from __future__ import annotations

import datetime
import io
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.users import hash_password
from services.pbx.prompts import audio
from webadmin import core, forms, setupsheet
from webadmin.blueprints import vpn
from webadmin.blueprints.pbx import FORWARD_FIELDS, FORWARD_HINT, posted_call_handling
from webadmin.blueprints.pbx import _apply as apply_call_handling
from webadmin.core import N_
from webadmin.i18n import LANGUAGE_NAMES, language_choices
from webadmin.security import Busy

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/", methods=["GET", "POST"])
@core.login_required
def index():
    user = core.current_user()
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        lockout = current_app.extensions[core.LOCKOUT_KEY]
        keys = (("login", user.login), ("addr", request.remote_addr or "?"))
        current = request.form.get("current_password") or ""
        if lockout.wait_time(*keys) > 0:
            general = [_("Too many wrong passwords. Please wait a moment before trying again.")]
        elif not _current_password_ok(user, current, general):
            if not general:
                lockout.failed(*keys)
                errors["current_password"] = _("this is not your current password")
        elif (new := forms.new_password(errors)) is not None:
            lockout.succeeded(("login", user.login))
            password_hash = hash_password(new)
            try:
                _update_own(user.login, f"{user.login} changed their password", password_hash=password_hash)
            except (ConfigError, ApplyError) as err:
                general = [str(err)]
            else:
                current_app.extensions[core.SESSIONS_KEY].rebind(session.get("sid"), password_hash)
                flash(_("Your password was changed."), "success")
                return redirect(url_for("account.index"))
    return _page(user, errors=errors, general=general)


def _update_own(login: str, summary: str, **fields) -> None:
    """Change fields of the signed-in user's own entry as one revision (ConfigError, ApplyError)."""
    def mutate(doc: dict) -> None:
        for entry in doc["users"]:
            if entry["login"] == login:
                entry.update(fields)

    core.apply_change(summary, mutate)


def _page(user, errors: dict | None = None, general: list | None = None, forwarding: dict | None = None,
          forward_errors: dict | None = None, forward_general: list | None = None,
          language_errors: dict | None = None, language_general: list | None = None):
    config = core.current_config()
    if forwarding is None and user.extension:
        settings = config.pbx.extensions.get(user.extension)
        forwarding = {k: getattr(settings, k) for k in FORWARD_FIELDS} if settings else \
            {"dnd": False, "forward_always": None, "forward_busy": None, "forward_no_answer": None,
             "no_answer_timeout": 20}
    failed = errors or general or forward_errors or forward_general or language_errors or language_general
    return render_template("account/index.html", user=user, errors=errors or {}, general=general or [],
                           mail_domain=config.system.mail_domain, forwarding=forwarding,
                           forward_errors=forward_errors or {}, forward_general=forward_general or [],
                           languages=language_choices(), language_errors=language_errors or {},
                           language_general=language_general or [],
                           softphone=setupsheet.softphone(user, config)), \
        (400 if failed else 200)


@bp.route("/forwarding", methods=["POST"])
@core.login_required
def forwarding():
    """The signed-in user's own call handling; never another extension's, never the permission class."""
    user = core.current_user()
    ext = user.extension
    if not ext:
        return _page(user, forward_general=[_("You have no extension, so there is no call forwarding to set.")])
    values = posted_call_handling()

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {}).update(
            {k: values[k] for k in FORWARD_FIELDS})

    errors, general = apply_call_handling(f"{user.login} changed their call forwarding", mutate,
                                          f"pbx.extensions.{ext}", dict.fromkeys(FORWARD_FIELDS[1:4], _(FORWARD_HINT)))
    if errors or general:
        return _page(user, forwarding=values, forward_errors=errors, forward_general=general)
    flash(_("Your call forwarding was saved."), "success")
    return redirect(url_for("account.index"))


@bp.route("/language", methods=["POST"])
@core.login_required
def language():
    """The signed-in user's own language (their pages, from the next one on)."""
    user = core.current_user()
    chosen = forms.text("language", 10)
    if chosen not in LANGUAGE_NAMES:
        return _page(user, language_errors={"language": _("choose a language from the list")})
    try:
        _update_own(user.login, f"{user.login} chose the language {chosen}", language=chosen)
    except (ConfigError, ApplyError) as err:
        return _page(user, language_general=[forms.general_error(err)])
    flash(_("Your language was saved."), "success")  # the next request is already in it
    return redirect(url_for("account.index"))


def _current_password_ok(user, password: str, general: list[str]) -> bool:
    try:
        return core.password_check(lambda: user.check_password(password))
    except Busy:
        general.append(_(core.BUSY_MESSAGE))
        return False


# -- My VPN: the signed-in user's own WireGuard devices and IKEv2 profiles (only with VPN access) --------
def _vpn_user():
    """The signed-in user when they may use the VPN; 403 otherwise."""
    user = core.current_user()
    if user is None or not (user.enabled and user.vpn_enabled):
        abort(403)
    return user


@bp.context_processor
def _my_vpn() -> dict:
    user = core.current_user()
    if user is None or not (user.enabled and user.vpn_enabled):
        return {"my_vpn": None}
    config = core.current_config()
    devices = [d for d in config.vpn.wireguard.devices if d.user == user.login]
    ikev2 = any(a.user == user.login for a in config.vpn.remote_access.accounts)
    return {"my_vpn": {"devices": devices, "wireguard_on": config.vpn.wireguard.enabled, "ikev2": ikev2,
                       "ikev2_on": config.vpn.remote_access.enabled}}


def _my_device(name: str):
    user = _vpn_user()
    config = core.current_config()
    device = next((d for d in config.vpn.wireguard.devices if (d.user, d.name) == (user.login, name)), None)
    if device is None:
        abort(404)
    return config, device


@bp.route("/vpn/devices/<name>/wireguard.conf")
@core.login_required
def vpn_device_file(name: str):
    return vpn.device_file_response(*_my_device(name))


@bp.route("/vpn/devices/<name>/qr.svg")
@core.login_required
def vpn_device_qr(name: str):
    return vpn.device_qr_response(*_my_device(name))


@bp.route("/vpn/ikev2/details.txt")
@core.login_required
def vpn_details():
    return vpn.details_response(core.current_config(), _vpn_user().login)


@bp.route("/vpn/ikev2/<kind>")
@core.login_required
def vpn_profile(kind: str):
    return vpn.profile_response(core.current_config(), _vpn_user().login, kind)


# -- My voicemail: the signed-in user's own box, always through the PBX's client (never its files) -------
FOLDER_NAMES = {"INBOX": N_("New"), "Old": N_("Heard"), "Saved": N_("Saved")}
GREETING_NAMES = {"unavailable": N_("Unavailable greeting"), "busy": N_("Busy greeting"),
                  "temporary": N_("Temporary greeting (replaces the others until removed or its end date)"),
                  "name": N_("Recorded name")}
EMAIL_MODES = [("off", N_("Off")), ("attach", N_("Mail each message with the recording attached")),
               ("notify", N_("Mail a notice only"))]
GREETING_SECONDS = 120.0


def _my_box():
    """(the PBX client, the signed-in user's extension); 404 for a user without one."""
    user = core.current_user()
    pbx = core.service("pbx")
    if user is None or not user.extension or pbx is None:
        abort(404)
    return pbx, user.extension


@bp.route("/voicemail")
@core.login_required
def voicemail():
    return _voicemail_page()


def _voicemail_page(errors: dict | None = None, values: dict | None = None, status: int = 200):
    """The own voicemail page; `errors`/`values` of a form that failed (shown in its summary, input kept)."""
    user = core.current_user()
    if not user.extension:
        return render_template("account/voicemail.html", box=None, ext=None,
                               general=[_("You have no extension, so you have no voicemail box.")])
    pbx, ext = _my_box()
    general, box = [], None
    try:
        box = pbx.voicemail_box(ext)
    except (ApplyError, ValueError) as err:
        general = [forms.general_error(err)]
    settings = core.current_config().pbx.extensions.get(ext)
    return render_template("account/voicemail.html", box=box, ext=ext, general=general, folders=FOLDER_NAMES,
                           greetings=GREETING_NAMES, email_modes=EMAIL_MODES, errors=errors or {},
                           values=values or {},
                           email_mode=settings.voicemail_email if settings else "off",
                           email_delete=settings.voicemail_email_delete if settings else False,
                           email_mp3=settings.voicemail_compressed if settings else False,
                           temporary_until=settings.voicemail_temporary_until if settings else None,
                           today=_box_today()), \
        (503 if general else status)


@bp.route("/voicemail/<ident>.wav")
@core.login_required
def voicemail_audio(ident: str):
    pbx, ext = _my_box()
    try:
        data = pbx.voicemail_audio(ext, ident)
    except (ApplyError, ValueError) as err:
        abort(503, description=str(err))
    if data is None:
        abort(404)
    download = request.args.get("download") == "1"
    return send_file(io.BytesIO(data), mimetype="audio/wav", as_attachment=download,
                     download_name=f"voicemail-{ident}.wav", max_age=0)


@bp.route("/voicemail/<ident>/<action>", methods=["POST"])
@core.login_required
def voicemail_act(ident: str, action: str):
    if action not in ("heard", "save", "delete"):
        abort(404)
    pbx, ext = _my_box()
    try:
        found = pbx.voicemail_act(ext, ident, action)
    except (ApplyError, ValueError) as err:
        abort(503, description=str(err))
    if not found:
        abort(404)
    flash({"heard": _("The message was marked as heard."), "save": _("The message was moved to Saved."),
           "delete": _("The message was deleted.")}[action], "success")
    return redirect(url_for("account.voicemail"))


@bp.route("/voicemail/greetings/<kind>", methods=["POST"])
@core.login_required
def voicemail_greeting(kind: str):
    if kind not in GREETING_NAMES:
        abort(404)
    pbx, ext = _my_box()
    upload = request.files.get("audio")
    if upload is None or not upload.filename:
        flash(_("Choose a WAV, MP3 or OGG file to upload."), "error")
        return redirect(url_for("account.voicemail"))
    try:
        with tempfile.TemporaryDirectory(prefix="greeting-") as tmp:
            src = Path(tmp) / "upload"
            upload.save(src)
            made = audio.convert(src, audio.sniff(src), Path(tmp) / "greeting", GREETING_SECONDS)
            pbx.voicemail_greeting_put(ext, kind, made[8000].read_bytes())
    except audio.AudioError as err:
        flash(_("The file was refused: %(reason)s.", reason=err), "error")
        return redirect(url_for("account.voicemail"))
    except (ApplyError, ValueError) as err:
        flash(forms.general_error(err), "error")
        return redirect(url_for("account.voicemail"))
    flash(_("Your greeting was saved: callers hear it from now on."), "success")
    return redirect(url_for("account.voicemail"))


@bp.route("/voicemail/greetings/<kind>/remove", methods=["POST"])
@core.login_required
def voicemail_greeting_remove(kind: str):
    if kind not in GREETING_NAMES:
        abort(404)
    pbx, ext = _my_box()
    try:
        pbx.voicemail_greeting_remove(ext, kind)
    except (ApplyError, ValueError) as err:
        abort(503, description=str(err))
    flash(_("The greeting was removed."), "success")
    return redirect(url_for("account.voicemail"))


@bp.route("/voicemail/email", methods=["POST"])
@core.login_required
def voicemail_email():
    pbx, ext = _my_box()
    mode = forms.text("voicemail_email", 10)
    if mode not in dict(EMAIL_MODES):
        abort(400)
    delete = forms.checkbox("voicemail_email_delete") and mode == "attach"
    mp3 = forms.checkbox("voicemail_compressed")

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {}).update(
            voicemail_email=mode, voicemail_email_delete=delete, voicemail_compressed=mp3)
    try:
        core.apply_change(f"{core.current_user().login} set their voicemail e-mail to {mode}", mutate)
    except (ConfigError, ApplyError) as err:
        flash(forms.general_error(err), "error")
    else:
        flash(_("Your voicemail e-mail setting was saved."), "success")
    return redirect(url_for("account.voicemail"))


def _box_today() -> datetime.date:
    """Today in the box's time zone (system.timezone): a temporary greeting's end date is a day there."""
    try:
        zone = ZoneInfo(core.current_config().system.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = datetime.UTC
    return datetime.datetime.now(zone).date()


@bp.route("/voicemail/temporary-until", methods=["POST"])
@core.login_required
def voicemail_temporary_until():
    """The last day callers hear the temporary greeting (empty: until it is removed)."""
    pbx, ext = _my_box()
    typed = forms.text("voicemail_temporary_until", 10)
    until = None
    if typed:
        today = _box_today()
        try:
            until = datetime.date.fromisoformat(typed)
        except ValueError:
            until = None
        if until is None or not today <= until <= today + datetime.timedelta(days=366):
            message = _("enter a day from today to a year ahead, as YYYY-MM-DD (e.g. %(day)s)",
                        day=(today + datetime.timedelta(days=7)).isoformat())
            return _voicemail_page({"voicemail_temporary_until": message}, {"voicemail_temporary_until": typed}, 400)

    def mutate(doc: dict) -> None:
        doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {})["voicemail_temporary_until"] = \
            until.isoformat() if until else None
    try:
        core.apply_change(f"{core.current_user().login} set their temporary greeting's end date to {until}", mutate)
    except (ConfigError, ApplyError) as err:
        flash(forms.general_error(err), "error")
    else:
        flash(_("The end date of your temporary greeting was saved."), "success")
    return redirect(url_for("account.voicemail"))
