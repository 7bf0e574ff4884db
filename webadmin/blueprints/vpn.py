"""VPN page: site-to-site tunnels (pre-shared key or certificates: the head office issues the branch's peer
bundle, the branch imports it) and WireGuard devices with their live state; downloads per device."""
from __future__ import annotations

import time

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.service import ApplyError
from services.vpn import pptp, profiles
from services.vpn.bundle import MAX_BYTES as BUNDLE_LIMIT
from services.vpn.bundle import BundleError
from services.vpn.bundle import parse as parse_bundle
from services.vpn.service import VpnService, client_rows, connected, device_rows, tunnel_rows
from services.vpn.strongswan import allowed_accounts
from services.vpn.wireguard import add_device, client_conf, qr_svg
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("vpn", __name__, url_prefix="/vpn")
NAV = [(N_("Network"), N_("VPN"), "vpn.index")]
AUTH = [("psk", N_("Pre-shared key")), ("certificate", N_("Certificates"))]
IKE_VERSIONS = [("2", N_("IKEv2")), ("1", N_("IKEv1 (legacy peers only)"))]


def _client():
    """The VPN's typed client (appliance.clients.VpnClient), whichever process runs it; None without one."""
    return core.runtime().client("vpn")


def _running_client():
    """The VPN's client for an action that needs the service: ApplyError without one."""
    vpn = _client()
    if vpn is None:
        raise ApplyError(_("The VPN service is not running: switch it on first."))
    return vpn


def _ca_pem(vpn) -> str:
    try:
        return vpn.ca_pem() if vpn is not None else ""
    except ApplyError:
        return ""


def _list(field: str) -> list[str]:
    return [item.strip() for item in forms.text(field, 2000).replace("\n", ",").split(",") if item.strip()]


def _uploaded_bundle(errors: dict[str, str]) -> str:
    """The posted `peer_bundle` file's text, "" without one; errors["peer_bundle"] set when it is no bundle."""
    upload = request.files.get("peer_bundle")
    if upload is None or not upload.filename:
        return ""
    data = upload.read(BUNDLE_LIMIT + 1)
    if len(data) > BUNDLE_LIMIT:
        errors["peer_bundle"] = _("This file is larger than 64 KiB: it is not a peer bundle.")
        return ""
    try:
        text = data.decode("utf-8")
        parse_bundle(text)
    except UnicodeDecodeError:
        errors["peer_bundle"] = _("This file is not text: choose the .pem peer bundle the head office issued.")
        return ""
    except BundleError as exc:
        errors["peer_bundle"] = _("This is not a usable peer bundle: %(reason)s.", reason=exc)
        return ""
    return text


def _page(errors=None, general=None, form=None, code=200):
    config = core.current_config()
    vpn = _client()
    live = {"sas": [], "sas_at": 0.0, "peers": {}, "issued": {}, "pptp": [], "pptp_at": 0.0}
    if vpn is not None:
        try:
            live = vpn.live()
        except ApplyError as exc:
            flash(str(exc), "error")
    tunnels, devices = tunnel_rows(config, live["sas"]), device_rows(config, live["peers"])
    clients, peers = client_rows(live["sas"], live["sas_at"]), connected(devices)
    pptp_clients = pptp.rows(live["pptp"], live["pptp_at"])
    status = core.runtime().status().get("vpn")
    user_options = [(u.login, f"{u.login} ({u.full_name})") for u in sorted(config.users, key=lambda u: u.login)
                    if u.vpn_enabled and u.enabled]
    return render_template("vpn/index.html", config=config, vpn=config.vpn, status=status, tunnels=tunnels, auth=AUTH,
                           ike_versions=IKE_VERSIONS,
                           devices=devices, user_options=user_options, clients=clients, peers=peers, now=time.time(),
                           issued=live["issued"], pptp_clients=pptp_clients,
                           pptp_users=[a.user for a in allowed_accounts(config)],
                           ca_ready=bool(_ca_pem(vpn)), errors=errors or {}, general=general or [],
                           form=form or {}), code


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/settings", methods=["POST"])
@core.admin_required
def settings():
    form = {k: forms.text(k, 300) for k in ("port", "pool", "endpoint", "ra_pool", "ra_server_name")}
    enabled, wg_enabled = forms.checkbox("enabled"), forms.checkbox("wg_enabled")
    ra_enabled = forms.checkbox("ra_enabled")

    def mutate(doc: dict) -> None:
        vpn = doc.setdefault("vpn", {})
        vpn["enabled"] = enabled
        vpn.setdefault("wireguard", {}).update(enabled=wg_enabled, port=form["port"] or 51820,
                                               pool=form["pool"] or "10.8.0.0/24", endpoint=form["endpoint"])
        vpn.setdefault("remote_access", {}).update(enabled=ra_enabled, pool=form["ra_pool"] or "10.9.0.0/24",
                                                   server_name=form["ra_server_name"])

    errors, general = forms.apply_form("VPN settings", mutate, prefix="vpn.wireguard", top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("VPN settings saved."), "success")
    return redirect(url_for("vpn.index"))


