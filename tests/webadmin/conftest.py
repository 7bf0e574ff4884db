"""Fixtures for the web admin: the real Runtime (store, apply engine, services) and the Flask app."""
from __future__ import annotations

import re

import pytest

from appliance.runtime import Runtime
from webadmin import create_app

ADMIN = {"login": "admin", "full_name": "Ada Admin", "password": "correct-horse-1"}


@pytest.fixture
def runtime(tmp_path):
    """The real appliance Runtime on a fresh lab data directory, with the factory configuration applied."""
    rt = Runtime(tmp_path / "var", lab=True)
    rt.bootstrap()
    yield rt
    rt.store.close()


@pytest.fixture
def app(runtime):
    app = create_app(runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(client, path: str) -> str:
    """The CSRF token embedded in the form served at `path`."""
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF field on {path} (status {page.status_code})"
    return match.group(1)


def post(client, path: str, data: dict, form_path: str | None = None, **kwargs):
    """POST `data` with the CSRF token taken from the page showing the form."""
    token = csrf_of(client, form_path or path)
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def run_wizard(client, **overrides):
    data = {"login": ADMIN["login"], "full_name": ADMIN["full_name"], "password": ADMIN["password"],
            "password2": ADMIN["password"], "company_name": "Acme Ltd", "mail_domain": "acme.example",
            "lan_address": "10.20.0.1/24", "timezone": "Europe/Berlin", **overrides}
    return post(client, "/setup/", data)


def sign_in(client, login: str = ADMIN["login"], password: str = ADMIN["password"]):
    return post(client, "/login", {"login": login, "password": password})


@pytest.fixture
def admin_client(client):
    """A client after the wizard ran, signed in as the first admin."""
    assert run_wizard(client).status_code == 302
    assert sign_in(client).status_code == 302
    return client
