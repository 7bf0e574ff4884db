"""First-boot wizard: only while the box is not initialized; one revision creating the first admin."""
import re
from html.parser import HTMLParser

import pytest

from appliance.apply import ConfigError
from appliance.users import verify_password
from services.pbx.dialplan import select_route
from tests.appliance.probe_service import ProbeService
from tests.webadmin.helpers import ADMIN, csrf_of, post, run_wizard, setup_code_for, sign_in
from webadmin.blueprints import setup
from webadmin.blueprints.setup import _apply
from webadmin.security import SetupCode


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


# -- the guided setup, step by step ---------------------------------------------------------------------
class _Form(HTMLParser):
    """The fields of the page's setup form as a browser would send them (checked boxes, selected options)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._option: str | None = None  # the select whose <option> without a value takes its text

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") != "checkbox":
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "input" and a.get("name") and "checked" in a:
            self.fields[a["name"]] = "on"
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select:
            if "selected" in a or self._select not in self.fields:
                self.fields[self._select] = a.get("value", "")
                self._option = None if "value" in a else self._select

    def handle_data(self, data):
        if self._option:
            self.fields[self._option] = data.strip()
            self._option = None

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def fields_of(page: str) -> dict[str, str]:
    parser = _Form()
    parser.feed(page)
    return parser.fields


def step(client, page: str, go: str = "next", **typed):
    """Press the button `go` of the step shown in `page` with `typed` filled in (None: a box unticked)."""
    data = fields_of(page)
    for name, value in typed.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    response = client.post("/setup/", data={**data, "go": go})
    return response, response.get_data(as_text=True)


def shown_step(page: str) -> str:
    return re.search(r'name="step" value="([a-z]+)"', page).group(1)


PEOPLE = {"u0_full_name": "Anna Berg", "u0_login": "Anna", "u0_extension": "201",
          "u1_full_name": "Ben Carter", "u1_login": "ben", "u1_extension": "202"}
STATIC_WAN = {"wan_mode": "static", "wan_address": "203.0.113.10/24", "wan_gateway": "203.0.113.1",
              "wan_dns": "9.9.9.9, 149.112.112.112"}


def box_step(client, **overrides):
    page = client.get("/setup/").get_data(as_text=True)
    return step(client, page, setup_code=setup_code_for(client), login=ADMIN["login"], full_name=ADMIN["full_name"],
                company_name="Acme Ltd", mail_domain="acme.example", timezone="Europe/Berlin", **overrides)


def to_people(client):
    response, page = box_step(client)
    assert response.status_code == 200 and shown_step(page) == "internet", page
    response, page = step(client, page, lan_address="10.20.0.1/24", **STATIC_WAN)
    assert response.status_code == 200 and shown_step(page) == "people", page
    return page


def test_guided_setup_writes_every_step_in_one_revision(client, runtime):
    before = runtime.store.current_id()
    page = client.get("/setup/").get_data(as_text=True)
    assert "Step 1 of 5" in page and 'name="password"' not in page  # the password comes on the summary
    page = to_people(client)
    assert "Step 3 of 5" in page and page.count('name="u2_login"') == 1  # three empty rows
    response, page = step(client, page, **PEOPLE)
    assert response.status_code == 200 and shown_step(page) == "trunk", page
    response, page = step(client, page, trunk_template="sipgate")  # picked: its settings to complete
    assert shown_step(page) == "trunk" and 'value="sipgate.de"' in page and "are filled in" in page
    response, page = step(client, page, t_username="1234567e0", t_from_number="+4930123456")
    assert response.status_code == 200 and shown_step(page) == "summary", page
    for shown in ("Anna Berg", "anna", "201", "Ben Carter", "203.0.113.1", "sipgate.de:5060", "1234567e0"):
        assert shown in page, shown
    assert 'name="t_password"' in page and runtime.store.current_id() == before  # nothing written yet
    response, page = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"],
                          t_password="trunk-secret-9")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login"), page
    rev = runtime.store.current()
    assert rev.id == before + 1 and rev.summary == "first-boot setup" and rev.author == ADMIN["login"]
    config = rev.config
    wan = config.network.wan
    assert (wan.mode, str(wan.address), str(wan.gateway)) == ("static", "203.0.113.10/24", "203.0.113.1")
    assert [str(d) for d in wan.dns] == ["9.9.9.9", "149.112.112.112"]
    assert str(config.network.lan.address) == "10.20.0.1/24"
    assert verify_password(config.user(ADMIN["login"]).password_hash, ADMIN["password"])
    anna, ben = config.user("anna"), config.user("ben")
    assert (anna.full_name, anna.extension, anna.role) == ("Anna Berg", "201", "staff")
    assert (ben.full_name, ben.extension, ben.role) == ("Ben Carter", "202", "staff")
    assert anna.password_hash is None and len(anna.sip_secret) == 20 and anna.sip_secret != ben.sip_secret
    [trunk] = config.pbx.trunks
    assert (trunk.name, trunk.host, trunk.port, trunk.transport) == ("sipgate", "sipgate.de", 5060, "udp")
    assert trunk.registration and trunk.username == "1234567e0" and trunk.auth_password == "trunk-secret-9"
    assert trunk.from_number == "+4930123456"
    assert "trunk-secret-9" not in rev.diff and anna.sip_secret not in rev.diff
    [route] = config.pbx.routes  # outside calls go out on the new line (ticked by default)
    assert (route.prefix, route.trunks) == ("", ["sipgate"])
    assert select_route("030123456", config.pbx) == route and select_route("+4930123456", config.pbx) == route


def test_a_trunk_without_the_outside_calls_box_gets_no_route(client, runtime):
    page = to_people(client)
    _, page = step(client, page, "skip")
    _, page = step(client, page, trunk_template="twilio")
    assert re.search(r'<input[^>]*name="t_route"[^>]*checked', page), "the box is ticked by default"
    _, page = step(client, page, t_host="office.pstn.twilio.com", t_route=None)
    assert shown_step(page) == "summary" and "no route yet" in page
    response, page = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 302, page
    config = runtime.store.current().config
    assert [t.name for t in config.pbx.trunks] == ["twilio"] and config.pbx.routes == []


def test_a_route_for_every_number_gets_the_new_trunk_as_its_backup():
    pbx = {"routes": [{"name": "outside", "prefix": "", "trunks": ["old"]}, {"name": "mobile", "prefix": "07",
                                                                            "trunks": ["gsm"]}]}
    setup._route_outside_calls(pbx, "new")
    setup._route_outside_calls(pbx, "new")
    assert pbx["routes"][0]["trunks"] == ["old", "new"] and len(pbx["routes"]) == 2
    pbx = {"routes": [{"name": "outside", "prefix": "00", "trunks": ["old"]}]}
    setup._route_outside_calls(pbx, "new")
    assert pbx["routes"][1] == {"name": "outside-2", "prefix": "", "trunks": ["new"]}


def test_an_ip_authenticated_trunk_asks_no_password(client, runtime):
    page = to_people(client)
    _, page = step(client, page, "skip")
    _, page = step(client, page, trunk_template="twilio")
    assert 'name="t_registration"' in page and "checked" not in re.search(
        r'<input[^>]*name="t_registration"[^>]*>', page).group(0)
    response, page = step(client, page)
    assert response.status_code == 400 and 'id="e-t_host"' in page  # Twilio's host is each customer's own
    response, page = step(client, page, t_host="acme.pstn.twilio.com")
    assert shown_step(page) == "summary" and 'name="t_password"' not in page
    response, _ = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 302
    [trunk] = runtime.store.current().config.pbx.trunks
    assert (trunk.name, trunk.host, trunk.registration, trunk.username, trunk.auth_password,
            trunk.number_format) == ("twilio", "acme.pstn.twilio.com", False, "", "", "e164")


@pytest.mark.parametrize("typed, field, message", [
    ({"u0_extension": "2x"}, "u0_extension", "use 2 to 6 digits"),
    ({"u1_login": "anna"}, "u1_login", "is already used by another user"),
    ({"u1_login": "admin"}, "u1_login", "is already used by another user"),
    ({"u1_extension": ""}, "u1_extension", "this field is required"),
])
def test_a_bad_user_row_is_shown_by_its_field(client, runtime, typed, field, message):
    before = runtime.store.current_id()
    page = to_people(client)
    response, page = step(client, page, **{**PEOPLE, **typed})
    assert response.status_code == 400 and shown_step(page) == "people"
    error = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    assert error and message in error.group(1), page
    assert f'href="#f-{field}"' in page  # in the summary at the top too
    assert 'value="Ben Carter"' in page and 'value="201"' in page or typed == {"u0_extension": "2x"}
    for name, value in typed.items():
        assert re.search(rf'name="{name}" type="text" value="{value}"', page) or not value, name
    assert 'id="e-login"' not in page  # the admin's side of a clash is not repeated on this step
    assert runtime.store.current_id() == before and not runtime.store.current().config.system.initialized


@pytest.mark.parametrize("typed, field, message", [
    ({"wan_gateway": "198.51.100.1"}, "wan_gateway", "inside the WAN subnet"),
    ({"wan_gateway": "not-a-gateway"}, "wan_gateway", "IPv4"),
    ({"wan_gateway": ""}, "wan_gateway", "required with a fixed address"),
    ({"wan_address": "203.0.113.10"}, "wan_address", "with its prefix"),
    ({"wan_dns": "9.9.9.9, nine"}, "wan_dns", "IPv4"),
    ({"lan_address": "10.20.0.0/24"}, "lan_address", "is not a host address"),
])
def test_a_bad_internet_value_is_shown_by_its_field(client, runtime, typed, field, message):
    before = runtime.store.current_id()
    _, page = box_step(client)
    response, page = step(client, page, **{"lan_address": "10.20.0.1/24", **STATIC_WAN, **typed})
    assert response.status_code == 400 and shown_step(page) == "internet"
    error = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    assert error and message in error.group(1), page
    value = typed[field]
    assert not value or f'value="{value}"' in page  # kept as typed
    assert runtime.store.current_id() == before


def test_an_engine_refusal_at_the_end_goes_back_to_the_step_of_the_field(client, runtime):
    """What the summary's button sends is checked again by the schema: a value changed in the carried fields
    brings the admin back to its step, with the error by its field and the input kept."""
    before = runtime.store.current_id()
    page = to_people(client)
    response, shown = step(client, page, **{**PEOPLE, "u1_extension": "701"})  # a park slot's number
    assert response.status_code == 400 and shown_step(shown) == "people" and "park slots 701" in shown
    _, page = step(client, page, **PEOPLE)
    _, page = step(client, page, "skip")
    assert shown_step(page) == "summary"
    tampered = page.replace('name="u1_extension" value="202"', 'name="u1_extension" value="2x"')
    assert tampered != page
    response, page = step(client, tampered, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 400 and shown_step(page) == "people", page
    assert re.search(r'id="e-u1_extension">use 2 to 6 digits<', page) and 'href="#f-u1_extension"' in page
    assert 'value="2x"' in page and 'value="Anna Berg"' in page and ADMIN["password"] not in page
    assert runtime.store.current_id() == before and not runtime.store.current().config.system.initialized


def test_skipping_users_and_trunk(client, runtime):
    page = to_people(client)
    _, page = step(client, page, "skip", u0_full_name="Left Out", u0_login="left")  # skipped: rows dropped
    assert shown_step(page) == "trunk"
    _, page = step(client, page, "skip", trunk_template="sipgate")
    assert shown_step(page) == "summary" and "Left Out" not in page
    assert "None now: add them later on the Users page." in page and "None now: add one later" in page
    response, _ = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 302
    config = runtime.store.current().config
    assert [u.login for u in config.users] == [ADMIN["login"]] and config.pbx.trunks == []


def test_more_rows_without_javascript(client, runtime):
    page = to_people(client)
    _, page = step(client, page, "more", **PEOPLE)
    assert shown_step(page) == "people" and 'name="u5_login"' in page and 'value="Ben Carter"' in page
    _, page = step(client, page, u5_full_name="Fay Gold", u5_login="fay", u5_extension="206")
    _, page = step(client, page, "skip")
    response, _ = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 302
    assert runtime.store.current().config.user("fay").extension == "206"


def test_going_back_keeps_values_but_never_passwords(client, runtime):
    page = to_people(client)
    _, page = step(client, page, **PEOPLE)
    _, page = step(client, page, "back")
    assert shown_step(page) == "people" and 'value="Anna Berg"' in page
    _, page = step(client, page, "back")
    assert shown_step(page) == "internet" and 'value="203.0.113.1"' in page
    _, page = step(client, page, "back")
    assert shown_step(page) == "box" and 'value="Acme Ltd"' in page and 'id="setup-code-ok"' in page
    for _i in range(3):
        _, page = step(client, page)
    _, page = step(client, page, trunk_template="telnyx")
    _, page = step(client, page, t_username="acme-trunk")
    assert shown_step(page) == "summary"
    response, page = step(client, page, "apply", password=ADMIN["password"], password2="mismatch-123",
                          t_password="trunk-secret-9")
    assert response.status_code == 400 and shown_step(page) == "summary" and 'id="e-password2"' in page
    for secret in (ADMIN["password"], "mismatch-123", "trunk-secret-9"):
        assert secret not in page
    _, page = step(client, page, "to:internet")
    assert shown_step(page) == "internet" and 'value="203.0.113.10/24"' in page
    _, page = step(client, page, wan_mode="dhcp")
    for _i in range(2):
        _, page = step(client, page)
    assert shown_step(page) == "summary" and "sip.telnyx.com" in page and "Anna Berg" in page
    response, _ = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"],
                       t_password="trunk-secret-9")
    assert response.status_code == 302
    config = runtime.store.current().config
    assert config.network.wan.mode == "dhcp" and config.network.wan.gateway is None
    assert config.pbx.trunks[0].host == "sip.telnyx.com" and config.user("anna").extension == "201"


def test_the_setup_code_is_asked_once_and_a_new_one_voids_it(client, runtime):
    page = to_people(client)
    _, page = step(client, page, "skip")
    _, page = step(client, page, "skip")
    SetupCode(runtime.ctx.data_dir).issue()  # the box restarted meanwhile: a new code on its console
    response, page = step(client, page, "apply", password=ADMIN["password"], password2=ADMIN["password"])
    assert response.status_code == 400 and shown_step(page) == "box" and 'id="e-setup_code"' in page
    assert not runtime.store.current().config.system.initialized
    response, page = step(client, page, setup_code=SetupCode(runtime.ctx.data_dir).issue())
    assert shown_step(page) == "internet"


def test_a_later_step_needs_the_accepted_code(client, runtime):
    """Posting straight to the summary's button, without the first step: refused, nothing written."""
    page = client.get("/setup/").get_data(as_text=True)
    response, page = step(client, page, "apply", step="summary", password=ADMIN["password"],
                          password2=ADMIN["password"])
    assert response.status_code == 400 and 'id="e-setup_code"' in page
    assert not runtime.store.current().config.system.initialized


@pytest.mark.parametrize("data", [
    {"step": "nowhere", "go": "next"}, {"step": "people", "go": "to:zzz"},
    {"step": "people", "go": "more", "rows": "-9"},
    {"step": "people", "go": "more", "rows": "99999", "u0_login": "\x00\xff"},
    {"step": "trunk", "go": "next", "trunk_template": "no-such"},
    {"step": "internet", "go": "next", "wan_mode": "pigeon"},
    {"step": "summary", "go": "x" * 5000}, {"step": "trunk", "go": "back", "t_port": "☎"},
])
def test_garbage_steps_never_give_a_500(client, runtime, data):
    response = post(client, "/setup/", data)
    assert response.status_code in (200, 400)
    page = response.get_data(as_text=True)
    assert page.count('name="u0_login"') <= 1 and 'name="u30_login"' not in page  # rows stay bounded
    if data.get("wan_mode") == "pigeon":  # no such choice
        assert 'id="e-wan_mode"' in page and "pigeon" not in page.split('id="f-wan_mode"')[1].split("</select>")[0]
    assert not runtime.store.current().config.system.initialized
