"""System settings page: every field editable after the wizard with the wizard's checks; a bad value shows
its field's error and keeps the input; a new LAN address waits for confirmation and comes back without it
(the box's networking applied for real inside a network namespace)."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from appliance import netservice
from tests.netns import Lab, needs_netns
from tests.webadmin.helpers import post

FORM = {"company_name": "Acme Ltd", "hostname": "officebox", "mail_domain": "acme.example",
        "timezone": "Europe/Berlin", "lan_address": "10.20.0.1/24", "admin_email": ""}


def error_of(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return match.group(1) if match else None


def value_of(page: str, field: str) -> str | None:
    match = re.search(rf'<input id="f-{field}" name="{field}" type="\w+" value="([^"]*)"', page)
    return match.group(1) if match else None


def save(client, **changes):
    return post(client, "/settings/", {**FORM, **changes})


def test_the_page_shows_what_the_wizard_set(admin_client):
    page = admin_client.get("/settings/").get_data(as_text=True)
    assert value_of(page, "company_name") == "Acme Ltd" and value_of(page, "lan_address") == "10.20.0.1/24"
    assert value_of(page, "mail_domain") == "acme.example" and "<option selected>Europe/Berlin</option>" in page


@pytest.mark.parametrize("field, value, stored", [
    ("company_name", "Acme & Sons", "Acme & Sons"),
    ("hostname", "Box-2", "box-2"),
    ("mail_domain", "Sons.Example", "sons.example"),
    ("timezone", "Asia/Taipei", "Asia/Taipei"),
    ("admin_email", "it@acme.example", "it@acme.example"),
])
def test_each_field_changes(admin_client, runtime, field, value, stored):
    response = save(admin_client, **{field: value})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert getattr(runtime.store.current().config.system, field) == stored
    assert "Settings saved." in admin_client.get("/settings/").get_data(as_text=True)


def test_a_lan_address_change_in_lab_mode_is_saved(admin_client, runtime):
    assert save(admin_client, lan_address="10.30.0.1/24").status_code == 302
    assert str(runtime.store.current().config.network.lan.address) == "10.30.0.1/24"


@pytest.mark.parametrize("field, value, message", [
    ("company_name", "", "this field is required"),
    ("hostname", "my_box", "use lower-case letters, digits and '-' only"),
    ("mail_domain", "acme", "enter a domain name, like example.com"),
    ("timezone", "Mars/Olympus", "choose a time zone from the list"),
    ("lan_address", "10.20.0.1", "enter the box address with its prefix, like 192.168.1.1/24"),
    ("lan_address", "10.20.0.0/24", "10.20.0.0 is not a host address of 10.20.0.0/24; use e.g. 10.20.0.1/24"),
    ("admin_email", "it-at-acme", "enter a valid e-mail address, like it@example.com"),
])
def test_a_bad_value_shows_its_error_and_keeps_the_input(admin_client, runtime, field, value, message):
    before = runtime.store.current_id()
    response = save(admin_client, **{"company_name": "Typed Co", field: value})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and error_of(page, field) == message.replace("'", "&#39;")
    if field != "timezone":
        assert value_of(page, field) == value
    if field != "company_name":
        assert value_of(page, "company_name") == "Typed Co"  # the other typed values are kept too
    assert runtime.store.current_id() == before


def test_staff_cannot_open_settings(admin_client, runtime):
    from tests.webadmin.helpers import sign_in
    from webadmin import create_app
    runtime.engine.update("admin", "staff", lambda d: d["users"].append(
        {"login": "bea", "full_name": "Bea", "password_hash": runtime.store.current().config.user("admin")
         .password_hash}))
    staff = create_app(runtime).test_client()
    assert sign_in(staff, "bea", "correct-horse-1").status_code == 302
    assert staff.get("/settings/").status_code in (302, 403)


@pytest.fixture
def box_network(runtime, monkeypatch):
    """The network service applies the box's LAN inside a namespace (as on the box), with a short window."""
    net = runtime.services["network"]
    with Lab() as lab:
        box, pc = lab.host("box"), lab.host("pc")
        lan_if, _ = lab.link(box, None, pc, "10.20.0.50/24")
        runtime.engine.update("admin", "test network", lambda d: d["network"].update(
            lan={"interface": lan_if, "address": "10.20.0.1/24"}, wan={"interface": "wan0", "mode": "none"}))
        net.netns = box.name
        yield box, lan_if
        net.netns = None


def lan_addresses(runtime, box, ifname: str) -> list[str]:
    """The LAN addresses once the network service applied the current revision (the supervisor's job)."""
    asyncio.run(runtime.services["network"].reload(runtime.store.current().config))
    out = box.run("ip", "-4", "-o", "addr", "show", "dev", ifname).stdout
    return [line.split()[3] for line in out.splitlines()]


@needs_netns
@pytest.mark.netns
def test_a_new_lan_address_waits_for_confirmation(admin_client, runtime, box_network):
    box, lan_if = box_network
    response = save(admin_client, lan_address="10.20.0.2/24")
    assert response.status_code == 302
    page = admin_client.get("/settings/").get_data(as_text=True)
    assert "open https://10.20.0.2/ and confirm" in page and 'id="confirm-everywhere"' in page
    assert runtime.engine.confirmation.pending() is not None
    assert lan_addresses(runtime, box, lan_if) == ["10.20.0.2/24"]  # live at once, to be confirmed from there
    assert post(admin_client, "/firewall/confirm", {"next": "/settings/"}, form_path="/settings/").status_code == 302
    assert runtime.engine.confirmation.pending() is None
    assert str(runtime.store.current().config.network.lan.address) == "10.20.0.2/24"


@needs_netns
@pytest.mark.netns
def test_an_unconfirmed_lan_address_comes_back(admin_client, runtime, box_network, monkeypatch):
    box, lan_if = box_network
    monkeypatch.setattr(netservice, "CONFIRM_SECONDS", 1)
    assert save(admin_client, lan_address="10.20.0.3/24").status_code == 302
    assert lan_addresses(runtime, box, lan_if) == ["10.20.0.3/24"]
    deadline = time.monotonic() + 20
    while runtime.engine.confirmation.last_rollback is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runtime.engine.confirmation.last_rollback is not None
    assert str(runtime.store.current().config.network.lan.address) == "10.20.0.1/24"
    assert runtime.engine.confirmation.pending() is None and lan_addresses(runtime, box, lan_if) == ["10.20.0.1/24"]
