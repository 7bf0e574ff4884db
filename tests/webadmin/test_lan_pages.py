"""LAN pages: DHCP pools and reservations, leases with "make static", DNS records and resolvers,
phones; each change is a real revision through the apply engine, bad input shows field errors."""
from __future__ import annotations

import ipaddress
import re
import time

import pytest

from services.dhcp.leases import Lease
from tests.webadmin.helpers import post
from tests.webadmin.test_browser import page, server  # noqa: F401  (fixtures: HTTPS server, Chromium page)


def error_of(html: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', html)
    return match.group(1) if match else None


def test_pages_render_and_are_in_the_nav(admin_client):
    for path in ("/lan/dhcp", "/lan/leases", "/lan/dns", "/lan/phones"):
        html = admin_client.get(path)
        assert html.status_code == 200, path
        body = html.get_data(as_text=True)
        assert 'href="/lan/dhcp"' in body and 'href="/lan/phones"' in body


def test_pool_and_reservation(admin_client, runtime):
    response = post(admin_client, "/lan/dhcp/pools", {"network": "lan", "start": "10.20.0.50", "end": "10.20.0.90"},
                    form_path="/lan/dhcp")
    assert response.status_code == 302
    assert [(str(p.start), str(p.end)) for p in runtime.store.current().config.dhcp.pools] == [("10.20.0.50",
                                                                                                 "10.20.0.90")]
    bad = post(admin_client, "/lan/dhcp/pools", {"network": "lan", "start": "10.20.0.50", "end": "10.99.0.90"},
               form_path="/lan/dhcp")
    assert bad.status_code == 400 and "must lie inside 10.20.0.0/24" in bad.get_data(as_text=True)
    backwards = post(admin_client, "/lan/dhcp/pools", {"network": "lan", "start": "10.20.0.95", "end": "10.20.0.91"},
                     form_path="/lan/dhcp")
    assert error_of(backwards.get_data(as_text=True), "end") == "the pool ends before it starts"
    ok = post(admin_client, "/lan/dhcp/reservations", {"mac": "00-15-65-AA-BB-CC", "ip": "10.20.0.7",
                                                       "hostname": "printer"}, form_path="/lan/dhcp")
    assert ok.status_code == 302
    res = runtime.store.current().config.dhcp.reservations
    assert [(r.mac, str(r.ip), r.hostname) for r in res] == [("00:15:65:aa:bb:cc", "10.20.0.7", "printer")]
    dup = post(admin_client, "/lan/dhcp/reservations", {"mac": "00:15:65:aa:bb:cc", "ip": "10.20.0.8"},
               form_path="/lan/dhcp")
    assert "reserved twice" in error_of(dup.get_data(as_text=True), "mac")
    bad_mac = post(admin_client, "/lan/dhcp/reservations", {"mac": "zz", "ip": "10.20.0.8"}, form_path="/lan/dhcp")
    assert "not a MAC address" in error_of(bad_mac.get_data(as_text=True), "mac")
    gone = post(admin_client, "/lan/dhcp/reservations/00:15:65:aa:bb:cc/delete", {}, form_path="/lan/dhcp")
    assert gone.status_code == 302 and runtime.store.current().config.dhcp.reservations == []


def test_lease_table_and_make_static(admin_client, runtime):
    dhcp = runtime.services["dhcp"]
    dhcp.table.put(Lease(ip=ipaddress.IPv4Address("10.20.0.120"), mac="02:00:00:00:00:42", network="lan",
                         hostname="laptop", expires=time.time() + 3600))
    html = admin_client.get("/lan/leases").get_data(as_text=True)
    assert 'id="lease-10-20-0-120"' in html and "laptop" in html and "Make static" in html
    response = post(admin_client, "/lan/leases/static", {"mac": "02:00:00:00:00:42", "ip": "10.20.0.120",
                                                         "hostname": "laptop"}, form_path="/lan/leases")
    assert response.status_code == 302
    res = runtime.store.current().config.dhcp.reservations
    assert [(r.mac, str(r.ip), r.hostname) for r in res] == [("02:00:00:00:00:42", "10.20.0.120", "laptop")]
    assert "Make static" not in admin_client.get("/lan/leases").get_data(as_text=True)


def test_dns_records_and_upstreams(admin_client, runtime):
    ok = post(admin_client, "/lan/dns/records", {"name": "NAS", "type": "A", "value": "10.20.0.5", "ttl": "600"},
              form_path="/lan/dns")
    assert ok.status_code == 302
    rec = runtime.store.current().config.dns.records[0]
    assert (rec.name, rec.type, rec.value, rec.ttl) == ("nas", "A", "10.20.0.5", 600)
    bad = post(admin_client, "/lan/dns/records", {"name": "x", "type": "A", "value": "not-an-ip"}, form_path="/lan/dns")
    assert bad.status_code == 400 and "is not a valid A value" in error_of(bad.get_data(as_text=True), "value")
    bad_name = post(admin_client, "/lan/dns/records", {"name": "bad name!", "type": "A", "value": "10.20.0.6"},
                    form_path="/lan/dns")
    assert error_of(bad_name.get_data(as_text=True), "name")
    ok = post(admin_client, "/lan/dns/upstreams", {"upstreams": "192.0.2.53, 198.51.100.53:5353"},
              form_path="/lan/dns")
    assert ok.status_code == 302
    assert runtime.store.current().config.dns.upstreams == ["192.0.2.53", "198.51.100.53:5353"]
    bad = post(admin_client, "/lan/dns/upstreams", {"upstreams": "dns.example"}, form_path="/lan/dns")
    assert bad.status_code == 400 and "not an IPv4 address" in error_of(bad.get_data(as_text=True), "upstreams")
    assert post(admin_client, "/lan/dns/records/0/delete", {}, form_path="/lan/dns").status_code == 302
    assert runtime.store.current().config.dns.records == []


def test_phones(admin_client, runtime):
    post(admin_client, "/users/new", {"login": "anna", "full_name": "Anna Example", "extension": "201",
                                      "role": "staff", "language": "en", "enabled": "on"})
    ok = post(admin_client, "/lan/phones", {"mac": "001565123456", "model": "yealink", "user": "anna",
                                            "label": "reception"}, form_path="/lan/phones")
    assert ok.status_code == 302
    phone = runtime.store.current().config.provisioning.phones[0]
    assert (phone.mac, phone.model, phone.user) == ("00:15:65:12:34:56", "yealink", "anna")
    html = admin_client.get("/lan/phones").get_data(as_text=True)
    assert 'id="phone-001565123456"' in html and "not yet" in html
    dect = post(admin_client, "/lan/phones", {"mac": "00:15:65:00:00:01", "model": "yealink-w70b",
                                              "handsets": "1:anna, 2:nobody"}, form_path="/lan/phones")
    assert dect.status_code == 400 and "there is no user &#39;nobody&#39;" in dect.get_data(as_text=True)
    garbled = post(admin_client, "/lan/phones", {"mac": "00:15:65:00:00:01", "model": "yealink-w70b",
                                                 "handsets": "anna"}, form_path="/lan/phones")
    assert "handset:login" in error_of(garbled.get_data(as_text=True), "handsets")
    twice = post(admin_client, "/lan/phones", {"mac": "00:15:65:12:34:56", "model": "snom", "user": "anna"},
                 form_path="/lan/phones")
    assert "listed twice" in error_of(twice.get_data(as_text=True), "mac")
    gone = post(admin_client, "/lan/phones/00:15:65:12:34:56/delete", {}, form_path="/lan/phones")
    assert gone.status_code == 302 and runtime.store.current().config.provisioning.phones == []


def test_provisioning_security_form_and_request_log(admin_client, runtime):
    from services.provisioning.fetchlog import FetchLog
    post(admin_client, "/users/new", {"login": "anna", "full_name": "Anna Example", "extension": "201",
                                      "role": "staff", "language": "en", "enabled": "on"})
    post(admin_client, "/lan/phones", {"mac": "001565123456", "model": "yealink", "user": "anna"},
         form_path="/lan/phones")
    secret = runtime.store.current().config.provisioning.phones[0].auth_secret
    assert len(secret) == 16  # every phone added gets its own password
    short = post(admin_client, "/lan/phones/security", {"auth": "digest", "auth_password": "short",
                                                        "require_dhcp_lease": "on"}, form_path="/lan/phones")
    assert short.status_code == 400 and "at least 8 characters" in short.get_data(as_text=True)
    ok = post(admin_client, "/lan/phones/security", {"auth": "per-phone", "https": "on"}, form_path="/lan/phones")
    assert ok.status_code == 302
    prov = runtime.store.current().config.provisioning
    assert (prov.auth_kind, prov.auth, prov.https, prov.require_dhcp_lease) == ("per-phone", "none", True, False)
    html = admin_client.get("/lan/phones").get_data(as_text=True)
    assert "<code>001565123456</code>" in html and f"<code>{secret}</code>" in html
    svc = runtime.services["provisioning"]
    svc.log = FetchLog(runtime.ctx.state_dir("provisioning") / "fetches.jsonl")
    svc.log.record("192.168.1.66", "/001565123456.cfg", 403, "http", "00:15:65:12:34:56")
    html = admin_client.get("/lan/phones").get_data(as_text=True)
    assert 'id="prov-requests"' in html and "192.168.1.66" in html and "refused 403" in html


def test_staff_cannot_see_lan_pages(client):
    assert client.get("/lan/dhcp").status_code in (302, 403)


@pytest.mark.slow
def test_lan_pages_in_a_real_browser(admin_client, page, runtime, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from tests.webadmin.helpers import ADMIN

    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    page.click("nav >> text=DHCP")
    expect(page.locator("h1")).to_have_text("DHCP")
    page.fill("#f-mac", "00:15:65:aa:bb:cc")
    page.fill("#f-ip", "10.99.0.7")
    page.click("button:has-text('Reserve')")
    expect(page.locator("#e-ip")).to_contain_text("is not inside a LAN network")  # next to its field
    page.fill("#f-ip", "10.20.0.7")
    page.fill("#f-hostname", "printer")
    page.click("button:has-text('Reserve')")
    expect(page.locator(".banner-success")).to_contain_text("10.20.0.7 is reserved")
    expect(page.locator("#res-001565aabbcc")).to_contain_text("printer")
    page.screenshot(path=str(tmp_path / "dhcp.png"), full_page=True)
    page.click("nav >> text=Phones")
    page.fill("#f-mac", "00:15:65:aa:bb:cc")
    page.select_option("#f-model", "yealink-w70b")
    page.fill("#f-handsets", "1:admin")
    page.click("button:has-text('Add phone')")
    expect(page.locator(".banner-error, #e-handsets, .error").first).to_contain_text("extension")
    page.click("nav >> text=DNS")
    page.fill("#f-name", "nas")
    page.fill("#f-value", "10.20.0.5")
    page.click("button:has-text('Add record')")
    expect(page.locator("#record-0")).to_contain_text("10.20.0.5")
    page.screenshot(path=str(tmp_path / "dns.png"), full_page=True)
    assert [r.name for r in runtime.store.current().config.dns.records] == ["nas"]
