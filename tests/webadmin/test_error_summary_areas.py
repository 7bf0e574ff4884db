"""One wrong value on an edit form of each area: the page answers 400 with the error summary at the top,
its entry links to the field, the field points at its message (aria-describedby), what was typed is shown
again and no revision was made."""
from __future__ import annotations

import collections
import re

import pytest

from services.pbx.config import FeatureCodes
from tests.webadmin.helpers import ADMIN, post
from tests.webadmin.test_error_summary import summary_links
from tests.webadmin.test_layout_a11y import EDIT_PAGES, MADE, get_routes

PSK = "Branch0ffice-Shared-Key-2026"
# area: (setup posts, form page, POST path, data, the field that fails, a typed value shown again)
CASES = {
    "firewall": ([], "/firewall/", "/firewall/rules",
                 {"name": "Web server", "action": "accept", "source_zone": "wan", "destination": "box",
                  "protocol": "tcp", "ports": "443", "sources": "10.0.0.300/8"}, "sources", "Web server"),
    "vpn": ([], "/vpn/", "/vpn/tunnels",
            {"name": "branch", "peer": "203.0.113.9", "local_subnets": "10.20.0.0/24",
             "remote_subnets": "10.99.0.0/33", "psk": PSK, "dpd_delay": "30"}, "remote_subnets", "203.0.113.9"),
    "cti": ([], "/cti/", "/cti/tokens", {"token_name": "crm<script>", "token_scope": "*"}, "token_name",
            "crm&lt;script&gt;"),
    "voice": ([], "/voice/moh", "/voice/moh/classes", {"name": "quiet music!"}, "name", "quiet music!"),
    "attendant": ([("/attendant/new", {"name": "main"}, "/attendant/")], "/attendant/main", "/attendant/main",
                  {"timeout": "99", "attempts": "3", "permission": "internal", "fallback": "voicemail:777"},
                  "timeout", "voicemail:777"),
    "conference": ([], "/conference/new", "/conference/new",
                   {"number": "8x", "name": "board", "title": "Board meeting", "max_participants": "10",
                    "alone": "music", "mute_key": "*"}, "number", "Board meeting"),
    "features": ([], "/features/", "/features/", {**FeatureCodes().model_dump(), "pickup": "8x"}, "pickup", "8x"),
    "account": ([], "/account/", "/account/",
                {"current_password": ADMIN["password"], "password": "short", "password2": "short"}, "password", None),
    "mail": ([], "/mail/aliases", "/mail/aliases",
             {"name": "sales team", "targets": "nobody-here", "description": "Sales desk"}, "name", "Sales desk"),
    "proxy": ([], "/proxy/", "/proxy/settings",
              {"enabled": "on", "cache_mb": "lots", "memory_cache_mb": "64", "max_object_mb": "16",
               "blocked_domains": "games.example", "extra_networks": "10.8.0.0/24"}, "cache_mb", "games.example"),
    "lan": ([], "/lan/dns", "/lan/dns/records", {"name": "nas", "type": "A", "value": "not-an-ip", "ttl": "600"},
            "value", "not-an-ip"),
    "network": ([], "/network/", "/network/routes", {"destination": "10.50.0.0/33", "gateway": "10.20.0.254"},
                "destination", "10.20.0.254"),
    "ntp": ([], "/ntp/", "/ntp/", {"enabled": "on", "pools": "2.debian.pool.ntp.org", "servers": "time server!"},
            "servers", "2.debian.pool.ntp.org"),
    "recording": ([], "/pbx/recording/", "/pbx/recording/",
                  {"extensions": "201", "notice": "tone", "retention_days": "-4", "max_disk_mb": "500"},
                  "retention_days", "-4"),
    "accounting": ([], "/accounting/", "/accounting/",
                   {"currency": "EUR", "tariffs_text": "06;twelve cents", "budgets_text": ""}, "tariffs_text",
                   "06;twelve cents"),
    "users": ([], "/users/new", "/users/new",
              {"login": "bob", "full_name": "Bob Durand", "extension": "22222222", "password": "bobs-password-1",
               "password2": "bobs-password-1", "role": "staff"}, "extension", "Bob Durand"),
    "system": ([], "/system/", "/system/backup", {"passphrase": "short", "passphrase2": "short"}, "passphrase",
               None),
    "settings": ([], "/settings/", "/settings/",
                 {"company_name": "Acme Ltd", "hostname": "officebox", "mail_domain": "not a domain",
                  "timezone": "Europe/Berlin", "lan_address": "10.20.0.1/24", "admin_email": ""},
                 "mail_domain", "not a domain"),
}


