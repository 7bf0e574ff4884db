"""Time server page: switch the box's NTP service on or off and choose its upstream sources."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("ntp", __name__, url_prefix="/ntp")
NAV = [(N_("Network"), N_("Time server"), "ntp.index")]


def _hosts(field: str) -> list[str]:
    return [item.strip() for item in forms.text(field, 2000).replace("\n", ",").split(",") if item.strip()]


def _page(errors=None, general=None, form=None, code=200):
    config = core.current_config()
    status = core.runtime().status().get("ntp")
    return render_template("ntp/index.html", config=config, ntp=config.ntp, status=status, errors=errors or {},
                           general=general or [], form=form or {}), code


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/", methods=["POST"])
@core.admin_required
def save():
    form = {"pools": forms.text("pools", 2000), "servers": forms.text("servers", 2000),
            "enabled": forms.checkbox("enabled")}
    pools, servers, enabled = _hosts("pools"), _hosts("servers"), forms.checkbox("enabled")

    def mutate(doc: dict) -> None:
        doc["ntp"].update(enabled=enabled, pools=pools, servers=servers)

    errors, general = forms.apply_form("time server settings", mutate, prefix="ntp", top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Time server settings saved."), "success")
    return redirect(url_for("ntp.index"))