@bp.route("/pptp", methods=["POST"])
@core.admin_required
def pptp_settings():
    """Legacy PPTP on or off and its pool (the page says why it is insecure); switching it on also switches
    the VPN service on."""
    form = {"pptp_pool": forms.text("pptp_pool", 40)}
    enabled = forms.checkbox("pptp_enabled")

    def mutate(doc: dict) -> None:
        vpn = doc.setdefault("vpn", {})
        if enabled:
            vpn["enabled"] = True
        vpn.setdefault("pptp", {}).update(enabled=enabled, pool=form["pptp_pool"] or "10.10.0.0/24")

    errors, general = forms.apply_form("PPTP settings", mutate, prefix="vpn.pptp",
                                       fields={"vpn.pptp.pool": "pptp_pool"}, top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Legacy PPTP is on: it is not secure, prefer WireGuard or IKEv2.") if enabled
          else _("Legacy PPTP is off."), "success")
    return redirect(url_for("vpn.index"))


@bp.route("/tunnels", methods=["POST"])
@core.admin_required
def add_tunnel():
    form = {k: forms.text(k, 2000) for k in ("name", "peer", "local_subnets", "remote_subnets", "dpd_delay", "auth",
                                             "allowed_services", "ike_version")}
    auth = "certificate" if form["auth"] == "certificate" else "psk"
    errors: dict[str, str] = {}
    peer_bundle = _uploaded_bundle(errors)
    if peer_bundle and auth == "psk":
        errors["peer_bundle"] = _("A peer bundle is for a tunnel with certificates: choose Certificates or no file.")
    if errors:  # nothing is saved with a wrong file (without it, the tunnel would be the head office's side)
        return _page(errors, [], form, 400)
    tunnel = {"name": form["name"].lower(), "peer": form["peer"], "local_subnets": _list("local_subnets"),
              "remote_subnets": _list("remote_subnets"), "auth": auth,
              "psk": forms.text("psk", 200) if auth == "psk" else "", "peer_bundle_secret": peer_bundle,
              "dpd_delay": form["dpd_delay"] or 30, "allowed_services": _list("allowed_services"),
              "ike_version": 1 if form["ike_version"] == "1" else 2}
    index = len(core.current_config().vpn.tunnels)

    def mutate(doc: dict) -> None:
        doc.setdefault("vpn", {}).setdefault("tunnels", []).append(tunnel)

    errors, general = forms.apply_form(f"add VPN tunnel {tunnel['name']}", mutate, prefix=f"vpn.tunnels.{index}",
                                       top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    if auth == "certificate" and not peer_bundle:
        flash(_("Tunnel %(name)s was added: once the VPN runs, issue the branch's bundle in the table.",
                name=tunnel["name"]), "success")
    else:
        flash(_("Tunnel %(name)s was added.", name=tunnel['name']), "success")
    return redirect(url_for("vpn.index"))


@bp.route("/tunnels/<name>/bundle", methods=["POST"])
@core.secret
@core.admin_required
def tunnel_bundle(name: str):
    """A new peer bundle for the branch of the head office's certificate tunnel `name` (a new key each time)."""
    try:
        vpn = _running_client()
        text = vpn.issue_bundle(name)
    except ApplyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("vpn.index"))
    return Response(text, mimetype="application/x-pem-file", headers={  # the service refuses unknown names
        "Content-Disposition": f'attachment; filename="{name}-peer-bundle.pem"', "Cache-Control": "no-store"})


