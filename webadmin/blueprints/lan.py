"""LAN pages: DHCP networks/pools/reservations, live leases ("make static"), DNS records and
upstream resolvers, phones with their provisioning status. Views only edit the configuration
document (apply_change) or call the services' public methods."""
from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from appliance.clients import ServiceRestarting
from appliance.users import new_secret
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("lan", __name__, url_prefix="/lan")
NAV = [(N_("Network"), N_("DHCP"), "lan.dhcp"), (N_("Network"), N_("Leases"), "lan.leases"),
       (N_("Network"), N_("DNS"), "lan.dns"),
       (N_("Network"), N_("Phones"), "lan.phones")]
MODELS = [("yealink", N_("Yealink T4x/T5x desk phone")), ("snom", N_("Snom D-series desk phone")),
          ("grandstream", N_("Grandstream GXP desk phone")), ("yealink-w70b", "Yealink W70B SIP-DECT base"),
          ("polycom", N_("Polycom VVX desk phone"))]
RECORD_TYPES = ["A", "AAAA", "CNAME", "MX", "TXT", "SRV"]
PROV_AUTH = [("none", N_("None (the DHCP lease binding protects the files)")),
             ("per-phone", N_("Per phone: digest, user = MAC digits, the phone's own password")),
             ("digest", N_("One shared account, digest")),
             ("basic", N_("One shared account, basic (readable on the LAN unless over HTTPS)"))]


def _service(name: str):
    return core.service(name)


def _section(name: str):
    return getattr(core.current_config(), name, None)


def _done(message: str, endpoint: str):
    flash(message, "success")
    return redirect(url_for(endpoint))


# -- DHCP ----------------------------------------------------------------------------------------------
def _dhcp_page(errors=None, general=None, form=None, status=200):
    config = core.current_config()
    return render_template("lan/dhcp.html", config=config, dhcp=config.dhcp, errors=errors or {},
                           general=general or [], form=form or {}), status


@bp.route("/dhcp")
@core.admin_required
def dhcp():
    return _dhcp_page()


@bp.route("/dhcp/settings", methods=["POST"])
@core.admin_required
def dhcp_settings():
    form = {"lease_time": forms.text("lease_time", 12), "provisioning_url": forms.text("provisioning_url", 200)}
    try:
        lease_time = int(form["lease_time"])
    except ValueError:
        return _dhcp_page({"lease_time": "enter a number of seconds"}, form=form, status=400)

    def mutate(doc: dict) -> None:
        doc["dhcp"].update(lease_time=lease_time, provisioning_url=form["provisioning_url"],
                           enabled=forms.checkbox("enabled"), conflict_probe=forms.checkbox("conflict_probe"))

    errors, general = forms.apply_form("DHCP settings", mutate, prefix="dhcp")
    if errors or general:
        return _dhcp_page(errors, general, form, 400)
    return _done(_("DHCP settings saved."), "lan.dhcp")


@bp.route("/dhcp/pools", methods=["POST"])
@core.admin_required
def pool_add():
    form = {"network": forms.text("network", 10) or "lan", "start": forms.text("start", 15),
            "end": forms.text("end", 15)}
    index = len(core.current_config().dhcp.pools)

    def mutate(doc: dict) -> None:
        doc["dhcp"]["pools"].append(dict(form))

    errors, general = forms.apply_form(f"add DHCP pool {form['start']}-{form['end']}", mutate,
                                       prefix=f"dhcp.pools.{index}", fields={f"dhcp.pools.{index}": "end"})
    if errors or general:
        return _dhcp_page(errors, general, form, 400)
    return _done(_("Pool added."), "lan.dhcp")


@bp.route("/dhcp/pools/<int:index>/delete", methods=["POST"])
@core.admin_required
def pool_delete(index: int):
    general = forms.remove_item("remove a DHCP pool", "dhcp", "pools", index, N_("pool"))
    if general:
        return _dhcp_page(general=general, status=400)
    return _done(_("Pool removed."), "lan.dhcp")


def add_reservation(mac: str, ip: str, hostname: str | None):
    index = len(core.current_config().dhcp.reservations)

    def mutate(doc: dict) -> None:
        doc["dhcp"]["reservations"].append({"mac": mac, "ip": ip, "hostname": hostname})

    return forms.apply_form(f"reserve {ip} for {mac}", mutate, prefix=f"dhcp.reservations.{index}",
                            fields={"dhcp.reservations": "mac"})


