"""My VPN on the staff account page: a user with VPN access downloads their own WireGuard files and
QR codes and their own IKEv2 profiles, never another user's; a user without VPN access sees nothing."""
from __future__ import annotations

import json
import plistlib

import pytest

from appliance.users import hash_password
from services.vpn.wireguard import add_device
from tests.webadmin.helpers import admin_client_for
from tests.webadmin.test_account import PASSWORD, signed_in
from webadmin import create_app


@pytest.fixture
def staff(runtime):
    """ann and bob may use the VPN (a device each, an IKEv2 account for ann); carl may not, yet has both."""
    admin_client_for(runtime)
    password_hash = hash_password(PASSWORD)

    def mutate(doc):
        doc["users"] += [{"login": login, "full_name": login.title(), "role": "staff", "vpn_enabled": vpn,
                          "password_hash": password_hash} for login, vpn in (("ann", True), ("bob", True),
                                                                            ("carl", False))]
        vpn = doc.setdefault("vpn", {})
        vpn.update(enabled=True)
        vpn.setdefault("wireguard", {}).update(enabled=True, endpoint="vpn.example.test")
        vpn.setdefault("remote_access", {}).update(enabled=True, server_name="vpn.example.test", accounts=[
            {"user": "ann"}, {"user": "carl"}])
        add_device(vpn, "ann", "laptop")
        add_device(vpn, "bob", "phone")
        add_device(vpn, "carl", "tablet")
    runtime.engine.update("admin", "staff with VPN", mutate)
    return runtime


def test_own_devices_and_profiles_only(staff):
    config = staff.store.current().config
    [laptop, phone, _] = config.vpn.wireguard.devices
    ann = signed_in(staff, "ann")
    page = ann.get("/account/").get_data(as_text=True)
    assert 'id="my-vpn"' in page and 'id="my-device-laptop"' in page and "phone" not in page
    assert laptop.private_key_secret not in page
    conf = ann.get("/account/vpn/devices/laptop/wireguard.conf")
    assert conf.status_code == 200 and f"PrivateKey = {laptop.private_key_secret}" in conf.get_data(as_text=True)
    assert conf.headers["Cache-Control"] == "no-store"
    qr = ann.get("/account/vpn/devices/laptop/qr.svg")
    assert qr.status_code == 200 and b"<svg" in qr.data
    assert ann.get("/account/vpn/devices/phone/wireguard.conf").status_code == 404  # bob's
    assert ann.get("/account/vpn/devices/phone/qr.svg").status_code == 404
    assert ann.get("/vpn/devices/bob/phone/wireguard.conf").status_code in (302, 403)  # the admin's route

    [account, _] = config.vpn.remote_access.accounts
    details = ann.get("/account/vpn/ikev2/details.txt").get_data(as_text=True)
    assert f"Password: {account.password_secret}" in details and "Username: ann" in details
    apple = plistlib.loads(ann.get("/account/vpn/ikev2/mobileconfig").data)
    assert apple["PayloadContent"][1]["IKEv2"]["AuthName"] == "ann"
    assert json.loads(ann.get("/account/vpn/ikev2/android").data)["local"]["eap_id"] == "ann"
    assert b"Add-VpnConnection" in ann.get("/account/vpn/ikev2/windows").data

    bob = signed_in(staff, "bob")
    page = bob.get("/account/").get_data(as_text=True)
    assert 'id="my-device-phone"' in page and "laptop" not in page and "/account/vpn/ikev2/" not in page
    assert bob.get("/account/vpn/ikev2/mobileconfig").status_code == 404  # no IKEv2 account
    assert bob.get("/account/vpn/devices/laptop/wireguard.conf").status_code == 404
    assert bob.get("/account/vpn/devices/phone/wireguard.conf").status_code == 200


def test_user_without_vpn_access_sees_and_gets_nothing(staff):
    carl = signed_in(staff, "carl")
    page = carl.get("/account/").get_data(as_text=True)
    assert carl.get("/account/").status_code == 200 and 'id="my-vpn"' not in page and "tablet" not in page
    for path in ("/account/vpn/devices/tablet/wireguard.conf", "/account/vpn/devices/tablet/qr.svg",
                 "/account/vpn/ikev2/details.txt", "/account/vpn/ikev2/mobileconfig"):
        assert carl.get(path).status_code == 403, path
    anonymous = create_app(staff).test_client()
    assert anonymous.get("/account/vpn/ikev2/details.txt").status_code in (302, 401)
