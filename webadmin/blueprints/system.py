"""Backup download and restore, firmware update (signed bundles, install, roll back), restart."""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from appliance import backup, firmware
from webadmin import core, forms, progress
from webadmin.core import N_

bp = Blueprint("system", __name__, url_prefix="/system")
NAV = [(N_("System"), N_("Backup and firmware"), "system.index")]
core.LARGE_UPLOADS["system.firmware_install"] = firmware.MAX_BUNDLE
_INSTALLING = threading.Lock()  # one firmware install at a time
_RESTORING = threading.Lock()  # one restore staged at a time
core.LARGE_UPLOADS["system.restore"] = 8 * 1024 ** 3  # mailboxes make backups large


def _box() -> firmware.BoxFirmware:
    return firmware.BoxFirmware(core.runtime().ctx.data_dir)


def _page(general: list[str] | None = None, status: int = 200, errors: dict[str, str] | None = None):
    box = _box()
    return render_template("system/index.html", running=box.running(), previous=box.slots.previous(),
                           system_updates=firmware.SystemUpdate().available(), general=general or [],
                           errors=errors or {}), status


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/backup", methods=["POST"])
@core.admin_required
def download_backup():
    ctx = core.runtime().ctx
    passphrase = request.form.get("passphrase", "")
    if passphrase and len(passphrase) < 8:
        return _page(status=400, errors={"passphrase": _(
            "The passphrase needs at least 8 characters (or leave it empty for no encryption).")})
    if passphrase != request.form.get("passphrase2", ""):
        return _page(status=400, errors={"passphrase2": _("The two passphrases differ.")})
    fd, path = tempfile.mkstemp(dir=ctx.data_dir, prefix=".download-")
    os.close(fd)
    try:
        manifest = backup.create_backup(ctx, core.runtime().engine, path, passphrase or None)
        handle = open(path, "rb")  # noqa: SIM115 - send_file closes it once sent
    except backup.BackupError as exc:
        return _page([str(exc)], 400)
    finally:
        os.unlink(path)  # the open handle keeps the data until it is sent
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(manifest["created"]))
    return send_file(handle, mimetype="application/gzip", as_attachment=True,
                     download_name=f"officebox-{manifest['hostname']}-{stamp}.obbackup")


@contextlib.contextmanager
def _saved_upload(upload, folder: Path):
    """The uploaded file saved in `folder` (on the same disk as where it goes), removed afterwards."""
    fd, path = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.save(out)
        yield Path(path)
    finally:
        os.unlink(path)