@bp.route("/dhcp/reservations", methods=["POST"])
@core.admin_required
def reservation_add():
    form = {"mac": forms.text("mac", 20), "ip": forms.text("ip", 15), "hostname": forms.optional("hostname", 63)}
    errors, general = add_reservation(form["mac"], form["ip"], form["hostname"])
    if errors or general:
        return _dhcp_page(errors, general, form, 400)
    return _done(_("%(ip)s is reserved for %(mac)s.", ip=form['ip'], mac=form['mac']), "lan.dhcp")


@bp.route("/dhcp/reservations/<mac>/delete", methods=["POST"])
@core.admin_required
def reservation_delete(mac: str):
    def mutate(doc: dict) -> None:
        doc["dhcp"]["reservations"] = [r for r in doc["dhcp"]["reservations"] if r["mac"] != mac]

    errors, general = forms.apply_form(f"remove the reservation of {mac}", mutate)
    if general:
        return _dhcp_page(general=general, status=400)
    return _done(_("Reservation removed."), "lan.dhcp")


# -- leases ------------------------------------------------------------------------------------------------
@bp.route("/leases")
@core.admin_required
def leases():
    svc = _service("dhcp")
    status = svc.status() if svc is not None else None
    running = status is not None and status.health not in ("down", "disabled")
    rows = svc.leases() if svc is not None else []
    reserved = {r.mac for r in core.current_config().dhcp.reservations}
    return render_template("lan/leases.html", leases=rows, running=running, reserved=reserved, status=status)


@bp.route("/leases/static", methods=["POST"])
@core.admin_required
def make_static():
    mac, ip = forms.text("mac", 20), forms.text("ip", 15)
    hostname = forms.optional("hostname", 63)
    errors, general = add_reservation(mac, ip, hostname)
    if errors or general:
        for message in list(errors.values()) + general:
            flash(message, "error")
        return redirect(url_for("lan.leases"))
    return _done(_("%(ip)s is now reserved for %(mac)s.", ip=ip, mac=mac), "lan.leases")


# -- DNS ---------------------------------------------------------------------------------------------------------
def _dns_page(errors=None, general=None, form=None, status=200):
    config = core.current_config()
    svc = _service("dns")
    return render_template("lan/dns.html", config=config, dns=config.dns, errors=errors or {}, general=general or [],
                           form=form or {}, type_options=[(t, t) for t in RECORD_TYPES],
                           status=svc.status() if svc is not None else None), status


@bp.route("/dns")
@core.admin_required
def dns():
    return _dns_page()


@bp.route("/dns/records", methods=["POST"])
@core.admin_required
def record_add():
    form = {"name": forms.text("name", 255).lower(), "type": forms.text("type", 8) or "A",
            "value": forms.text("value", 255), "ttl": forms.text("ttl", 8) or "300"}
    index = len(core.current_config().dns.records)

    def mutate(doc: dict) -> None:
        doc["dns"]["records"].append(dict(form))

    errors, general = forms.apply_form(f"add DNS record {form['name']} {form['type']}", mutate,
                                       prefix=f"dns.records.{index}", fields={f"dns.records.{index}": "value"})
    if errors or general:
        return _dns_page(errors, general, form, 400)
    return _done(_("Record %(name)s added.", name=form['name']), "lan.dns")


@bp.route("/dns/records/<int:index>/delete", methods=["POST"])
@core.admin_required
def record_delete(index: int):
    general = forms.remove_item("remove a DNS record", "dns", "records", index, N_("record"))
    if general:
        return _dns_page(general=general, status=400)
    return _done(_("Record removed."), "lan.dns")


@bp.route("/dns/upstreams", methods=["POST"])
@core.admin_required
def upstreams():
    raw = forms.text("upstreams", 500)
    items = [part for part in raw.replace(",", " ").split() if part]

    def mutate(doc: dict) -> None:
        doc["dns"]["upstreams"] = items

    errors, general = forms.apply_form("DNS upstream resolvers", mutate, prefix="dns.upstreams",
                                       fields={"dns.upstreams": "upstreams"})
    if errors or general:
        return _dns_page({"upstreams": next(iter(errors.values()))} if errors else {}, general, {"upstreams": raw},
                         400)
    return _done(_("Upstream resolvers saved."), "lan.dns")


