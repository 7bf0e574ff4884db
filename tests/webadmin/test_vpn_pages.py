"""VPN pages: the users' "May use the VPN" box, tunnels (weak keys refused), WireGuard devices with
their file and QR code; every change a real revision through the apply engine."""
from __future__ import annotations

import re

from tests.webadmin.helpers import post

PSK = "Branch2Head-office-7fQ9xLw"


def add_user(admin_client, login="ann", vpn=True):
    data = {"login": login, "full_name": login.title(), "role": "staff", "language": "en", "enabled": "on"}
    if vpn:
        data["vpn_enabled"] = "on"
    assert post(admin_client, "/users/new", data).status_code == 302


def test_user_vpn_checkbox_is_shown_and_saved(admin_client, runtime):
    assert "May use the VPN" in admin_client.get("/users/new").get_data(as_text=True)
    add_user(admin_client)
    assert runtime.store.current().config.user("ann").vpn_enabled is True
    data = {"full_name": "Ann", "role": "staff", "language": "en", "enabled": "on"}
    assert post(admin_client, "/users/ann/edit", data).status_code == 302
    assert runtime.store.current().config.user("ann").vpn_enabled is False
    assert 'name="vpn_enabled"' in admin_client.get("/users/ann/edit").get_data(as_text=True)


def test_tunnel_added_weak_key_refused_and_deleted(admin_client, runtime):
    assert admin_client.get("/vpn/").status_code == 200
    lan = str(runtime.store.current().config.network.lan.address.network)
    tunnel = {"name": "branch", "peer": "198.51.100.1", "local_subnets": lan, "remote_subnets": "10.2.0.0/24",
              "dpd_delay": "30"}
    weak = post(admin_client, "/vpn/tunnels", {**tunnel, "psk": "secret"}, form_path="/vpn/")
    assert weak.status_code == 400 and "at least 20 characters" in weak.get_data(as_text=True)
    clash = post(admin_client, "/vpn/tunnels", {**tunnel, "psk": PSK, "remote_subnets": lan}, form_path="/vpn/")
    assert clash.status_code == 400 and "overlap" in clash.get_data(as_text=True)
    assert runtime.store.current().config.vpn.tunnels == []
    assert post(admin_client, "/vpn/tunnels", {**tunnel, "psk": PSK}, form_path="/vpn/").status_code == 302
    [stored] = runtime.store.current().config.vpn.tunnels
    assert stored.psk == PSK and str(stored.remote_subnets[0]) == "10.2.0.0/24"
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert 'id="tunnel-branch"' in page and PSK not in page
    assert post(admin_client, "/vpn/tunnels/branch/delete", {}, form_path="/vpn/").status_code == 302
    assert runtime.store.current().config.vpn.tunnels == []