@bp.route("/tunnels/<name>/revoke", methods=["POST"])
@core.admin_required
def revoke_peer(name: str):
    """Revoke every certificate this box issued to the branch of `name`: its tunnel falls and stays down until
    the branch imports a new bundle."""
    try:
        vpn = _running_client()
        serials = vpn.revoke_peer(name)
    except ApplyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("vpn.index"))
    flash(_("%(count)s certificate(s) of tunnel %(name)s revoked: issue a new bundle to let the branch in again.",
            count=len(serials), name=name), "success")
    return redirect(url_for("vpn.index"))


def _certificate_tunnel(name: str) -> int:
    """The index of the certificate tunnel `name` in the running configuration; 404 without one."""
    tunnels = core.current_config().vpn.tunnels
    index = next((i for i, t in enumerate(tunnels) if t.name == name and t.auth == "certificate"), None)
    if index is None:
        abort(404)
    return index


@bp.route("/tunnels/<name>/import", methods=["GET", "POST"])
@core.admin_required
def import_bundle(name: str):
    """Replace the peer bundle of the branch's certificate tunnel `name` (a renewal); the stored one is never shown."""
    index = _certificate_tunnel(name)
    tunnel = core.current_config().vpn.tunnels[index]
    if request.method == "GET":
        return render_template("vpn/import.html", tunnel=tunnel, errors={}, general=[])
    errors: dict[str, str] = {}
    text = _uploaded_bundle(errors)
    if not text and not errors:
        errors["peer_bundle"] = _("Choose the peer bundle file the head office issued.")
    general: list[str] = []
    if not errors:
        def mutate(doc: dict) -> None:
            next(t for t in doc["vpn"]["tunnels"] if t["name"] == name)["peer_bundle_secret"] = text

        errors, general = forms.apply_form(f"import the peer bundle of VPN tunnel {name}", mutate,
                                           prefix=f"vpn.tunnels.{index}", top=True)
    if errors or general:
        return render_template("vpn/import.html", tunnel=tunnel, errors=errors, general=general), 400
    flash(_("The peer bundle of tunnel %(name)s was replaced.", name=name), "success")
    return redirect(url_for("vpn.index"))


@bp.route("/tunnels/<name>/delete", methods=["POST"])
@core.admin_required
def delete_tunnel(name: str):
    def mutate(doc: dict) -> None:
        doc["vpn"]["tunnels"] = [t for t in doc["vpn"].get("tunnels", []) if t["name"] != name]

    _unused, general = forms.apply_form(f"delete VPN tunnel {name}", mutate)
    for message in general:
        flash(message, "error")
    return redirect(url_for("vpn.index"))


@bp.route("/devices", methods=["POST"])
@core.admin_required
def add():
    login, name = forms.text("user", 64), forms.text("name", 40).lower()
    form = {"user": login, "name": name}

    def mutate(doc: dict) -> None:
        try:
            add_device(doc.setdefault("vpn", {}), login, name)
        except ValueError as exc:
            raise ConfigError({"": str(exc)}) from None

    errors, general = forms.apply_form(f"add WireGuard device {login}/{name}", mutate, top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Device %(name)s of %(login)s was added: download its file or show its QR code.", name=name, login=login),
          "success")
    return redirect(url_for("vpn.index"))


@bp.route("/accounts", methods=["POST"])
@core.admin_required
def add_account():
    login = forms.text("user", 64)

    def mutate(doc: dict) -> None:
        accounts = doc.setdefault("vpn", {}).setdefault("remote_access", {}).setdefault("accounts", [])
        if any(a["user"] == login for a in accounts):
            raise ConfigError({"": _("%(login)s already has an IKEv2 account", login=login)})
        accounts.append({"user": login})  # the box makes the secret

    errors, general = forms.apply_form(f"add IKEv2 account {login}", mutate, top=True)
    if errors or general:
        return _page(errors, general, {"user": login}, 400)
    flash(_("%(login)s has an IKEv2 account: download the sign-in details for them.", login=login), "success")
    return redirect(url_for("vpn.index"))


