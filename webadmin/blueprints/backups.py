"""Scheduled backups (appliance/backupjobs.py): the schedule, the destination (a folder such as a USB
disk's, an SFTP server whose host key the admin fetches and compares, or an SMB share on a NAS), the last
run's outcome, "back up now" and "test the destination" buttons, and the backups at the destination, each
restorable.

The passphrase and the SMB password are never shown back: an empty field keeps the current one. A backup made now
runs in a background thread (the page tells it is running); a restore fetches the backup, checks it and
restarts the box into it in the background too, like an uploaded one (blueprints/system.py restore_task).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance import backup, schema
from appliance.apply import ConfigError
from appliance.backupjobs import NAME, SMB_PORT, DestinationError, fetch_host_key, fingerprint
from webadmin import core, forms
from webadmin import progress as long_actions
from webadmin.blueprints.system import restore_task
from webadmin.core import N_
from webadmin.i18n import format_when

bp = Blueprint("backups", __name__, url_prefix="/backups")
NAV = [(N_("System"), N_("Backups"), "backups.index")]
DEST_FIELDS = ("directory", "host", "user", "path", "host_key", "share", "domain")
FIELDS = {f"backups.destination.{name}": name for name in (*DEST_FIELDS, "port", "smb_port", "kind")}
FIELDS["backups.destination.password_secret"] = "smb_password"
HINTS = {  # the expected format, for what the schema's patterns refuse
    "share": N_("the share's name as the NAS shows it: letters, digits, spaces, . _ - $, like Backups"),
    "smb_password": N_("the password cannot hold a line break"),
    "user": N_("a user name of letters, digits, . _ -, like backup"),
}
START_WAIT = 10  # seconds the page waits for the backup asked for to start
WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"),
            N_("Sunday"))


def _jobs():
    return core.runtime().backups


def _values() -> dict:
    settings = core.current_config().backups
    dest = settings.destination
    return {"enabled": settings.enabled, "frequency": settings.frequency, "weekday": str(settings.weekday),
            "hour": str(settings.hour), "keep": str(settings.keep), "kind": dest.kind,
            "directory": dest.directory, "host": dest.host, "port": str(dest.port), "smb_port": str(dest.smb_port),
            "user": dest.user,
            "path": dest.path, "host_key": dest.host_key, "share": dest.share, "domain": dest.domain,
            "passphrase_set": bool(settings.passphrase), "smb_password_set": bool(dest.password_secret)}


def _posted() -> dict:
    values = {name: forms.text(name, 2000 if name == "host_key" else 200)
              for name in ("frequency", "weekday", "hour", "keep", "kind", "port", "smb_port", *DEST_FIELDS)}
    values["smb_port"] = values["smb_port"] or str(SMB_PORT)  # left empty (or a form from before the field)
    values["enabled"] = forms.checkbox("enabled")
    settings = core.current_config().backups
    values["passphrase_set"] = bool(settings.passphrase)
    values["smb_password_set"] = bool(settings.destination.password_secret)
    return values


def _numbers(values: dict, errors: dict) -> dict:
    """The posted numbers; a bad one is a field error and the saved value stands in for it, so that the rest
    of the form is still checked (every error at once)."""
    settings = core.current_config().backups
    saved = {"weekday": settings.weekday, "hour": settings.hour, "keep": settings.keep,
             "port": settings.destination.port, "smb_port": settings.destination.smb_port}
    out = {}
    for name, low, high in (("weekday", 0, 6), ("hour", 0, 23), ("keep", 1, 100), ("port", 1, 65535),
                            ("smb_port", 1, 65535)):
        try:
            out[name] = int(values[name])
            if not low <= out[name] <= high:
                raise ValueError
        except ValueError:
            errors[name] = _("a whole number from %(low)d to %(high)d", low=low, high=high)
            out[name] = saved[name]
    return out


def _friendly(errors: dict[str, str]) -> dict[str, str]:
    return {name: _(HINTS[name]) if name in HINTS and text.startswith("String should match pattern") else text
            for name, text in errors.items()}


def _checked(mutate, errors: dict[str, str]) -> tuple[dict[str, str], list]:
    """The form's own errors with those the configuration would give too, nothing saved."""
    document = schema.to_document(core.current_config())
    mutate(document)
    try:
        core.runtime().engine.validate(document)
    except ConfigError as err:
        more, general = forms.form_errors(err, prefix="backups", fields=FIELDS)
        return {**_friendly(more), **errors}, general
    return errors, []


def _page(values: dict, errors: dict | None = None, general: list | None = None, status: int = 200):
    jobs = _jobs()
    listing, listing_error = [], None
    settings = core.current_config().backups
    if settings.enabled and request.method == "GET":
        try:
            listing = jobs.listing()
        except (DestinationError, OSError) as exc:
            listing_error = str(exc)
    key_print = None
    if values.get("host_key"):
        try:
            key_print = fingerprint(values["host_key"])
        except DestinationError:
            key_print = None
    public_key = jobs.public_key() if values.get("kind") == "sftp" else None
    errors, general = errors or {}, general or []
    return render_template("backups/index.html", values=values, errors=errors, general=general,
                           state=jobs.status(), listing=listing, listing_error=listing_error,
                           key_print=key_print, public_key=public_key, weekdays=WEEKDAYS,
                           stamp=_stamp), (400 if errors or general else status)