def test_wireguard_device_file_and_qr_code(admin_client, runtime):
    add_user(admin_client, "ann")
    add_user(admin_client, "bob", vpn=False)
    settings = {"enabled": "on", "wg_enabled": "on", "port": "51820", "pool": "10.8.0.0/24", "endpoint": ""}
    refused = post(admin_client, "/vpn/settings", settings, form_path="/vpn/")
    if runtime.store.current().config.network.wan.address is None:  # a DHCP WAN: devices need a name to dial
        assert refused.status_code == 400 and "public name or address" in refused.get_data(as_text=True)
    settings["endpoint"] = "vpn.example.test"
    assert post(admin_client, "/vpn/settings", settings, form_path="/vpn/").status_code == 302
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert 'value="ann"' in page and 'value="bob"' not in page  # only users allowed the VPN
    assert post(admin_client, "/vpn/devices", {"user": "ann", "name": "laptop"}, form_path="/vpn/").status_code == 302
    [device] = runtime.store.current().config.vpn.wireguard.devices
    conf = admin_client.get("/vpn/devices/ann/laptop/wireguard.conf")
    text = conf.get_data(as_text=True)
    assert conf.status_code == 200 and "attachment" in conf.headers["Content-Disposition"]
    assert f"PrivateKey = {device.private_key_secret}" in text and "Endpoint = vpn.example.test:51820" in text
    assert "Address = 10.8.0.2/32" in text
    qr = admin_client.get("/vpn/devices/ann/laptop/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data
    assert device.private_key_secret not in admin_client.get("/vpn/").get_data(as_text=True)
    assert admin_client.get("/vpn/devices/ann/phone/wireguard.conf").status_code == 404
    assert post(admin_client, "/vpn/devices/ann/laptop/delete", {}, form_path="/vpn/").status_code == 302
    assert runtime.store.current().config.vpn.wireguard.devices == []


def test_ikev2_account_sign_in_details_and_ca(admin_client, runtime):
    add_user(admin_client, "ann")
    settings = {"enabled": "on", "ra_enabled": "on", "ra_server_name": "vpn.example.test", "ra_pool": "10.9.0.0/24",
                "port": "51820", "pool": "10.8.0.0/24", "endpoint": ""}
    assert post(admin_client, "/vpn/settings", settings, form_path="/vpn/").status_code == 302
    assert runtime.store.current().config.vpn.remote_access.enabled
    assert post(admin_client, "/vpn/accounts", {"user": "ann"}, form_path="/vpn/").status_code == 302
    again = post(admin_client, "/vpn/accounts", {"user": "ann"}, form_path="/vpn/")
    assert again.status_code == 400 and "already has an IKEv2 account" in again.get_data(as_text=True)
    [account] = runtime.store.current().config.vpn.remote_access.accounts
    assert account.password_secret not in admin_client.get("/vpn/").get_data(as_text=True)
    details = admin_client.get("/vpn/accounts/ann/details.txt").get_data(as_text=True)
    assert f"Password: {account.password_secret}" in details and "Server: vpn.example.test" in details
    assert admin_client.get("/vpn/accounts/bob/details.txt").status_code == 404
    ca = admin_client.get("/vpn/ca.pem")  # made when the configuration was checked
    assert ca.status_code == 200 and b"BEGIN CERTIFICATE" in ca.data
    assert post(admin_client, "/vpn/accounts/ann/delete", {}, form_path="/vpn/").status_code == 302
    assert runtime.store.current().config.vpn.remote_access.accounts == []


def test_connected_clients_section_and_disconnect_of_a_client_not_connected(admin_client):
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert 'id="connected"' in page and "No remote-access client is connected." in page
    gone = post(admin_client, "/vpn/clients/42/disconnect", {}, form_path="/vpn/")
    assert gone.status_code == 302
    assert "This client is no longer connected." in admin_client.get("/vpn/").get_data(as_text=True)


def test_a_tunnel_limited_to_some_services_is_saved_and_shown(admin_client, runtime):
    lan = str(runtime.store.current().config.network.lan.address.network)
    tunnel = {"name": "branch", "peer": "198.51.100.1", "local_subnets": lan, "remote_subnets": "10.2.0.0/24",
              "dpd_delay": "30", "psk": PSK}
    wrong = post(admin_client, "/vpn/tunnels", {**tunnel, "allowed_services": "tcp/443, ssh"}, form_path="/vpn/")
    page = wrong.get_data(as_text=True)
    assert wrong.status_code == 400 and "&#39;ssh&#39; is not a service" in page and 'id="e-allowed_services"' in page
    assert runtime.store.current().config.vpn.tunnels == []
    done = post(admin_client, "/vpn/tunnels", {**tunnel, "allowed_services": "tcp/443, ICMP\nudp/53"},
                form_path="/vpn/")
    assert done.status_code == 302
    [stored] = runtime.store.current().config.vpn.tunnels
    assert stored.allowed_services == ["tcp/443", "icmp", "udp/53"]
    assert "reaches only tcp/443, icmp, udp/53" in admin_client.get("/vpn/").get_data(as_text=True)


def test_an_ikev1_tunnel_is_chosen_in_the_form_and_marked_in_the_table(admin_client, runtime):
    lan = str(runtime.store.current().config.network.lan.address.network)
    tunnel = {"name": "legacy", "peer": "198.51.100.1", "local_subnets": lan, "remote_subnets": "10.2.0.0/24",
              "dpd_delay": "30", "psk": PSK, "ike_version": "1"}
    assert 'name="ike_version"' in admin_client.get("/vpn/").get_data(as_text=True)
    two = post(admin_client, "/vpn/tunnels", {**tunnel, "remote_subnets": "10.2.0.0/24, 10.3.0.0/24"},
               form_path="/vpn/")
    assert two.status_code == 400 and "IKEv1 carries one local and one remote network" in two.get_data(as_text=True)
    assert post(admin_client, "/vpn/tunnels", tunnel, form_path="/vpn/").status_code == 302
    [stored] = runtime.store.current().config.vpn.tunnels
    assert stored.ike_version == 1
    row = re.search(r'<tr id="tunnel-legacy">.*?</tr>', admin_client.get("/vpn/").get_data(as_text=True), re.S)
    assert "IKEv1" in row.group(0)
