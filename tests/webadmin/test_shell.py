"""The shell around the pages: dashboard, navigation from discovered blueprints, error pages."""
import sys
import textwrap

import pytest

import webadmin.blueprints
from appliance.service import Status
from tests.appliance.probe_service import ProbeService
from tests.webadmin.helpers import run_wizard, sign_in
from webadmin import create_app


def test_dashboard_shows_every_service_and_the_revision(admin_client, runtime):
    page = admin_client.get("/").get_data(as_text=True)
    for name, service in runtime.services.items():
        assert f'id="service-{name}"' in page and service.title in page
    rev = runtime.store.current()
    assert f"#{rev.id}</a>" in page and rev.summary in page and "10.20.0.1/24" in page and "Acme Ltd" in page
    if runtime.services:  # not running under a supervisor: the runtime reports every service down
        assert "badge-bad" in page and "appliance not running" in page


def test_dashboard_falls_back_to_each_service_and_survives_a_broken_one(admin_client, runtime, monkeypatch):
    class Broken(ProbeService):
        name = "broken"
        title = "Broken Thing"

        def status(self):
            raise RuntimeError("lost its socket")

    def no_supervisor_view():
        raise RuntimeError("supervisor unavailable")

    monkeypatch.setattr(runtime, "status", no_supervisor_view)
    monkeypatch.setitem(runtime.services, "probe", ProbeService(runtime.ctx))
    monkeypatch.setitem(runtime.services, "broken", Broken(runtime.ctx))
    runtime.services["probe"].running_name = "Acme"
    page = admin_client.get("/").get_data(as_text=True)
    probe = page[page.index('id="service-probe"'):]
    assert "badge-ok" in probe[:400] and "serving Acme" in probe and "<dt>reloads</dt><dd>0</dd>" in probe
    broken = page[page.index('id="service-broken"'):]
    assert "badge-bad" in broken[:400] and "lost its socket" in broken


def test_health_badges(admin_client, runtime, monkeypatch):
    healths = {"ok": "badge-ok", "degraded": "badge-warn", "down": "badge-bad", "disabled": "badge-muted"}
    services = {h: type(f"S{h}", (ProbeService,), {"name": h, "title": f"T-{h}"})(runtime.ctx) for h in healths}
    monkeypatch.setattr(runtime, "services", services)
    monkeypatch.setattr(runtime, "status", lambda: {h: Status(h, f"is {h}") for h in healths})
    page = admin_client.get("/").get_data(as_text=True)
    for health, badge in healths.items():
        card = page[page.index(f'id="service-{health}"'):][:400]
        assert f'<span class="badge {badge}">{health}</span>' in card


def test_navigation_is_grouped_in_order(admin_client):
    page = admin_client.get("/users/").get_data(as_text=True)
    nav = page[page.index('<nav class="sidebar"'):page.index("</nav>")]
    groups = [g for g in ("Overview", "Directory", "System") if g in nav]
    assert groups == ["Overview", "Directory", "System"]
    assert nav.index("Overview") < nav.index("Directory") < nav.index("System")
    assert '<a href="/users/" class="active" aria-current="page">Users</a>' in nav


@pytest.fixture
def extra_pages(tmp_path, monkeypatch):
    """Two page modules dropped next to the real ones: one good, one that fails to import."""
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "zz_probe.py").write_text(textwrap.dedent('''
        from flask import Blueprint, render_template_string
        from webadmin.core import admin_required
        bp = Blueprint("zz_probe", __name__, url_prefix="/zz-probe")
        NAV = [("Telephony", "Probe page", "zz_probe.index"), ("Telephony", "Ghost", "zz_probe.missing")]

        @bp.route("/")
        @admin_required
        def index():
            return render_template_string(
                '{% extends "base.html" %}{% block title %}Probe{% endblock %}{% block content %}ok{% endblock %}')
    '''))
    (folder / "zz_broken.py").write_text("import no_such_module_here\n")
    monkeypatch.setattr(webadmin.blueprints, "__path__", [*webadmin.blueprints.__path__, str(folder)])
    yield
    for name in ("webadmin.blueprints.zz_probe", "webadmin.blueprints.zz_broken"):
        sys.modules.pop(name, None)


def test_page_modules_are_discovered_and_a_broken_one_is_reported(extra_pages, runtime):
    client = create_app(runtime).test_client()
    run_wizard(client)
    sign_in(client)
    page = client.get("/zz-probe/").get_data(as_text=True)
    nav = page[page.index('<nav class="sidebar"'):page.index("</nav>")]
    assert "Probe page" in nav and "Ghost" not in nav  # an entry pointing nowhere is dropped
    assert nav.index("Directory") < nav.index("Telephony") < nav.index("System")
    dashboard = client.get("/").get_data(as_text=True)
    assert "zz_broken" in dashboard and "No module named" in dashboard


def test_not_found_and_method_not_allowed(admin_client):
    missing = admin_client.get("/no/such/page")
    assert missing.status_code == 404 and "Page not found" in missing.get_data(as_text=True)
    assert admin_client.get("/logout").status_code == 405


@pytest.mark.parametrize("data", [
    {"login": "\x00\xff", "full_name": "x" * 5000, "extension": "☎☎", "role": "", "language": "zz"},
    {"login": "ok", "full_name": "Ok", "extension": "12", "email": "a@b.c" * 100, "role": "staff"},
    {},
])
def test_garbage_forms_never_give_a_500(admin_client, data):
    from tests.webadmin.helpers import csrf_of
    token = csrf_of(admin_client, "/users/new")
    response = admin_client.post("/users/new", data={"csrf_token": token, **data})
    assert response.status_code == 400
    assert admin_client.post("/users/anna/edit", data={"csrf_token": token, **data}).status_code == 404
    wizard_gone = admin_client.post("/setup/", data={"csrf_token": token, **data})
    assert wizard_gone.status_code == 404
    login = admin_client.post("/login", data={"csrf_token": token, **data})
    assert login.status_code in (302, 401)


def test_an_internal_error_gives_a_clean_500_page(admin_client, runtime, monkeypatch):
    def broken_history(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(runtime.store, "history", broken_history)
    response = admin_client.get("/history/")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "Internal error" in page and "database on fire" not in page
    assert admin_client.get("/users/").status_code == 200


def test_switched_off_services_show_as_disabled(admin_client, runtime):
    document = runtime.store.current().document
    switchable = [n for n in runtime.services if isinstance(document.get(n), dict) and "enabled" in document[n]]
    if not switchable:
        pytest.skip("no service with its own section installed")
    name = switchable[0]

    def switch_off(doc):
        doc[name]["enabled"] = False

    runtime.engine.update("admin", f"switch off {name}", switch_off)
    page = admin_client.get("/").get_data(as_text=True)
    card = page[page.index(f'id="service-{name}"'):][:500]
    assert '<span class="badge badge-muted">disabled</span>' in card and "switched off" in card