@bp.route("/accounts/<login>/delete", methods=["POST"])
@core.admin_required
def delete_account(login: str):
    def mutate(doc: dict) -> None:
        ra = doc["vpn"]["remote_access"]
        ra["accounts"] = [a for a in ra.get("accounts", []) if a["user"] != login]

    _unused, general = forms.apply_form(f"delete IKEv2 account {login}", mutate)
    for message in general:
        flash(message, "error")
    return redirect(url_for("vpn.index"))


def details_response(config, login: str) -> Response:
    """`login`'s IKEv2 sign-in details (server, user name, VPN password) as a download; 404 without an account."""
    account = next((a for a in config.vpn.remote_access.accounts if a.user == login), None)
    if account is None:
        abort(404)
    server = VpnService.server_id(config)
    text = (f"OfficeBox VPN (IKEv2) for {login}\n\nServer: {server}\nRemote ID: {server}\n"
            f"Authentication: username and password (EAP-MSCHAPv2)\nUsername: {login}\n"
            f"Password: {account.password_secret}\n\nThe profiles for Apple, Windows and Android devices "
            f"install the box's VPN certificate authority with the connection.\n")
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="officebox-vpn-{login}.txt"', "Cache-Control": "no-store"})


@bp.route("/accounts/<login>/details.txt")
@core.secret
@core.admin_required
def account_details(login: str):
    return details_response(core.current_config(), login)


@bp.route("/clients/<unique_id>/disconnect", methods=["POST"])
@core.admin_required
def disconnect(unique_id: str):
    """End a connected IKEv2 client's IKE SA (it may connect again: to bar a user, take their VPN right)."""
    vpn = _client()
    try:
        user = vpn.disconnect(unique_id) if vpn is not None and unique_id.isdigit() else ""
    except ApplyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("vpn.index"))
    if user:
        flash(_("%(user)s was disconnected.", user=user), "success")
    else:
        flash(_("This client is no longer connected."), "error")
    return redirect(url_for("vpn.index"))


def profile_response(config, login: str, kind: str) -> Response:
    """`login`'s IKEv2 profile of one kind (profiles.KINDS) as a download; 404 without an account or CA."""
    vpn = _client()
    ca = _ca_pem(vpn)
    if kind not in profiles.KINDS or not ca:
        abort(404)
    profile = profiles.for_user(config, ca.encode(), VpnService.server_id(config), login)
    if profile is None:
        abort(404)
    make, mimetype, suffix = profiles.KINDS[kind]
    return Response(make(profile), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="officebox-vpn-{login}{suffix}"', "Cache-Control": "no-store"})


@bp.route("/accounts/<login>/profile/<kind>")
@core.secret
@core.admin_required
def account_profile(login: str, kind: str):
    return profile_response(core.current_config(), login, kind)


@bp.route("/ca.pem")
@core.admin_required
def ca():
    ca = _ca_pem(_client())
    if not ca:
        flash(_("The VPN certificate authority is made when IKEv2 remote access is switched on."), "error")
        return redirect(url_for("vpn.index"))
    return Response(ca, mimetype="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="officebox-vpn-ca.pem"'})


def _device(login: str, name: str):
    config = core.current_config()
    for device in config.vpn.wireguard.devices:
        if device.user == login and device.name == name:
            return config, device
    abort(404)


@bp.route("/devices/<login>/<name>/delete", methods=["POST"])
@core.admin_required
def delete_device(login: str, name: str):
    _device(login, name)

    def mutate(doc: dict) -> None:
        wg = doc["vpn"]["wireguard"]
        wg["devices"] = [d for d in wg["devices"] if (d["user"], d["name"]) != (login, name)]

    _unused, general = forms.apply_form(f"delete WireGuard device {login}/{name}", mutate)
    for message in general:
        flash(message, "error")
    return redirect(url_for("vpn.index"))


def device_file_response(config, device) -> Response:
    return Response(client_conf(config, device), mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="officebox-{device.user}-{device.name}.conf"',
        "Cache-Control": "no-store"})


def device_qr_response(config, device) -> Response:
    return Response(qr_svg(client_conf(config, device)), mimetype="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


@bp.route("/devices/<login>/<name>/wireguard.conf")
@core.secret
@core.admin_required
def download(login: str, name: str):
    return device_file_response(*_device(login, name))


@bp.route("/devices/<login>/<name>/qr.svg")
@core.secret
@core.admin_required
def qr(login: str, name: str):
    return device_qr_response(*_device(login, name))
