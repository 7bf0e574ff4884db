"""A form sent after the session ended is not lost: the sign-in that follows leads to a page that sends
it again (with the new session's token; the revision it was built on still checked), from the same address
only, once, within 15 minutes; passwords and files are never kept."""
from __future__ import annotations

import html
import re
import threading

import pytest

from appliance.certs import ensure_certificate
from tests.webadmin.helpers import ADMIN, admin_client_for, csrf_of
from tests.webadmin.test_auth import FakeClock
from tests.webadmin.test_browser import CHROMIUM_ARGS, TIMEOUT_MS
from webadmin import create_app
from webadmin.core import KEPT_FORMS_KEY, SESSIONS_KEY
from webadmin.server import AdminServer

FORM = {"company_name": "Acme & Sons <Ltd>", "hostname": "officebox", "mail_domain": "acme.example",
        "timezone": "Europe/Berlin", "lan_address": "10.20.0.1/24", "admin_email": ""}


def _expire(app, client, path: str) -> str:
    """The CSRF token of `path`'s form, then the session ends (idle) before the form is sent."""
    clock = FakeClock()
    app.extensions[SESSIONS_KEY].clock = clock
    client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
    client.post("/login", data={"login": ADMIN["login"], "password": ADMIN["password"],
                                "csrf_token": csrf_of(client, "/login")})
    token = csrf_of(client, path)
    clock.now += app.extensions[SESSIONS_KEY].IDLE_TIMEOUT + 1
    return token


def _expire_keeping(app, client, path: str) -> str:
    """As _expire, on the session already signed in: the registry's clock jumps past its idle timeout."""
    registry = app.extensions[SESSIONS_KEY]
    token = csrf_of(client, path)
    ahead = registry.clock() + registry.IDLE_TIMEOUT + 1
    registry.clock = lambda: ahead
    return token


def _sign_in_at(client, location: str):
    return client.post(location, data={"login": ADMIN["login"], "password": ADMIN["password"],
                                       "csrf_token": csrf_of(client, location)})


def _hidden(page: str) -> dict[str, str]:
    return {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def test_a_form_sent_after_the_session_ended_is_sent_again_after_signing_in(admin_client, app, runtime):
    token = _expire(app, admin_client, "/settings/")
    before = runtime.store.current_id()
    sent = admin_client.post("/settings/", data={**FORM, "csrf_token": token})
    assert sent.status_code == 302 and "/login?" in sent.headers["Location"] and "kept=" in sent.headers["Location"]
    login_page = admin_client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "what you sent is kept" in login_page
    assert runtime.store.current_id() == before  # nothing saved by the refused request
    signed = _sign_in_at(admin_client, sent.headers["Location"])
    assert signed.status_code == 302 and "/login/kept?" in signed.headers["Location"]
    page = admin_client.get(signed.headers["Location"]).get_data(as_text=True)
    assert 'action="/settings/"' in page and "&lt;Ltd&gt;" in page and "<Ltd>" not in page  # escaped
    fields = _hidden(page)
    assert fields["company_name"] == "Acme & Sons <Ltd>" and "base_revision" in fields
    again = admin_client.post("/settings/", data=fields)
    assert again.status_code == 302, again.get_data(as_text=True)[:2000]
    assert runtime.store.current().config.system.company_name == "Acme & Sons <Ltd>"
    assert admin_client.get(signed.headers["Location"]).status_code == 302  # taken once


def test_passwords_are_not_kept_and_another_address_cannot_take_the_form(admin_client, app):
    token = _expire(app, admin_client, "/users/new")
    sent = admin_client.post("/users/new", data={"login": "zoe", "full_name": "Zoe", "role": "staff",
                                                 "password": "zoe-password-1", "password2": "zoe-password-1",
                                                 "csrf_token": token})
    kept = re.search(r"kept=([A-Za-z0-9_-]+)", sent.headers["Location"]).group(1)
    store = app.extensions[KEPT_FORMS_KEY]
    assert store.take(kept, "192.0.2.9") is None  # not from another address
    path, fields, dropped = store.take(kept, "127.0.0.1")
    assert path == "/users/new" and dropped and ("login", "zoe") in fields
    assert not [k for k, _ in fields if "password" in k]
    assert store.take(kept, "127.0.0.1") is None  # once


def test_a_kept_form_expires(app):
    from webadmin.security import KeptForms
    clock = FakeClock()
    store = KeptForms(clock)
    token = store.keep("127.0.0.1", "/settings/", [("company_name", "x")], False)
    clock.now += KeptForms.TTL + 1
    assert not store.alive(token, "127.0.0.1") and store.take(token, "127.0.0.1") is None
    assert store.keep("127.0.0.1", "/settings/", [("notes", "x" * (KeptForms.MAX_BYTES + 1))], False) is None


@pytest.fixture
def served(runtime, tmp_path):
    """The app after the wizard, on the box's HTTPS server in a thread: (app, URL)."""
    app = create_app(runtime)
    admin_client_for(runtime, app)
    cert, key = ensure_certificate(tmp_path / "tls", "localhost", alt_names=("127.0.0.1",))
    httpd = AdminServer("127.0.0.1", 0, app, cert, key)
    httpd.prepare()
    thread = threading.Thread(target=httpd.serve, name="webadmin-test", daemon=True)
    thread.start()
    yield app, f"https://127.0.0.1:{httpd.port}"
    httpd.stop()
    thread.join(timeout=10)


@pytest.mark.slow
def test_in_a_browser_the_change_typed_before_the_session_ended_is_saved(served, runtime):
    from playwright.sync_api import expect, sync_playwright

    app, url = served
    clock = app.extensions[SESSIONS_KEY].clock = FakeClock()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(ignore_https_errors=True, base_url=url).new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto("/login")
            tab.fill("#f-login", ADMIN["login"])
            tab.fill("#f-password", ADMIN["password"])
            tab.click("button[type=submit]")
            tab.goto("/settings/")
            tab.fill("#f-company_name", "Acme Mobile")
            clock.now += app.extensions[SESSIONS_KEY].IDLE_TIMEOUT + 1  # the session ends while the admin types
            tab.click("main button:has-text(\"Save\")")
            expect(tab.locator("body")).to_contain_text("what you sent is kept")
            tab.fill("#f-login", ADMIN["login"])
            tab.fill("#f-password", ADMIN["password"])
            tab.click("button[type=submit]")
            expect(tab.locator("h1")).to_have_text("Send it again")
            tab.click("main button:has-text(\"Send it again\")")
            expect(tab.locator("body")).to_contain_text("Settings saved.")
        finally:
            browser.close()
    assert runtime.store.current().config.system.company_name == "Acme Mobile"


def test_with_two_factor_sign_in_the_kept_form_follows_the_code_step(admin_client, app):
    from tests.webadmin.test_totp import enrol, next_code
    totp, _ = enrol(admin_client)
    token = _expire_keeping(app, admin_client, "/settings/")
    sent = admin_client.post("/settings/", data={**FORM, "csrf_token": token})
    password = _sign_in_at(admin_client, sent.headers["Location"])
    assert password.headers["Location"].startswith("/login/code") and "kept=" in password.headers["Location"]
    code = admin_client.post(password.headers["Location"], data={
        "code": next_code(totp), "csrf_token": csrf_of(admin_client, password.headers["Location"])})
    assert code.status_code == 302 and "/login/kept?" in code.headers["Location"]
    assert _hidden(admin_client.get(code.headers["Location"]).get_data(as_text=True))["company_name"] == \
        FORM["company_name"]
