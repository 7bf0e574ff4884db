"""The VPN page's legacy PPTP form: off by default, marked insecure with the reason, switched on and off as
real revisions through the apply engine (the rendered pptpd files follow), a pool clash refused."""
from __future__ import annotations

import re

from tests.webadmin.helpers import post
from tests.webadmin.test_vpn_pages import add_user


def pptp_form(page: str) -> str:
    match = re.search(r'<form method="post" id="form-pptp".*?</form>', page, re.S)
    assert match, "no PPTP form on the VPN page"
    return match.group(0)


def test_the_pptp_form_is_off_by_default_and_says_why_it_is_insecure(admin_client, runtime):
    assert runtime.store.current().config.vpn.pptp.enabled is False
    form = pptp_form(admin_client.get("/vpn/").get_data(as_text=True))
    assert 'id="pptp-warning"' in form and "PPTP is not secure." in form
    assert "MS-CHAPv2" in form and "cracked offline" in form and "RC4" in form
    checkbox = re.search(r'<input[^>]*name="pptp_enabled"[^>]*>', form).group(0)
    assert "checked" not in checkbox
    assert 'name="pptp_pool"' in form and 'value="10.10.0.0/24"' in form
    assert "No user has a VPN password yet" in form


def test_pptp_switched_on_and_off_renders_and_removes_its_files(admin_client, runtime):
    add_user(admin_client, "ann")
    add_user(admin_client, "bob", vpn=False)
    assert post(admin_client, "/vpn/accounts", {"user": "ann"}, form_path="/vpn/").status_code == 302
    done = post(admin_client, "/vpn/pptp", {"pptp_enabled": "on", "pptp_pool": "10.10.0.0/28"}, form_path="/vpn/")
    assert done.status_code == 302
    config = runtime.store.current().config
    assert config.vpn.pptp.enabled and config.vpn.enabled and str(config.vpn.pptp.pool) == "10.10.0.0/28"
    etc = runtime.ctx.etc_dir("vpn")
    [account] = config.vpn.remote_access.accounts
    assert f'"ann" pptpd "{account.password_secret}" *' in (etc / "chap-secrets").read_text()
    assert "remoteip 10.10.0.2-14" in (etc / "pptpd.conf").read_text()
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert "Legacy PPTP is on: it is not secure" in page
    form = pptp_form(page)
    assert "checked" in re.search(r'<input[^>]*name="pptp_enabled"[^>]*>', form).group(0)
    assert "May sign in: ann." in form and account.password_secret not in page
    assert post(admin_client, "/vpn/pptp", {"pptp_pool": "10.10.0.0/28"}, form_path="/vpn/").status_code == 302
    assert runtime.store.current().config.vpn.pptp.enabled is False
    assert not (etc / "pptpd.conf").exists() and not (etc / "chap-secrets").exists()
    assert "Legacy PPTP is off." in admin_client.get("/vpn/").get_data(as_text=True)


def test_a_pptp_pool_on_the_lan_or_too_big_is_refused(admin_client, runtime):
    lan = str(runtime.store.current().config.network.lan.address.network)
    clash = post(admin_client, "/vpn/pptp", {"pptp_enabled": "on", "pptp_pool": lan}, form_path="/vpn/")
    page = clash.get_data(as_text=True)
    assert clash.status_code == 400 and f"the PPTP pool {lan} overlaps the LAN {lan}" in page
    big = post(admin_client, "/vpn/pptp", {"pptp_enabled": "on", "pptp_pool": "10.10.0.0/16"}, form_path="/vpn/")
    assert big.status_code == 400 and "must be a /24 to /29 network" in big.get_data(as_text=True)
    assert runtime.store.current().config.vpn.pptp.enabled is False
