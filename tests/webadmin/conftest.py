"""Fixtures for the web admin: the real Runtime (store, apply engine, services) and the Flask app."""
from __future__ import annotations

import pytest

from appliance.runtime import Runtime
from tests.webadmin.helpers import admin_client_for
from webadmin import create_app


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


@pytest.fixture
def admin_client(app, runtime):
    """A client after the wizard ran, signed in as the first admin."""
    return admin_client_for(runtime, app)
