"""Pages with several forms (macros.html form_open): a form posts to its action with its own #fragment, so
the page re-shown because it failed lands on that form, and the error summary is inside that form (where
forms.js moves the focus), not at the top of the page."""
from __future__ import annotations

import re

from tests.webadmin.helpers import post


def form_html(page: str, key: str) -> str:
    """The <form id="form-KEY"> element of the page, up to its end."""
    found = re.search(rf'<form method="post" id="form-{key}"[^>]*>.*?</form>', page, re.S)
    assert found, f"no form-{key} on the page"
    return found.group(0)


def test_the_failed_form_of_a_multi_form_page_holds_the_summary(admin_client):
    page = admin_client.get("/vpn/").get_data(as_text=True)
    for key, action in (("tunnel", "/vpn/tunnels"), ("settings", "/vpn/settings")):
        assert f'action="{action}#form-{key}"' in form_html(page, key)
    assert 'id="error-summary"' not in page

    failed = post(admin_client, "/vpn/tunnels", {"name": "hq", "peer": "203.0.113.9", "remote_subnets": "10.99.0.0/33",
                                                  "auth": "psk"}, form_path="/vpn/")
    page = failed.get_data(as_text=True)
    assert failed.status_code == 400
    assert page.count('id="error-summary"') == 1
    tunnel = form_html(page, "tunnel")
    assert 'id="error-summary"' in tunnel and 'href="#f-remote_subnets"' in tunnel
    assert 'id="error-summary"' not in form_html(page, "settings")
    assert page.index('id="error-summary"') > page.index('id="form-tunnel"')


def test_the_system_page_lands_on_the_backup_form_that_failed(admin_client):
    failed = post(admin_client, "/system/backup", {"passphrase": "short", "passphrase2": "short"},
                  form_path="/system/")
    page = failed.get_data(as_text=True)
    assert failed.status_code == 400 and page.count('id="error-summary"') == 1
    backup = form_html(page, "backup")
    assert 'action="/system/backup#form-backup"' in backup and 'href="#f-passphrase"' in backup
    assert 'id="error-summary"' not in form_html(page, "firmware")

    refused = admin_client.post("/system/firmware", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', page).group(1)}, content_type="multipart/form-data")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Choose a firmware file" in form_html(page, "firmware")
    assert 'id="error-summary"' not in form_html(page, "backup")


def test_the_cti_and_dhcp_pages_land_on_the_form_that_failed(admin_client):
    cases = [("/cti/", "/cti/tokens", {"token_name": "crm<script>", "token_scope": "*"}, "token",
              ("settings", "account")),
             ("/lan/dhcp", "/lan/dhcp/reservations", {"mac": "not-a-mac", "ip": "10.20.0.50", "name": "printer"},
              "reservation", ("settings", "pool"))]
    for page_path, action, data, key, others in cases:
        failed = post(admin_client, action, data, form_path=page_path)
        page = failed.get_data(as_text=True)
        assert failed.status_code == 400 and page.count('id="error-summary"') == 1, page_path
        assert f'action="{action}#form-{key}"' in form_html(page, key)
        assert 'id="error-summary"' in form_html(page, key), page_path
        for other in others:
            assert 'id="error-summary"' not in form_html(page, other), (page_path, other)
