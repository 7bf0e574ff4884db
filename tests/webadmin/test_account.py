"""Staff self-service on the account page: call forwarding with the admin form's checks, only one's own
extension; their own language; and (in headless Chromium) a forwarding change that a SIP call between
baresip phones then follows."""
from __future__ import annotations

import pytest

from appliance.users import hash_password
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.services.pbx.pbxrunner import PbxRunner
from tests.services.pbx.test_calls import closed_after
from tests.webadmin.helpers import admin_client_for, post, sign_in
from tests.webadmin.test_browser import page, server  # noqa: F401 (the browser fixtures)
from webadmin import create_app

PASSWORD = "staff-password-1"
STAFF = [
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1"},
    {"login": "bob", "full_name": "Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
    {"login": "carol", "full_name": "Carol Petit", "extension": "203", "sip_secret": "carolsecret1"},
    {"login": "dan", "full_name": "Dan Nobody"},
]


@pytest.fixture
def staff(runtime):
    """The box set up by its admin, with four staff users (dan has no extension)."""
    admin_client_for(runtime)
    password_hash = hash_password(PASSWORD)

    def mutate(doc):
        doc["users"] += [{**person, "role": "staff", "password_hash": password_hash} for person in STAFF]
        doc.setdefault("pbx", {}).update(lab_sip_port=0, lab_rtp_port_min=24000, lab_rtp_port_max=24199)
        doc["pbx"].setdefault("extensions", {}).update({"202": {"forward_busy": "203"},
                                                       "201": {"blf_watchers": "nobody", "voicemail": False}})
    runtime.engine.update("admin", "staff users", mutate)
    return runtime


def signed_in(runtime, login: str):
    app = create_app(runtime)
    app.config["TESTING"] = True
    client = app.test_client()
    assert sign_in(client, login, PASSWORD).status_code == 302
    return client


def test_staff_set_their_own_forwarding_with_the_admin_checks(staff):
    alice = signed_in(staff, "alice")
    html = alice.get("/account/").get_data(as_text=True)
    assert 'id="forwarding"' in html and "extension 201" in html
    saved = post(alice, "/account/forwarding", {"forward_always": "203", "forward_no_answer": "0612345678",
                                                "no_answer_timeout": "25"}, "/account/")
    assert saved.status_code == 302
    mine = staff.config.pbx.extensions["201"]
    assert (mine.forward_always, mine.forward_no_answer, mine.no_answer_timeout, mine.dnd) == \
        ("203", "0612345678", 25, False)
    assert staff.store.current().author == "alice"
    assert "Your call forwarding was saved." in alice.get("/account/").get_data(as_text=True)

    for fields, field, message in (
            ({"forward_busy": "bob's phone"}, "forward_busy", "an extension, group or number"),
            ({"no_answer_timeout": "2"}, "no_answer_timeout", "greater than or equal to 5"),
            ({"no_answer_timeout": "soon"}, "no_answer_timeout", "enter a whole number")):
        refused = post(alice, "/account/forwarding", fields, "/account/")
        text = refused.get_data(as_text=True)
        assert refused.status_code == 400 and f'id="e-{field}"' in text and message in text, (fields, text)
    itself = post(alice, "/account/forwarding", {"forward_always": "201"}, "/account/")
    assert itself.status_code == 400 and "forwards to itself" in itself.get_data(as_text=True)
    assert staff.config.pbx.extensions["201"].forward_always == "203"  # refused changes kept nothing

    assert post(alice, "/account/forwarding", {"dnd": "on"}, "/account/").status_code == 302
    mine = staff.config.pbx.extensions["201"]
    assert mine.dnd and mine.forward_always is None and mine.forward_no_answer is None
    assert staff.config.pbx.extensions["202"].forward_busy == "203"  # nobody else's settings touched
    assert mine.blf_watchers == "nobody"  # nor what only the admin sets


def test_staff_without_an_extension_and_strangers(staff, client):
    dan = signed_in(staff, "dan")
    assert 'id="forwarding"' not in dan.get("/account/").get_data(as_text=True)
    refused = post(dan, "/account/forwarding", {"forward_always": "203"}, "/account/")
    assert refused.status_code == 400 and "no extension" in refused.get_data(as_text=True)
    assert "dan" not in str(staff.config.pbx.extensions)
    assert client.post("/account/forwarding", data={"forward_always": "203"}).status_code in (302, 400)
    assert staff.config.pbx.extensions["201"].forward_always is None


def test_staff_choose_their_own_language(staff):
    alice = signed_in(staff, "alice")
    html = alice.get("/account/").get_data(as_text=True)
    assert 'id="language"' in html and '<option value="en" selected>English</option>' in html
    saved = post(alice, "/account/language", {"language": "fr"}, "/account/")
    assert saved.status_code == 302
    alice_now = next(u for u in staff.config.users if u.login == "alice")
    assert alice_now.language == "fr" and staff.store.current().author == "alice"
    page_fr = alice.get("/account/").get_data(as_text=True)
    assert '<html lang="fr"' in page_fr and "Votre langue a été enregistrée." in page_fr
    assert "Mon compte" in page_fr and '<option value="fr" selected>Français</option>' in page_fr
    assert post(alice, "/account/language", {"language": "zh_TW"}, "/account/").status_code == 302
    page_zh = alice.get("/account/").get_data(as_text=True)
    assert '<html lang="zh-TW"' in page_zh and "您的語言已儲存。" in page_zh
    bob = signed_in(staff, "bob")
    assert '<html lang="en"' in bob.get("/account/").get_data(as_text=True)  # nobody else's language

    refused = post(alice, "/account/language", {"language": "de"}, "/account/")
    assert refused.status_code == 400 and 'id="e-language"' in refused.get_data(as_text=True)
    assert next(u for u in staff.config.users if u.login == "alice").language == "zh_TW"  # kept


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_forwarding_changed_in_the_browser_is_followed_by_a_call(staff, server, page):  # noqa: F811
    from playwright.sync_api import expect

    # the PBX runs the configuration the pages stored; reload() is what the supervisor does after an apply
    with PbxRunner(staff.ctx.data_dir, staff.config) as live:
        registrar = live.registrar
        with Baresip("alice", user="201", password="alicesecret1", registrar=registrar) as alice, \
                Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob, \
                Baresip("carol", user="203", password="carolsecret1", registrar=registrar) as carol:
            for phone in (alice, bob, carol):
                phone.register()

            page.goto("/login")
            page.fill("#f-login", "alice")
            page.fill("#f-password", PASSWORD)
            page.click("button[type=submit]")
            page.goto("/account/")
            page.fill("#f-no_answer_timeout", "3")
            page.click("text=Save forwarding")
            expect(page.locator("#e-no_answer_timeout")).to_contain_text("greater than or equal to 5")
            page.fill("#f-forward_always", "203")
            page.fill("#f-no_answer_timeout", "20")
            page.click("text=Save forwarding")
            expect(page.locator(".banner-success")).to_have_text("Your call forwarding was saved.")
            expect(page.locator("#f-forward_always")).to_have_value("203")
            live.reload(staff.config)

            bob.dial("201")
            carol.answer()  # the call went to Carol; Alice's phone never rang
            bob.wait_for("CALL_ESTABLISHED")
            bob.wait_rtp(tx=25, rx=25)
            assert alice.call_state() is None
            bob.hangup()
            carol.wait_for("CALL_CLOSED")

            page.fill("#f-forward_always", "")
            page.check("#f-dnd")
            page.click("text=Save forwarding")
            expect(page.locator(".banner-success")).to_have_text("Your call forwarding was saved.")
            live.reload(staff.config)
            start, carol_start = len(bob.events), len(carol.events)
            bob.dial("201")
            assert closed_after(bob, start).startswith("486")  # do not disturb: busy, and no busy forward
            assert alice.call_state() is None
            assert not [e for e in carol.events[carol_start:] if e.get("type") == "CALL_INCOMING"]
