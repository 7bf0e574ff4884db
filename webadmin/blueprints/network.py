"""Interfaces page: live status (the network process's, through clients.NetworkClient.state) and the LAN,
voice VLAN, WAN and static routes settings (the `network` section of the configuration)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.network import NetworkError
from appliance.service import ApplyError
from webadmin import core, forms
from webadmin.blueprints.firewall import shown, split_list
from webadmin.core import N_

bp = Blueprint("network", __name__, url_prefix="/network")
NAV = [(N_("Internet"), N_("Interfaces"), "network.index")]
FIELDS = {"network.lan.interface": "lan_interface", "network.lan.address": "lan_address",
          "network.voice.vlan_id": "vlan_id", "network.voice.address": "voice_address",
          "network.wan.interface": "wan_interface", "network.wan.mode": "wan_mode",
          "network.wan.address": "wan_address", "network.wan.gateway": "wan_gateway", "network.wan.dns": "wan_dns",
          "network.wan.pppoe_user": "wan_pppoe_user", "network.wan.pppoe_password": "wan_pppoe_password",
          "network.wan.pppoe_service": "wan_pppoe_service", "network.wan.mtu": "wan_mtu",
          "network.wan": "wan_gateway"}


def _status() -> tuple[dict | None, str]:
    try:
        return core.runtime().client("network").state(), ""
    except (NetworkError, OSError, ApplyError) as exc:
        return None, f"status unavailable: {exc}"


def _page(errors=None, general=None, form=None, status=200):
    errors, general = shown(errors or {}, general or [], set(FIELDS.values()) | {"destination", "gateway"})
    config = core.current_config()
    live, problem = _status()
    return render_template("network/index.html", config=config, net=config.network, live=live, problem=problem,
                           errors=errors or {}, general=general or [], form=form or {}), status


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/settings", methods=["POST"])
@core.admin_required
def settings():
    form = {k: forms.text(k, 300) for k in ("lan_interface", "lan_address", "vlan_id", "voice_address",
                                            "wan_interface", "wan_mode", "wan_address", "wan_gateway", "wan_dns",
                                            "wan_pppoe_user", "wan_pppoe_service", "wan_mtu")}
    pppoe_password = (request.form.get("wan_pppoe_password") or "")[:200]  # never shown again
    try:
        vlan_id = int(form["vlan_id"] or 0)
    except ValueError:
        return _page({"vlan_id": "enter a number from 1 to 4094"}, form=form, status=400)
    try:
        mtu = int(form["wan_mtu"] or 1492)
    except ValueError:
        return _page({"wan_mtu": _("enter a number from 576 to 1500")}, form=form, status=400)

    def mutate(doc: dict) -> None:
        net = doc["network"]
        net["lan"] = {"interface": form["lan_interface"], "address": form["lan_address"]}
        net["voice"] = {"enabled": forms.checkbox("voice_enabled"), "vlan_id": vlan_id,
                        "address": form["voice_address"]}
        static = form["wan_mode"] == "static"
        before = net.get("wan", {})
        net["wan"] = {"interface": form["wan_interface"], "mode": form["wan_mode"],
                      "address": form["wan_address"] or None if static else None,
                      "gateway": form["wan_gateway"] or None if static else None,
                      "dns": split_list(form["wan_dns"]),
                      # PPPoE: an empty password field keeps the stored one (it is never sent to the page)
                      "pppoe_user": form["wan_pppoe_user"], "pppoe_service": form["wan_pppoe_service"],
                      "pppoe_password": pppoe_password or before.get("pppoe_password", ""),
                      "pppoe_ac_name": before.get("pppoe_ac_name", ""), "mtu": mtu}

    errors, general = forms.apply_form("interface settings", mutate, fields=FIELDS, top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Interface settings saved."), "success")
    return redirect(url_for("network.index"))


@bp.route("/routes", methods=["POST"])
@core.admin_required
def route_add():
    form = {"destination": forms.text("destination", 50), "gateway": forms.text("gateway", 50)}
    index = len(core.current_config().network.routes)

    def mutate(doc: dict) -> None:
        doc["network"]["routes"].append(dict(form))

    errors, general = forms.apply_form(f"add route to {form['destination']}", mutate, f"network.routes.{index}", {},
                                       top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Route added."), "success")
    return redirect(url_for("network.index"))


@bp.route("/routes/<int:index>/delete", methods=["POST"])
@core.admin_required
def route_delete(index: int):
    general = forms.remove_item("remove a route", "network", "routes", index, N_("route"))
    if general:
        return _page(general=general, status=400)
    flash(_("Route removed."), "success")
    return redirect(url_for("network.index"))
