"""Configuration history: every revision with its diff, and one-click rollback (applied in the background,
followed on the progress page of webadmin/progress.py)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.apply import ChangedMeanwhile, ConfigError
from appliance.service import ApplyError
from webadmin import core, forms, progress
from webadmin.core import N_

bp = Blueprint("history", __name__, url_prefix="/history")
NAV = [(N_("System"), N_("Configuration history"), "history.index")]
PAGE_SIZE = 25
STATE_BADGES = {"applied": "badge-ok", "failed": "badge-bad", "pending": "badge-warn"}
STATE_WORDS = (N_("applied"), N_("failed"), N_("pending"))  # shown translated


@bp.route("/")
@core.admin_required
def index():
    page = max(1, min(request.args.get("page", 1, type=int), 100000))
    store = core.runtime().store
    revisions = store.history(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template("history/index.html", revisions=revisions[:PAGE_SIZE], page=page,
                           more=len(revisions) > PAGE_SIZE, current_id=store.current_id(), badges=STATE_BADGES)


@bp.route("/<int:rev_id>")
@core.admin_required
def detail(rev_id: int):
    store = core.runtime().store
    revision = store.revision(rev_id)
    if revision is None:
        abort(404)
    current_id = store.current_id()
    return render_template("history/detail.html", rev=revision, current_id=current_id, badges=STATE_BADGES,
                           can_roll_back=revision.state == "applied" and revision.id != current_id,
                           diff_lines=[(forms.diff_line_class(line), line) for line in revision.diff.splitlines()])


@bp.route("/<int:rev_id>/rollback", methods=["POST"])
@core.admin_required
def rollback(rev_id: int):
    store = core.runtime().store
    target = store.revision(rev_id)
    if target is None:
        abort(404)
    if target.state != "applied":
        flash(_("Revision #%(rev_id)s was never applied; it cannot be restored.", rev_id=rev_id), "error")
        return redirect(url_for("history.detail", rev_id=rev_id))
    before = store.current_id()
    shown = request.form.get(core.BASE_FIELD, "")
    if shown.isdigit() and int(shown) != before:  # decided on an old page: refused at once (the engine checks too)
        current = store.current()
        flash(_("Nothing was rolled back: the configuration was changed meanwhile (revision #%(id)s by %(author)s). "
                "Review that change, then roll back again if still wanted.", id=current.id, author=current.author),
              "error")
        return redirect(url_for("history.detail", rev_id=current.id))
    engine, login = core.runtime().engine, core.current_user().login

    def work() -> dict:
        """The rollback applied in the background (services restart with the older settings)."""
        progress.step("apply")
        try:
            new = engine.rollback(rev_id, login, **({"base": int(shown)} if shown.isdigit() else {}))
        except ChangedMeanwhile as err:
            raise progress.Failed(f"the configuration was changed meanwhile (revision #{err.current.id})",
                                  "changed", id=err.current.id, author=err.current.author) from err
        except ConfigError as err:
            raise progress.Failed(str(err), "invalid") from err
        except ApplyError as err:
            raise progress.Failed(str(err), "apply") from err
        return {"new": new.id, "unchanged": new.id == before}

    task = progress.tasks().start(login, "rollback", work, rev_id=rev_id)
    return redirect(url_for("system.task", task_id=task))


progress.register("rollback", "tasks/rollback.html")
