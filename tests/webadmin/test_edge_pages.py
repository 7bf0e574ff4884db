"""Internet pages: interfaces, firewall (rules, port forwards, commit-confirm banner), proxy rules and
usage reports; every change is a real revision through the apply engine (nft -c and squid -k parse)."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.netns import Lab, needs_netns
from tests.webadmin.helpers import post


def error_of(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return match.group(1) if match else None


def test_pages_render_and_are_in_the_internet_group(admin_client):
    for path in ("/network/", "/firewall/", "/proxy/", "/proxy/usage"):
        page = admin_client.get(path)
        assert page.status_code == 200, path
        body = page.get_data(as_text=True)
        assert "<h2>Internet</h2>" in body
        for link in ('href="/network/"', 'href="/firewall/"', 'href="/proxy/"', 'href="/proxy/usage"'):
            assert link in body
    assert "Lab mode" in admin_client.get("/network/").get_data(as_text=True)
    assert "No web traffic" in admin_client.get("/proxy/usage").get_data(as_text=True)


def test_port_forward_and_rule(admin_client, runtime):
    ok = post(admin_client, "/firewall/forwards", {"fwd_name": "web", "fwd_protocol": "tcp", "wan_port": "8443",
                                                   "to_address": "10.20.0.10", "to_port": "443"},
              form_path="/firewall/")
    assert ok.status_code == 302
    fwd = runtime.store.current().config.firewall.port_forwards
    assert [(f.name, f.wan_port, str(f.to_address), f.to_port) for f in fwd] == [("web", 8443, "10.20.0.10", 443)]
    ruleset = (runtime.ctx.etc_dir("firewall") / "ruleset.nft").read_text()
    assert "tcp dport 8443 dnat ip to 10.20.0.10:443" in ruleset
    page = admin_client.get("/firewall/").get_data(as_text=True)
    assert 'id="forward-0"' in page and "10.20.0.10:443" in page

    bad = post(admin_client, "/firewall/forwards", {"fwd_name": "x", "fwd_protocol": "tcp", "wan_port": "80",
                                                    "to_address": "not-an-ip"}, form_path="/firewall/")
    assert bad.status_code == 400 and error_of(bad.get_data(as_text=True), "to_address")
    dup = post(admin_client, "/firewall/forwards", {"fwd_name": "again", "fwd_protocol": "tcp", "wan_port": "8443",
                                                    "to_address": "10.20.0.11"}, form_path="/firewall/")
    assert dup.status_code == 400 and "two port forwards use tcp port 8443" in dup.get_data(as_text=True)
    port = post(admin_client, "/firewall/forwards", {"fwd_name": "x", "fwd_protocol": "tcp", "wan_port": "eighty",
                                                     "to_address": "10.20.0.11"}, form_path="/firewall/")
    assert error_of(port.get_data(as_text=True), "wan_port") == "enter a port number"

    rule = {"name": "ssh in", "action": "accept", "source_zone": "wan", "destination": "box", "protocol": "tcp",
            "ports": "22", "sources": "203.0.113.0/24", "destinations": ""}
    assert post(admin_client, "/firewall/rules", rule, form_path="/firewall/").status_code == 302
    assert runtime.store.current().config.firewall.rules[0].name == "ssh in"
    bad_rule = post(admin_client, "/firewall/rules", {**rule, "ports": "22-"}, form_path="/firewall/")
    assert "not a port" in error_of(bad_rule.get_data(as_text=True), "ports")
    assert post(admin_client, "/firewall/rules/0/delete", {}, form_path="/firewall/").status_code == 302
    assert post(admin_client, "/firewall/forwards/0/delete", {}, form_path="/firewall/").status_code == 302
    config = runtime.store.current().config.firewall
    assert config.rules == [] and config.port_forwards == []
    gone = post(admin_client, "/firewall/forwards/5/delete", {}, form_path="/firewall/")
    assert gone.status_code == 400 and "no longer exists" in gone.get_data(as_text=True)


def test_firewall_settings_validation(admin_client, runtime):
    form = {"admin_from_wan": "203.0.113.0/24", "vpn_interfaces": "wg0", "vpn_networks": "", "sip_peers": "",
            "new_connections_per_second": "20", "burst": "40", "confirm_timeout": "90", "lan_box": "on",
            "lan_internet": "on", "anti_lockout": "on", "masquerade": "on"}
    assert post(admin_client, "/firewall/settings", form, form_path="/firewall/").status_code == 302
    fw = runtime.store.current().config.firewall
    assert [str(n) for n in fw.admin_from_wan] == ["203.0.113.0/24"] and fw.vpn_interfaces == ["wg0"]
    assert fw.voice.internet is False and fw.confirm_timeout == 90
    bad = post(admin_client, "/firewall/settings", {**form, "burst": "many"}, form_path="/firewall/")
    assert error_of(bad.get_data(as_text=True), "burst") == "enter a whole number"
    bad = post(admin_client, "/firewall/settings", {**form, "admin_from_wan": "300.1.1.0/24"}, form_path="/firewall/")
    assert bad.status_code == 400 and error_of(bad.get_data(as_text=True), "admin_from_wan")


@needs_netns
@pytest.mark.netns
def test_confirm_banner_countdown_and_confirm(admin_client, runtime):
    """The firewall loads into a namespace here, so a risky change really waits for confirmation."""
    fw = runtime.services["firewall"]
    with Lab() as lab:
        fw.netns = lab.host("box").name
        asyncio.run(fw.start(runtime.config))
        form = {"admin_from_wan": "", "vpn_interfaces": "", "vpn_networks": "", "sip_peers": "",
                "new_connections_per_second": "50", "burst": "100", "confirm_timeout": "60", "lan_internet": "on",
                "masquerade": "on"}  # LAN may no longer use the box, no anti-lockout: risky
        assert post(admin_client, "/firewall/settings", form, form_path="/firewall/").status_code == 302
        asyncio.run(fw.reload(runtime.config))  # what the supervisor does after the apply
        page = admin_client.get("/firewall/")
        body = page.get_data(as_text=True)
        assert page.headers.get("Refresh") == "5"
        assert 'id="confirm-banner"' in body and "waiting for your confirmation" in body
        seconds = int(re.search(r'id="seconds-left">(\d+)<', body).group(1))
        assert 50 <= seconds <= 60
        assert '<animate attributeName="width"' in body
        confirmed = post(admin_client, "/firewall/confirm", {}, form_path="/firewall/", follow_redirects=True)
        assert "confirmed: it stays" in confirmed.get_data(as_text=True)
        assert runtime.engine.confirmation.pending() is None
        assert 'id="confirm-banner"' not in admin_client.get("/firewall/").get_data(as_text=True)
        again = post(admin_client, "/firewall/confirm", {}, form_path="/firewall/", follow_redirects=True)
        assert "no change waiting" in again.get_data(as_text=True)
        asyncio.run(fw.stop())
        fw.netns = None


def test_proxy_rules_and_groups(admin_client, runtime):
    form = {"enabled": "on", "cache_mb": "500", "memory_cache_mb": "32", "max_object_mb": "16",
            "blocked_domains": "casino.example\n\nAds.Example\n", "blocked_patterns": r"\.exe$",
            "extra_networks": "10.8.0.0/24", "restrict": "on", "day_mon": "on", "day_fri": "on",
            "start": "08:00", "end": "12:30"}
    assert post(admin_client, "/proxy/settings", form, form_path="/proxy/").status_code == 302
    px = runtime.store.current().config.proxy
    assert px.blocked_domains == ["casino.example", "ads.example"] and px.cache_mb == 500
    assert [(w.days, w.start, w.end) for w in px.allowed_hours] == [(["mon", "fri"], "08:00", "12:30")]
    conf = (runtime.ctx.etc_dir("proxy") / "squid.conf").read_text()
    assert "acl ob_default_hours time MF 08:00-12:30" in conf and "cache_dir ufs" in conf

    bad = post(admin_client, "/proxy/settings", {**form, "blocked_patterns": "([a"}, form_path="/proxy/")
    assert bad.status_code == 400 and "not a valid regular expression" in error_of(bad.get_data(as_text=True),
                                                                                   "blocked_patterns")
    bad = post(admin_client, "/proxy/settings", {**form, "start": "18:00", "end": "08:00"}, form_path="/proxy/")
    assert bad.status_code == 400 and "end after it starts" in bad.get_data(as_text=True)
    assert post(admin_client, "/proxy/settings", {**form, "cache_mb": "lots"},
                form_path="/proxy/").status_code == 400

    group = {"group_name": "interns", "group_sources": "10.20.0.128/25, 10.20.0.7", "group_web_access": "on",
             "group_blocked_domains": "video.example", "group_blocked_patterns": "",
             "group_restrict": "on", "group_day_sat": "on", "group_start": "09:00", "group_end": "11:00"}
    assert post(admin_client, "/proxy/groups", group, form_path="/proxy/").status_code == 302
    g = runtime.store.current().config.proxy.groups[0]
    assert g.name == "interns" and [str(s) for s in g.sources] == ["10.20.0.128/25", "10.20.0.7/32"]
    assert 'id="group-interns"' in admin_client.get("/proxy/").get_data(as_text=True)
    bad = post(admin_client, "/proxy/groups", {**group, "group_name": "Bad Name!"}, form_path="/proxy/")
    assert bad.status_code == 400 and error_of(bad.get_data(as_text=True), "group_name")
    assert post(admin_client, "/proxy/groups/0/delete", {}, form_path="/proxy/").status_code == 302
    assert runtime.store.current().config.proxy.groups == []

    by_login = {**group, "group_name": "office", "group_sources": "", "group_users": "admin"}
    refused = post(admin_client, "/proxy/groups", by_login, form_path="/proxy/")
    assert refused.status_code == 400 and "need sign-in" in refused.get_data(as_text=True)
    nobody = post(admin_client, "/proxy/groups", {**by_login, "group_users": ""}, form_path="/proxy/")
    assert nobody.status_code == 400 and "give its members" in nobody.get_data(as_text=True)
    assert post(admin_client, "/proxy/settings", {**form, "sign_in": "on"}, form_path="/proxy/").status_code == 302
    unknown = post(admin_client, "/proxy/groups", {**by_login, "group_users": "ghost"}, form_path="/proxy/")
    assert unknown.status_code == 400 and "no user with the login ghost" in unknown.get_data(as_text=True)
    assert post(admin_client, "/proxy/groups", by_login, form_path="/proxy/").status_code == 302
    assert runtime.store.current().config.proxy.groups[0].users == ["admin"]
    conf = (runtime.ctx.etc_dir("proxy") / "squid.conf").read_text()
    assert "acl ob_signed_in proxy_auth REQUIRED" in conf and "acl ob_g1_login proxy_auth admin" in conf


def test_usage_report_charts(admin_client, runtime):
    proxy = runtime.services["proxy"]
    log = proxy.paths.access_log
    log.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    entries = [(now - 7200, "10.20.0.5", "TCP_MISS/200", 50000, "http://news.example/a", "-"),
               (now - 60, "10.20.0.5", "TCP_MEM_HIT/200", 50000, "http://news.example/a", "-"),
               (now - 30, "10.20.0.9", "TCP_DENIED/403", 3000, "http://casino.example/", "-"),
               (now - 10, "10.20.0.9", "TCP_TUNNEL/200", 9000, "secure.example:443", "-")]
    line = "{:.3f}     5 {} {} {} {} {} {} HIER_NONE/- -\n"
    log.write_text("".join(line.format(t, client, code, size, "CONNECT" if ":443" in url else "GET", url, login)
                           for t, client, code, size, url, login in entries))
    body = admin_client.get("/proxy/usage").get_data(as_text=True)
    assert 'id="top-users"' not in body  # nobody signed in: no empty chart
    with log.open("a") as more:
        more.write(line.format(now - 5, "10.20.0.9", "TCP_MISS/200", 7000, "GET", "http://wiki.example/", "Ann"))
    users = admin_client.get("/proxy/usage").get_data(as_text=True)
    assert '<svg id="top-users"' in users and ">ann<" in users
    for chart in ("top-sites", "top-clients", "per-hour", "cache-ratio"):
        assert f'<svg id="{chart}"' in body
    assert "news.example" in body and "secure.example" in body and "10.20.0.9" in body
    assert re.search(r'id="hit-ratio">33 % \(1 of 3\)', body)  # the tunnel is a miss, the denial neither
    assert "97.7 KB" in body  # news.example: 100000 bytes
    sites = re.findall(r'<rect x="150" y="\d+" width="(\d+)"', body)
    assert sites[0] == "280"  # the biggest bar is full width
    week = admin_client.get("/proxy/usage?period=7d").get_data(as_text=True)
    assert "<strong>last 7 days</strong>" in week
    assert admin_client.get("/proxy/usage?period=bogus").status_code == 200


def test_network_settings_and_routes(admin_client, runtime):
    form = {"lan_interface": "eth1", "lan_address": "10.20.0.1/24", "vlan_id": "100",
            "voice_address": "192.168.2.1/24", "wan_interface": "eth0", "wan_mode": "static",
            "wan_address": "198.51.100.2/24", "wan_gateway": "198.51.100.1", "wan_dns": "198.51.100.53"}
    assert post(admin_client, "/network/settings", form, form_path="/network/").status_code == 302
    net = runtime.store.current().config.network
    assert net.lan.interface == "eth1" and str(net.wan.gateway) == "198.51.100.1"
    assert 'oifname "eth0" masquerade' in (runtime.ctx.etc_dir("firewall") / "ruleset.nft").read_text()
    bad = post(admin_client, "/network/settings", {**form, "wan_gateway": "203.0.113.1"}, form_path="/network/")
    assert bad.status_code == 400 and "gateway must be inside the WAN subnet" in bad.get_data(as_text=True)
    bad = post(admin_client, "/network/settings", {**form, "vlan_id": "x"}, form_path="/network/")
    assert error_of(bad.get_data(as_text=True), "vlan_id")
    assert post(admin_client, "/network/routes", {"destination": "10.50.0.0/16", "gateway": "10.20.0.254"},
                form_path="/network/").status_code == 302
    assert [str(r.destination) for r in runtime.store.current().config.network.routes] == ["10.50.0.0/16"]
    bad = post(admin_client, "/network/routes", {"destination": "10.50.0.1/16", "gateway": "10.20.0.254"},
               form_path="/network/")
    assert bad.status_code == 400 and error_of(bad.get_data(as_text=True), "destination")
    assert post(admin_client, "/network/routes/0/delete", {}, form_path="/network/").status_code == 302
    assert runtime.store.current().config.network.routes == []


@pytest.mark.slow
def test_internet_pages_in_a_real_browser(runtime, tmp_path):
    """Headless Chromium: the pages obey the CSP (no inline script/style), charts draw, forms work."""
    import threading

    from playwright.sync_api import expect, sync_playwright
    from werkzeug.serving import make_server

    from appliance.certs import ensure_certificate
    from tests.webadmin.helpers import ADMIN, admin_client_for
    from webadmin import create_app

    admin_client_for(runtime)  # wizard done
    proxy = runtime.services["proxy"]
    proxy.paths.access_log.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    proxy.paths.access_log.write_text("".join(
        f"{now - 3600 * (i % 5):.3f} 5 10.20.0.{i % 4} TCP_{'MEM_HIT' if i % 3 == 0 else 'MISS'}/200 {2000 * i} "
        f"GET http://site{i % 6}.example/ - HIER_NONE/- text/html\n" for i in range(40)))
    cert, key = ensure_certificate(tmp_path / "tls", "localhost", alt_names=("127.0.0.1",))
    httpd = make_server("127.0.0.1", 0, create_app(runtime), threaded=True, ssl_context=(str(cert), str(key)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    args = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            context = browser.new_context(ignore_https_errors=True, base_url=f"https://127.0.0.1:{httpd.server_port}",
                                          viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15000)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto("/login")
            page.fill("#f-login", ADMIN["login"])
            page.fill("#f-password", ADMIN["password"])
            page.click("button[type=submit]")
            page.goto("/proxy/usage")
            bars = page.locator("#top-sites rect")
            expect(bars).to_have_count(6)
            assert bars.first.bounding_box()["width"] > 100
            card = page.locator("section.card", has=page.locator("#top-sites")).bounding_box()
            chart = page.locator("#top-sites").bounding_box()
            assert chart["x"] + chart["width"] <= card["x"] + card["width"]  # the chart fits its card
            expect(page.locator("#hit-ratio")).to_contain_text("%")
            page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
            page.goto("/firewall/")
            page.screenshot(path=str(tmp_path / "firewall.png"), full_page=True)
            page.fill("#f-fwd_name", "nas")
            page.fill("#f-wan_port", "8080")
            page.fill("#f-to_address", "10.20.0.50")
            page.fill("#f-to_port", "80")
            page.click("text=Add port forward")
            expect(page.locator(".banner-success")).to_contain_text("Port forward added")
            expect(page.locator("#forward-0")).to_contain_text("10.20.0.50:80")
            page.goto("/network/")
            expect(page.locator("body")).to_contain_text("Lab mode")
            page.goto("/proxy/")
            page.fill("#f-blocked_domains", "casino.example")
            page.click("text=Save")
            expect(page.locator(".banner-success")).to_contain_text("Web proxy settings saved")
            context.close()
            browser.close()
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()
    assert runtime.store.current().config.proxy.blocked_domains == ["casino.example"]
    assert not [line for line in console if "Content Security Policy" in line or "Refused" in line], console


def test_a_change_awaiting_confirmation_is_shown_and_confirmed_from_any_page(admin_client, runtime):
    """The wait is the engine's (a LAN move, an admin port, the firewall): every admin page shows it."""
    from appliance.service import Service

    class Risky(Service):
        name, title = "risky", "Risky"

        def confirm_window(self, old, new):
            return 60.0 if new.system.company_name == "Moved" else None
    runtime.engine.services["risky"] = Risky(runtime.ctx)
    try:
        runtime.engine.update("admin", "move", lambda d: d["system"].update(company_name="Moved"))
    finally:
        del runtime.engine.services["risky"]
    page = admin_client.get("/users/").get_data(as_text=True)
    assert 'id="confirm-everywhere"' in page and "waiting for your confirmation" in page
    done = post(admin_client, "/firewall/confirm", {"next": "/users/"}, form_path="/users/")
    assert done.status_code == 302 and done.headers["Location"] == "/users/"
    assert runtime.engine.confirmation.pending() is None
    assert 'id="confirm-everywhere"' not in admin_client.get("/users/").get_data(as_text=True)
    elsewhere = post(admin_client, "/firewall/confirm", {"next": "//evil.example/"}, form_path="/users/")
    assert elsewhere.headers["Location"] == "/firewall/"  # only a path on this box
