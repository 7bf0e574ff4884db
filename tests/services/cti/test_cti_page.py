"""The web admin's CTI page: settings are real revisions, application accounts are added with an
argon2 hash (the password is never shown again) and removed, bad values show field errors, and the
sessions figure comes from the running server through its typed client (appliance/clients.py); JSON
API tokens are shown once, kept as SHA-256, work against the running server and stop when revoked."""
from __future__ import annotations

import hashlib
import http.client
import re

from appliance.users import verify_password
from tests.webadmin.conftest import runtime  # noqa: F401  (fixture: the real Runtime, lab data dir)
from tests.webadmin.helpers import admin_client_for, post

from .conftest import CtiRunner
from .cstaclient import CstaClient

SETTINGS = {"enabled": "on", "tcp_port": "2555", "tls_port": "2556", "max_sessions": "300", "max_monitors": "50",
            "requests_per_second": "20", "session_duration": "120", "api_port": "2558",
            "api_requests_per_second": "10", "desk_token_minutes": "20", "crm_url": ""}


def test_cti_settings_accounts_and_the_sessions_figure(runtime):  # noqa: F811
    client = admin_client_for(runtime)
    page = client.get("/cti/").get_data(as_text=True)
    assert 'href="/cti/"' in page and "Application accounts" in page
    assert post(client, "/cti/", {**SETTINGS, "max_sessions": "many"}).status_code == 400
    bad = post(client, "/cti/", {**SETTINGS, "max_sessions": "0"})
    assert bad.status_code == 400 and 'id="e-max_sessions"' in bad.get_data(as_text=True)
    assert post(client, "/cti/", SETTINGS).status_code == 302
    cti = runtime.store.current().config.cti
    assert cti.enabled and cti.max_sessions == 300 and cti.session_duration == 120
    assert cti.lab_tcp_port == 12555  # the lab ports are not on the form

    extensions = [u.extension for u in runtime.store.current().config.users if u.extension]
    scope = ",".join(extensions) or "*"
    added = post(client, "/cti/accounts", {"name": "tapi", "scope": scope, "password": "tapi-secret-1",
                                           "password2": "tapi-secret-1"})
    assert added.status_code == 302
    [account] = runtime.store.current().config.cti.accounts
    assert verify_password(account.password_hash, "tapi-secret-1") and "tapi-secret-1" not in account.password_hash
    page = client.get("/cti/").get_data(as_text=True)
    assert 'id="account-tapi"' in page and "tapi-secret-1" not in page
    again = post(client, "/cti/accounts", {"name": "tapi", "scope": "*", "password": "another-pass",
                                           "password2": "another-pass"})
    assert again.status_code == 400 and "exists already" in again.get_data(as_text=True)
    assert post(client, "/cti/accounts", {"name": "crm", "scope": "999", "password": "crm-secret-12",
                                          "password2": "crm-secret-12"}).status_code == 400  # not an extension
    assert post(client, "/cti/accounts", {"name": "x", "scope": "*", "password": "short",
                                          "password2": "short"}).status_code == 400

    config = runtime.store.current().config.model_copy(deep=True)
    config.cti.lab_tcp_port, config.cti.lab_tls_port = 0, 0
    with CtiRunner(runtime.ctx, config, runtime.services["cti"]) as cti_run:
        with CstaClient(cti_run.tcp) as c:
            assert c.start_session("tapi", "tapi-secret-1").name == "StartApplicationSessionPosResponse"
            page = client.get("/cti/").get_data(as_text=True)
            assert '<td id="cti-sessions">1</td>' in page
    assert post(client, "/cti/accounts/0/delete", {}).status_code == 302
    assert runtime.store.current().config.cti.accounts == []


def _me(port: int, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_api_tokens_are_shown_once_hashed_and_revoked(runtime):  # noqa: F811
    client = admin_client_for(runtime)
    assert post(client, "/cti/", {**SETTINGS, "crm_url": "https://crm.example/"}).status_code == 400  # no {number}
    assert post(client, "/cti/", {**SETTINGS, "crm_url": "https://crm.example/?q={number}"}).status_code == 302
    assert runtime.store.current().config.cti.crm_url == "https://crm.example/?q={number}"
    assert post(client, "/cti/tokens", {"token_name": "crm", "token_scope": ""}).status_code == 400
    assert post(client, "/cti/tokens", {"token_name": "crm", "token_scope": "999"}).status_code == 400
    made = post(client, "/cti/tokens", {"token_name": "crm", "token_scope": "*"})
    assert made.status_code == 200
    token = re.search(r'id="cti-token-value">(obx_[^<]+)<', made.get_data(as_text=True))[1]
    [entry] = runtime.store.current().config.cti.api_tokens
    assert entry.token_hash == hashlib.sha256(token.encode()).hexdigest() and entry.scope == ["*"]
    page = client.get("/cti/").get_data(as_text=True)
    assert token not in page and "<title>CTI server · OfficeBox</title>" in page  # shown once
    assert post(client, "/cti/tokens", {"token_name": "crm", "token_scope": "*"}).status_code == 400  # same name

    config = runtime.store.current().config.model_copy(deep=True)
    config.cti.lab_tcp_port, config.cti.lab_tls_port, config.cti.lab_api_port = 0, 0, 0
    with CtiRunner(runtime.ctx, config, runtime.services["cti"]) as cti_run:
        port = cti_run.svc.server.ports["api"]
        assert _me(port, token) == 200
        assert post(client, "/cti/tokens/0/delete", {}).status_code == 302
        revoked = runtime.store.current().config.model_copy(deep=True)
        revoked.cti.lab_tcp_port, revoked.cti.lab_tls_port, revoked.cti.lab_api_port = 0, 0, 0
        cti_run.call(cti_run.svc.reload(revoked))
        assert _me(port, token) == 401
