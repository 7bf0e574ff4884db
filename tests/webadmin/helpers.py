"""Helpers for web admin tests, usable from any test folder:

    from tests.webadmin.helpers import admin_client_for, post
    client = admin_client_for(runtime)          # wizard done, signed in as ADMIN
    response = post(client, "/dhcp/", {"range_start": "10.0.0.50"})   # adds the CSRF token
"""
from __future__ import annotations

import re

from webadmin import create_app
from webadmin.core import RUNTIME_KEY
from webadmin.security import SetupCode

ADMIN = {"login": "admin", "full_name": "Ada Admin", "password": "correct-horse-1"}
# Two staff with phones, the usual pair of the PBX page tests.
ALICE_AND_BOB = [
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1"},
    {"login": "bob", "full_name": "Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
]


def csrf_of(client, path: str) -> str:
    """The CSRF token embedded in the page served at `path`."""
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF field on {path} (status {page.status_code})"
    return match.group(1)


def page(client, path: str, status: int = 200) -> str:
    """The page's text, after checking its status (the start of the page in the message if not)."""
    resp = client.get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)[:2000]
    return resp.get_data(as_text=True)


def post(client, path: str, data: dict, form_path: str | None = None, **kwargs):
    """POST `data` with the CSRF token taken from the page showing the form (default: `path`)."""
    token = csrf_of(client, form_path or path)
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def setup_code_for(client) -> str:
    """A fresh one-time setup code, as the box prints on its console at start."""
    return SetupCode(client.application.extensions[RUNTIME_KEY].ctx.data_dir).issue()


def run_wizard(client, **overrides):
    data = {"setup_code": setup_code_for(client),
            "login": ADMIN["login"], "full_name": ADMIN["full_name"], "password": ADMIN["password"],
            "password2": ADMIN["password"], "company_name": "Acme Ltd", "mail_domain": "acme.example",
            "lan_address": "10.20.0.1/24", "timezone": "Europe/Berlin", **overrides}
    return post(client, "/setup/", data)


def sign_in(client, login: str = ADMIN["login"], password: str = ADMIN["password"]):
    return post(client, "/login", {"login": login, "password": password})


def admin_client_for(runtime, app=None):
    """A Flask test client on `runtime` after the first-boot wizard, signed in as ADMIN."""
    app = app or create_app(runtime)
    app.config["TESTING"] = True
    client = app.test_client()
    assert run_wizard(client).status_code == 302, "first-boot wizard failed"
    assert sign_in(client).status_code == 302, "sign-in failed"
    return client


def crawl(client, app, limit: int = 400, check=None) -> dict[str, int]:
    """{path: status} of every GET route without parameters and every link found on those pages (bounded);
    `check(path, page)` sees each HTML page."""
    routes = sorted(r.rule for r in app.url_map.iter_rules()
                    if "GET" in r.methods and not r.arguments and r.endpoint not in ("static", "auth.logout")
                    and not r.endpoint.startswith("setup."))  # the wizard is gone once the box is set up
    seen: dict[str, int] = {}
    queue = list(routes)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        response = client.get(path)
        seen[path] = response.status_code
        if response.mimetype == "text/html":
            page = response.get_data(as_text=True)
            if check is not None:
                check(path, page)
            queue.extend(link for link in re.findall(r'href="(/[^"#?]*)', page)
                         if link not in seen and not link.startswith("/static/"))
    return seen
