"""First-boot wizard: only while the box is not initialized; one revision creating the first admin."""
import pytest

from appliance.apply import ConfigError
from appliance.users import verify_password
from tests.appliance.probe_service import ProbeService
from tests.webadmin.helpers import ADMIN, csrf_of, post, run_wizard, sign_in
from webadmin.blueprints.setup import _apply


def test_new_box_sends_every_page_to_the_wizard(client):
    for path in ("/", "/users/", "/history/", "/login", "/no-such-page"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/setup/"), path
    page = client.get("/setup/").get_data(as_text=True)
    assert "Welcome to OfficeBox" in page and 'name="lan_address"' in page and "Europe/Paris" in page


def test_wizard_creates_the_admin_in_one_revision(client, runtime):
    before = runtime.store.current_id()
    response = run_wizard(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    rev = runtime.store.current()
    assert rev.id == before + 1 and rev.author == ADMIN["login"] and rev.summary == "first-boot setup"
    config = rev.config
    assert config.system.initialized and config.system.company_name == "Acme Ltd"
    assert config.system.mail_domain == "acme.example" and config.system.timezone == "Europe/Berlin"
    assert str(config.network.lan.address) == "10.20.0.1/24"
    admin = config.user(ADMIN["login"])
    assert admin.role == "admin" and admin.full_name == ADMIN["full_name"] and admin.enabled
    assert admin.password_hash.startswith("$argon2") and verify_password(admin.password_hash, ADMIN["password"])
    assert "$argon2" not in rev.diff  # the history diff masks the hash


def test_wizard_is_gone_once_done(client, runtime):
    token = csrf_of(client, "/setup/")
    run_wizard(client)
    assert client.get("/setup/").status_code == 404
    again = client.post("/setup/", data={"csrf_token": token, "login": "intruder", "password": "x" * 12,
                                         "password2": "x" * 12, "full_name": "I", "company_name": "Evil",
                                         "mail_domain": "evil.example", "lan_address": "10.0.0.1/24",
                                         "timezone": "UTC"})
    assert again.status_code == 404
    assert runtime.store.current().config.user("intruder") is None


def test_wizard_field_errors_change_nothing(client, runtime):
    before = runtime.store.current_id()
    cases = {
        "password2": {"password2": "something-else"},
        "password": {"password": "short", "password2": "short"},
        "lan_address": {"lan_address": "10.20.0.0/24"},
        "timezone": {"timezone": "Mars/Olympus"},
        "full_name": {"full_name": "   "},
    }
    for field, bad in cases.items():
        response = run_wizard(client, **bad)
        page = response.get_data(as_text=True)
        assert response.status_code == 400, field
        assert f'id="e-{field}"' in page, field
    # checked by the real schema through the apply engine
    for field, bad, message in (("mail_domain", {"mail_domain": "not a domain"}, "enter a domain name"),
                                ("login", {"login": "9bad login"}, "lower-case letters"),
                                ("lan_address", {"lan_address": "10.1.2.3"}, "with its prefix")):
        response = run_wizard(client, **bad)
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and f'id="e-{field}"' in page and message in page, field
    assert runtime.store.current_id() == before
    assert not runtime.store.current().config.system.initialized


def test_wizard_keeps_entered_values_but_never_passwords(client):
    page = run_wizard(client, company_name="Kept &amp; Co", password2="mismatch-123").get_data(as_text=True)
    assert 'value="Kept &amp;amp; Co"' in page  # escaped, kept
    assert ADMIN["password"] not in page and "mismatch-123" not in page


def test_wizard_without_csrf_token_is_refused(client, runtime):
    client.get("/setup/")
    response = client.post("/setup/", data={"login": "admin", "password": "x" * 12})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert not runtime.store.current().config.system.initialized


def test_login_page_after_setup(client):
    run_wizard(client)
    page = client.get("/login")
    assert page.status_code == 200 and "OfficeBox is set up" in page.get_data(as_text=True)
    assert post(client, "/login", {"login": "admin", "password": ADMIN["password"]}).status_code == 302


def test_a_refused_apply_is_shown_and_recorded(client, runtime, monkeypatch):
    monkeypatch.setitem(runtime.services, "probe", ProbeService(runtime.ctx))
    before = runtime.store.current_id()
    response = run_wizard(client, company_name="BADCHECK")  # the probe's daemon check refuses this name
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "the daemon refused its configuration" in page
    assert runtime.store.current_id() == before and not runtime.store.current().config.system.initialized
    failed = runtime.store.history()[0]
    assert failed.state == "failed" and failed.id == before + 1
    assert run_wizard(client).status_code == 302
    sign_in(client)
    history = client.get("/history/").get_data(as_text=True)
    assert "badge-bad" in history and "the daemon refused its configuration" in history
    detail = client.get(f"/history/{failed.id}").get_data(as_text=True)
    assert "Roll back" not in detail
    refused = post(client, f"/history/{failed.id}/rollback", {}, form_path="/history/")
    assert "was never applied" in client.get(refused.headers["Location"]).get_data(as_text=True)


def test_only_one_wizard_wins(app, runtime):
    first, second = app.test_client(), app.test_client()
    token = csrf_of(second, "/setup/")  # both opened the wizard before either submitted it
    assert run_wizard(first).status_code == 302
    late = second.post("/setup/", data={"csrf_token": token})
    assert late.status_code == 404
    with app.test_request_context(), pytest.raises(ConfigError, match="set up meanwhile"):
        _apply({"login": "late", "full_name": "Late", "company_name": "X", "mail_domain": "x.example",
                "lan_address": "10.0.0.1/24", "timezone": "UTC"}, "hash")
    assert runtime.store.current().config.user("late") is None


def test_wizard_on_a_box_configuration_passes_every_service(tmp_path):
    """Not lab mode: every service enabled by default must accept the wizard's settings (validate, render, check)."""
    from appliance.runtime import Runtime
    from tests.webadmin.helpers import admin_client_for

    box = Runtime(tmp_path / "box", lab=False)
    try:
        box.bootstrap()
        admin_client_for(box)
        rev = box.store.current()
        assert rev.summary == "first-boot setup" and rev.state == "applied"
        assert rev.config.system.initialized and str(rev.config.network.lan.address) == "10.20.0.1/24"
    finally:
        box.store.close()


def test_the_wizards_lan_rule_is_the_schemas_for_every_writer(runtime):
    """The CLI, a restore and every page go through the engine: they obey the wizard's LAN check."""
    doc = runtime.store.current().document
    for bad, message in (("10.20.0.0/24", "is not a host address"), ("10.20.0.255/24", "is not a host address"),
                         ("10.0.0.1/31", "between /8 and /30"), ("10.0.0.1", "with its prefix")):
        doc["network"]["lan"]["address"] = bad
        with pytest.raises(ConfigError) as err:
            runtime.engine.apply(doc, "console", "bad LAN")
        assert message in err.value.errors["network.lan.address"], bad