@pytest.mark.parametrize("area", sorted(CASES))
def test_a_wrong_value_shows_the_summary_links_the_field_and_saves_nothing(admin_client, runtime, area):
    setup, form_path, path, data, field, typed = CASES[area]
    for setup_path, setup_data, setup_form in setup:
        assert post(admin_client, setup_path, setup_data, setup_form).status_code == 302
    before = runtime.store.current_id()
    response = post(admin_client, path, data, form_path)
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert field in summary_links(page), page
    assert f'id="f-{field}"' in page and f'id="e-{field}"' in page
    assert f'aria-describedby="e-{field}' in page
    if typed is not None:
        assert typed in page
    assert runtime.store.current_id() == before


AREAS = ("/firewall", "/vpn", "/cti", "/voice", "/attendant", "/conference", "/features", "/account", "/mail", "/proxy",
         "/lan", "/network", "/ntp", "/pbx/recording", "/accounting", "/users", "/system", "/settings")


def test_no_page_of_these_areas_repeats_an_id(admin_client):
    """A summary's link and a label reach one field only: two forms of a page posting the same name have their
    own ids (the backup and restore passphrases, a VPN device's and an IKEv2 account's user...)."""
    for path, data, form_path in MADE:
        assert post(admin_client, path, data, form_path).status_code == 302, path
    repeated, seen = {}, 0
    for path in [*get_routes(admin_client.application), *EDIT_PAGES]:
        response = admin_client.get(path)
        if not path.startswith(AREAS) or response.status_code != 200 or response.mimetype != "text/html":
            continue
        seen += 1
        ids = collections.Counter(re.findall(r'\sid="([^"]+)"', response.get_data(as_text=True)))
        repeated.update({path: sorted(i for i, n in ids.items() if n > 1)} if max(ids.values()) > 1 else {})
    assert seen > 25 and not repeated, (seen, repeated)


def test_refused_settings_keep_the_ticks_as_sent(admin_client, runtime):
    """A refused settings form shows its checkboxes as they were sent, not as saved; another form of the page
    that fails leaves them as saved."""
    checked = 'name="masquerade" id="f-masquerade" checked'
    sent = {"admin_from_wan": "", "vpn_interfaces": "wg0", "vpn_networks": "", "sip_peers": "",
            "new_connections_per_second": "20", "burst": "many", "confirm_timeout": "60", "lan_box": "on"}
    assert checked in admin_client.get("/firewall/").get_data(as_text=True)
    page = post(admin_client, "/firewall/settings", sent, "/firewall/").get_data(as_text=True)
    assert "burst" in summary_links(page) and 'value="many"' in page
    assert checked not in page and 'name="lan_box" aria-label="LAN may use the box" checked' in page
    assert 'name="lan_internet" aria-label="LAN may reach the Internet">' in page
    rule = post(admin_client, "/firewall/rules", {"name": "x", "action": "accept", "source_zone": "wan",
                                                   "destination": "box", "protocol": "tcp", "ports": "99999"},
                "/firewall/").get_data(as_text=True)
    assert "ports" in summary_links(rule) and checked in rule
    assert runtime.config.firewall.masquerade