def _stamp(when) -> str:
    return format_when(float(when)) if when else ""  # the user's locale, the box's time zone


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def index():
    if request.method == "GET":
        return _page(_values())
    values = _posted()
    errors: dict[str, str] = {}
    if request.form.get("action") == "fetch_key":
        try:
            values["host_key"] = fetch_host_key(values["host"], int(values["port"] or 22))
        except (DestinationError, ValueError) as exc:
            errors["host_key"] = str(exc)
        return _page(values, errors)
    numbers = _numbers(values, errors)
    passphrase = request.form.get("passphrase", "")
    if passphrase and passphrase != request.form.get("passphrase2", ""):
        errors["passphrase"] = _("The two passphrases differ.")
    smb_password = request.form.get("smb_password", "")

    def mutate(doc: dict) -> None:
        section = doc.setdefault("backups", {})
        section.update(enabled=values["enabled"], frequency=values["frequency"], weekday=numbers["weekday"],
                       hour=numbers["hour"], keep=numbers["keep"])
        if passphrase:
            section["passphrase"] = passphrase
        kept = section.get("destination", {}).get("password_secret", "")
        section["destination"] = {"kind": values["kind"], "port": numbers["port"], "smb_port": numbers["smb_port"],
                                  "password_secret": (smb_password or kept) if values["kind"] == "smb" else "",
                                  **{name: values[name] for name in DEST_FIELDS}}

    if errors:
        return _page(values, *_checked(mutate, errors))
    errors, general = forms.apply_form("scheduled backups", mutate, prefix="backups", fields=FIELDS)
    errors = _friendly(errors)
    if errors or general:
        return _page(values, errors, general)
    flash(_("Backup settings saved."), "success")
    return redirect(url_for("backups.index"))


@bp.route("/run", methods=["POST"])
@core.admin_required
def run_now():
    if not core.current_config().backups.enabled:
        flash(_("Set up and switch on scheduled backups first."), "error")
    elif _jobs().status()["running"]:
        flash(_("A backup is being made already."), "warning")
        return redirect(url_for("backups.progress", since="0"))  # follow that one
    else:
        since = time.time()
        threading.Thread(target=_jobs().run, name="backup-now", daemon=True).start()
        return redirect(url_for("backups.progress", since=f"{since:.3f}"))
    return redirect(url_for("backups.index"))


@bp.route("/running")
@core.admin_required
def progress():
    """The backup asked for at `since`: a page that reloads itself while it is made, then its outcome."""
    try:
        since = float(request.args.get("since", "0"))
    except ValueError:
        since = 0.0
    state = _jobs().status()
    attempt = float(state.get("last_attempt") or 0)
    waiting = state["running"] or (attempt < since and time.time() - since < START_WAIT)
    if waiting:
        outcome = "running"
    elif attempt < since:
        outcome = "none"  # another one was being made, or it never started
    elif state.get("last_error") and float(state.get("last_error_time") or 0) >= attempt:
        outcome = "failed"
    else:
        outcome = "done"
    return render_template("backups/running.html", state=state, outcome=outcome, stamp=_stamp,
                           refresh=long_actions.REFRESH if waiting else None)


@bp.route("/test", methods=["POST"])
@core.admin_required
def check():
    if not core.current_config().backups.enabled:
        flash(_("Set up and switch on scheduled backups first."), "error")
        return redirect(url_for("backups.index"))
    try:
        found = _jobs().check()
    except (DestinationError, OSError, subprocess.SubprocessError) as exc:
        return _page(_values(), general=[_("The destination test failed: %(exc)s", exc=exc)])
    flash(_("The destination works: the box signed in, wrote and removed a test file, and found %(num)d of its "
            "backups there.", num=found), "success")
    return redirect(url_for("backups.index"))


@bp.route("/restore/<name>")
@core.admin_required
def restore_confirm(name: str):
    """Asked once: what a restore of `name` replaces, and its button."""
    if not NAME.match(name):
        abort(404)
    return render_template("backups/restore.html", name=name)


@bp.route("/restore", methods=["POST"])
@core.admin_required
def restore():
    """Fetched, checked and staged in the background (the progress page follows it), then the box restarts."""
    name = request.form.get("name", "")
    if not NAME.match(name):
        return _page(_values(), general=[_("Backup refused, nothing was changed: %(exc)s",
                                           exc=_("not one of the box's backups"))])
    jobs, rt = _jobs(), core.runtime()

    def stage() -> dict:
        """As jobs.stage, in two steps: fetched from the destination, then checked and staged."""
        fd, tmp = tempfile.mkstemp(dir=rt.ctx.data_dir, prefix=".fetched-")
        os.close(fd)
        try:
            try:
                jobs.destination().get(name, Path(tmp))
            except DestinationError as exc:
                raise long_actions.Failed(str(exc)) from exc
            long_actions.step("check")
            return backup.stage_restore(rt.ctx, rt.engine, Path(tmp), jobs.config().backups.passphrase or None)
        finally:
            Path(tmp).unlink(missing_ok=True)

    return redirect(url_for("system.task", task_id=restore_task(stage, "destination", name=name)))
