"""A PPPoE WAN from the web admin: the Interfaces page and the guided setup's Internet step offer it with a
user name and a password the pages never send back; the engine renders pppd's options (0600, root's folder)
and the firewall's ruleset on the PPPoE link."""
from __future__ import annotations

import os
import re
import stat

from tests.webadmin.helpers import post
from tests.webadmin.test_wizard import box_step, shown_step, step

FORM = {"lan_interface": "eth1", "lan_address": "10.20.0.1/24", "vlan_id": "100",
        "voice_address": "192.168.2.1/24", "wan_interface": "eth0", "wan_mode": "pppoe", "wan_address": "",
        "wan_gateway": "", "wan_dns": "", "wan_pppoe_user": "office@dsl.example",
        "wan_pppoe_password": "Line-secret-41", "wan_pppoe_service": "", "wan_mtu": "1492"}


def error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return found.group(1) if found else ""


def test_the_interfaces_page_sets_a_pppoe_wan_and_never_shows_its_password(admin_client, runtime):
    page = admin_client.get("/network/").get_data(as_text=True)
    assert '<option value="pppoe"' in page and 'name="wan_pppoe_password"' in page
    assert post(admin_client, "/network/settings", FORM, form_path="/network/").status_code == 302
    wan = runtime.store.current().config.network.wan
    assert (wan.mode, wan.pppoe_user, wan.pppoe_password, wan.mtu) == ("pppoe", "office@dsl.example",
                                                                       "Line-secret-41", 1492)
    page = admin_client.get("/network/").get_data(as_text=True)
    assert "Line-secret-41" not in page and 'value="office@dsl.example"' in page
    assert "Line-secret-41" not in runtime.store.current().diff  # the history masks it
    # pppd's options: rendered root's only; the firewall on the link pppd brings up
    options = runtime.ctx.etc_dir("network") / "root-only" / "pppoe-options"
    assert stat.S_IMODE(os.stat(options).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(options.parent).st_mode) == 0o700
    text = options.read_text()
    assert 'user "office@dsl.example"' in text and 'password "Line-secret-41"' in text and "nic-eth0" in text
    assert "ifname wanppp" in text and "usepeerdns" in text and "mtu 1492" in text
    ruleset = (runtime.ctx.etc_dir("firewall") / "ruleset.nft").read_text()
    assert 'oifname "wanppp" masquerade' in ruleset and "maxseg size set rt mtu" in ruleset

    # an empty password field keeps the stored password; a new one replaces it
    kept = post(admin_client, "/network/settings", {**FORM, "wan_pppoe_password": "", "wan_mtu": "1480"},
                form_path="/network/")
    assert kept.status_code == 302
    wan = runtime.store.current().config.network.wan
    assert wan.pppoe_password == "Line-secret-41" and wan.mtu == 1480
    assert "mtu 1480" in options.read_text()
    post(admin_client, "/network/settings", {**FORM, "wan_pppoe_password": "Other-secret-2"}, form_path="/network/")
    assert runtime.store.current().config.network.wan.pppoe_password == "Other-secret-2"

    # back to DHCP: pppd's files go with the mode
    post(admin_client, "/network/settings", {**FORM, "wan_mode": "dhcp"}, form_path="/network/")
    assert not options.exists()


def test_a_pppoe_wan_without_a_user_name_is_refused_at_its_field(admin_client, runtime):
    before = runtime.store.current_id()
    bad = post(admin_client, "/network/settings", {**FORM, "wan_pppoe_user": ""}, form_path="/network/")
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "needs the user name" in error_of(page, "wan_pppoe_user"), page
    assert "Line-secret-41" not in page  # not even the one just typed
    bad = post(admin_client, "/network/settings", {**FORM, "wan_mtu": "9000"}, form_path="/network/")
    assert bad.status_code == 400 and error_of(bad.get_data(as_text=True), "wan_mtu")
    assert runtime.store.current_id() == before


def test_the_guided_setup_offers_pppoe_and_asks_its_password_on_the_summary(client, runtime):
    response, page = box_step(client)
    assert shown_step(page) == "internet" and '<option value="pppoe"' in page
    response, page = step(client, page, lan_address="10.20.0.1/24", wan_mode="pppoe", wan_pppoe_user="")
    assert response.status_code == 400 and "user name" in error_of(page, "wan_pppoe_user"), page
    response, page = step(client, page, wan_mode="pppoe", wan_pppoe_user="office@dsl.example")
    assert shown_step(page) == "people", page
    response, page = step(client, page)  # no users
    response, page = step(client, page)  # no trunk
    assert shown_step(page) == "summary" and 'name="wan_pppoe_password"' in page and "office@dsl.example" in page
    password = "correct-horse-battery-9"
    response, page = step(client, page, "apply", password=password, password2=password)
    assert response.status_code == 400 and "password" in error_of(page, "wan_pppoe_password"), page
    assert not runtime.store.current().config.system.initialized
    response, page = step(client, page, "apply", password=password, password2=password,
                          wan_pppoe_password="Line-secret-41")
    assert response.status_code == 302, page
    rev = runtime.store.current()
    wan = rev.config.network.wan
    assert (wan.mode, wan.pppoe_user, wan.pppoe_password) == ("pppoe", "office@dsl.example", "Line-secret-41")
    assert "Line-secret-41" not in rev.diff