@bp.route("/dns/flush", methods=["POST"])
@core.admin_required
def flush():
    svc = _service("dns")
    if svc is not None:
        try:
            svc.flush_cache()
        except ServiceRestarting:
            flash(_("The DNS service is restarting; try again in a moment."), "warning")
            return redirect(url_for("lan.dns"))
    return _done(_("The DNS cache was emptied."), "lan.dns")


# -- phones ------------------------------------------------------------------------------------------------------
def parse_handsets(text: str) -> list[dict]:
    """'1:alice, 2:bob' -> [{"number": 1, "user": "alice"}, ...]; ValueError with a message."""
    found = []
    for part in text.replace(",", " ").split():
        number, sep, login = part.partition(":")
        if not sep or not number.isdigit() or not login:
            raise ValueError(_("%(part)r: write handset:login, like 1:alice", part=part))
        found.append({"number": int(number), "user": login.lower()})
    return found


def _phones_page(errors=None, general=None, form=None, status=200):
    config = core.current_config()
    svc = _service("provisioning")
    fetched = {p.mac: (svc.last_fetch(p.mac) if svc is not None else None) for p in config.provisioning.phones}
    requests = svc.recent_requests(30) if svc is not None else []
    return render_template("lan/phones.html", config=config, prov=config.provisioning, models=MODELS,
                           errors=errors or {}, general=general or [], form=form or {}, fetched=fetched,
                           requests=requests, auth_kinds=PROV_AUTH,
                           users=[(u.login, f"{u.full_name} ({u.extension})") for u in config.users if u.extension],
                           now=time.time()), status


@bp.route("/phones")
@core.admin_required
def phones():
    return _phones_page()


@bp.route("/phones", methods=["POST"])
@core.admin_required
def phone_add():
    form = {"mac": forms.text("mac", 20), "model": forms.text("model", 20) or "yealink",
            "user": forms.optional("user", 32), "handsets": forms.text("handsets", 300),
            "label": forms.text("label", 60)}
    try:
        handsets = parse_handsets(form["handsets"])
    except ValueError as exc:
        return _phones_page({"handsets": str(exc)}, form=form, status=400)
    index = len(core.current_config().provisioning.phones)
    phone = {"mac": form["mac"], "model": form["model"], "user": form["user"], "handsets": handsets,
             "label": form["label"], "auth_secret": new_secret(16)}

    def mutate(doc: dict) -> None:
        doc["provisioning"]["phones"].append(phone)

    errors, general = forms.apply_form(f"add phone {form['mac']}", mutate, prefix=f"provisioning.phones.{index}",
                                       fields={f"provisioning.phones.{index}": "model", "provisioning.phones": "mac"})
    if errors or general:
        return _phones_page(errors, general, form, 400)
    return _done(_("Phone %(mac)s added.", mac=form['mac']), "lan.phones")


@bp.route("/phones/security", methods=["POST"])
@core.admin_required
def phone_security():
    form = {"require_dhcp_lease": forms.checkbox("require_dhcp_lease"), "https": forms.checkbox("https"),
            "auth_user": forms.text("auth_user", 32) or "phone"}
    kind = forms.text("auth", 12)  # "per-phone" is an account per phone and no shared one
    form["phone_accounts"] = kind == "per-phone"
    form["auth"] = "none" if form["phone_accounts"] else kind
    password = forms.text("auth_password", 64)

    def mutate(doc: dict) -> None:
        section = doc["provisioning"]
        section.update(form)
        if password:
            section["auth_password"] = password
        if form["phone_accounts"]:  # phones added before get their own password now
            for phone in section["phones"]:
                phone["auth_secret"] = phone.get("auth_secret") or new_secret(16)

    errors, general = forms.apply_form("provisioning security", mutate, prefix="provisioning")
    if errors or general:
        return _phones_page(errors, general, status=400)
    return _done(_("Provisioning security saved."), "lan.phones")


@bp.route("/phones/<mac>/delete", methods=["POST"])
@core.admin_required
def phone_delete(mac: str):
    def mutate(doc: dict) -> None:
        doc["provisioning"]["phones"] = [p for p in doc["provisioning"]["phones"] if p["mac"] != mac]

    _errors, general = forms.apply_form(f"remove phone {mac}", mutate)
    if general:
        return _phones_page(general=general, status=400)
    return _done(_("Phone %(mac)s removed.", mac=mac), "lan.phones")
