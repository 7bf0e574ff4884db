"""Configuration history: every revision with its diff, and one-click rollback."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.apply import ChangedMeanwhile, ConfigError
from appliance.service import ApplyError
from webadmin import core, forms
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
    try:
        new = core.runtime().engine.rollback(rev_id, core.current_user().login,
                                             **({"base": int(shown)} if shown.isdigit() else {}))
    except ChangedMeanwhile as err:
        flash(_("Nothing was rolled back: the configuration was changed meanwhile (revision #%(id)s by %(author)s). "
                "Review that change, then roll back again if still wanted.",
                id=err.current.id, author=err.current.author),
              "error")
        return redirect(url_for("history.detail", rev_id=err.current.id))
    except ConfigError as err:
        flash(_("Revision #%(rev_id)s is not valid any more: %(err)s", rev_id=rev_id, err=err), "error")
        return redirect(url_for("history.detail", rev_id=rev_id))
    except ApplyError as err:
        flash(_("Rolling back to revision #%(rev_id)s failed; nothing was changed. %(err)s", rev_id=rev_id, err=err),
              "error")
        return redirect(url_for("history.detail", rev_id=rev_id))
    if new.id == before:
        flash(_("Revision #%(rev_id)s is already the current configuration.", rev_id=rev_id), "info")
    else:
        flash(_("Rolled back to revision #%(rev_id)s: new revision #%(id)s is applied.", rev_id=rev_id, id=new.id),
              "success")
    return redirect(url_for("history.detail", rev_id=new.id))