@bp.route("/firmware", methods=["POST"])
@core.admin_required
def firmware_install():
    upload = request.files.get("bundle")
    if upload is None or not upload.filename:
        return _page([_("Choose a firmware file (.obfw) to upload.")], 400)
    box = _box()
    if upload.filename.endswith(".raucb"):
        return _system_update(upload, box)
    fd, kept = tempfile.mkstemp(dir=box.slots.root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.save(out)
    except OSError as exc:
        os.unlink(kept)
        return _page([_("Firmware refused: %(exc)s", exc=exc)], 400)
    allow_downgrade = forms.checkbox("allow_downgrade")

    def install() -> dict:
        """Checked (signature, checksums, version) and written into the other slot, in the background."""
        try:
            with _INSTALLING:
                manifest = box.install(Path(kept), allow_downgrade=allow_downgrade)
        except firmware.FirmwareError as exc:
            raise progress.Failed(str(exc)) from exc
        finally:
            os.unlink(kept)
        return {"version": manifest["version"], "previous": box.slots.previous()}

    task = progress.tasks().start(core.current_user().login, "firmware", install)
    return redirect(url_for("system.task", task_id=task))


@bp.route("/tasks/<task_id>")
@core.admin_required
def task(task_id: str):
    """A firmware install in progress (the page reloads itself), then its result."""
    found = progress.tasks().get(task_id, core.current_user().login)
    if found is None:
        abort(404)
    running = found["state"] == "running"
    template, context = progress.TEMPLATES.get(found["kind"], ("system/task.html", None))
    return render_template(template, task=found, refresh=progress.REFRESH if running else None,
                           **(context(found) if context else {})), (400 if found["state"] == "failed" else 200)


progress.register("firmware", "system/task.html")
progress.register("system_update", "tasks/system_update.html")
progress.register("restore", "tasks/restore.html")
RESTART_DELAY = 2 * progress.REFRESH + 1  # seconds: the restore's page shows its result before the box stops


def restore_task(stage, source: str, **info) -> str:
    """Check and stage a backup (`stage()`, its manifest) in the background, then restart into it; the task's
    id. Also for the restore from a backup destination (blueprints/backups.py)."""
    rt = core.runtime()

    def work() -> dict:
        progress.step("fetch" if source == "destination" else "check")
        try:
            with _RESTORING:
                manifest = stage()
        except backup.BackupError as exc:
            raise progress.Failed(str(exc)) from exc
        progress.step("restart")
        rt.request_restart(RESTART_DELAY)
        return {"created": manifest["created"]}

    return progress.tasks().start(core.current_user().login, "restore", work, source=source, **info)


def _system_update(upload, box: firmware.BoxFirmware):
    """A whole-system update (.raucb, the OS image): RAUC checks it and writes the other root slot, in the
    background (the progress page follows it). Off the OS image it is refused at once."""
    system = firmware.SystemUpdate(firmware.RAUC_CONFIG)
    if not system.available():
        try:
            system.status()  # says why, in RAUC's words
        except firmware.FirmwareError as exc:
            return _page([_("System update refused, nothing was written: %(exc)s", exc=exc)], 400)
    fd, kept = tempfile.mkstemp(dir=box.slots.root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.save(out)
    except OSError as exc:
        os.unlink(kept)
        return _page([_("System update refused, nothing was written: %(exc)s", exc=exc)], 400)

    def work() -> dict:
        try:
            with _INSTALLING:
                progress.step("verify")
                info = system.verify(Path(kept))
                progress.step("install")
                system.install(Path(kept))
        except firmware.FirmwareError as exc:
            raise progress.Failed(str(exc)) from exc
        finally:
            os.unlink(kept)
        return {"version": info["version"]}

    task = progress.tasks().start(core.current_user().login, "system_update", work)
    return redirect(url_for("system.task", task_id=task))


@bp.route("/firmware/rollback", methods=["POST"])
@core.admin_required
def firmware_rollback():
    try:
        version = _box().slots.rollback()
    except firmware.FirmwareError as exc:
        return _page([str(exc)], 400)
    flash(_("Firmware %(version)s is active again. Restart the box to run it.", version=version), "success")
    return redirect(url_for("system.index"))


def _restarting(message: str):
    core.runtime().request_restart()
    return render_template("system/restarting.html", message=message)


@bp.route("/restart", methods=["POST"])
@core.admin_required
def restart():
    return _restarting(_("The box is restarting."))


@bp.route("/restore", methods=["POST"])
@core.admin_required
def restore():
    upload = request.files.get("backup")
    if upload is None or not upload.filename:
        return _page([_("Choose a backup file (.obbackup) to upload.")], 400)
    rt = core.runtime()
    fd, kept = tempfile.mkstemp(dir=rt.ctx.data_dir, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.save(out)
    except OSError as exc:
        os.unlink(kept)
        return _page([_("Backup refused, nothing was changed: %(exc)s", exc=exc)], 400)
    passphrase = request.form.get("passphrase") or None

    def stage() -> dict:
        """Checked (archive, passphrase, its configuration against this firmware) and staged for the restart."""
        try:
            return backup.stage_restore(rt.ctx, rt.engine, Path(kept), passphrase)
        finally:
            os.unlink(kept)

    return redirect(url_for("system.task", task_id=restore_task(stage, "upload", name=upload.filename)))
