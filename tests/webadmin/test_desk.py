"""The staff desk (/desk) with the real PBX and CTI server: its token and caller endpoints, and in
headless Chromium against baresip phones: an incoming call pops up with the caller's name, a
colleague's presence follows their call, click-to-dial rings the user's own phone first, a held call and a
consultation call become a three-party conference by the page's button; the page fits a 390 px phone screen."""
from __future__ import annotations

import asyncio
import re

import pytest

from appliance import contacts
from appliance.users import hash_password
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import admin_client_for, csrf_of
from tests.webadmin.test_account import PASSWORD, STAFF, signed_in
from tests.webadmin.test_browser import server  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _LivePbx
from tests.webadmin.test_webphone import _browser, _sign_in
from webadmin import create_app

SECRETS = {s["extension"]: s["sip_secret"] for s in STAFF if s.get("extension")}


@pytest.fixture
def box(runtime):
    """Staff users (dan has no extension), the PBX and the CTI server (JSON API on a free port) running."""
    admin_client_for(runtime)
    password_hash = hash_password(PASSWORD)

    def mutate(doc):
        doc["users"] += [{**person, "role": "staff", "password_hash": password_hash} for person in STAFF]
        doc.setdefault("pbx", {}).update(lab_sip_port=0, lab_rtp_port_min=24600, lab_rtp_port_max=24799)
        doc["cti"] = {"enabled": True, "lab_tcp_port": 0, "lab_tls_port": 0, "lab_api_port": 0,
                      "crm_url": "https://crm.example/find?phone={number}"}
    runtime.engine.update("admin", "staff users and CTI", mutate)
    cti = runtime.services["cti"]
    with _LivePbx(runtime) as live:
        asyncio.run_coroutine_threadsafe(cti.start(runtime.config), live.loop).result(20)
        try:
            yield live
        finally:
            asyncio.run_coroutine_threadsafe(cti.stop(), live.loop).result(20)


def test_token_only_for_the_signed_in_user_with_csrf_and_caller_lookup(box, runtime):
    assert create_app(runtime).test_client().post("/desk/token").status_code in (302, 400)  # nobody signed in
    alice = signed_in(runtime, "alice")
    page = alice.get("/desk/")
    assert page.status_code == 200
    assert "connect-src 'self' http://localhost:" in page.headers["Content-Security-Policy"]
    assert alice.post("/desk/token").status_code == 400  # no CSRF token
    answer = alice.post("/desk/token", headers={"X-CSRF-Token": csrf_of(alice, "/desk/")})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    minted = answer.get_json()
    assert minted["extension"] == "201" and minted["token"].startswith("obx_")
    assert minted["events"].startswith("ws://localhost:") and minted["events"].endswith("/api/v1/events")
    found = alice.get("/desk/caller?number=202").get_json()
    assert found["name"] == "Bob Durand" and found["crm"] == "https://crm.example/find?phone=202"
    assert alice.get("/desk/caller?number=2;x").status_code == 400
    data = runtime.ctx.data_dir  # an outside caller: the user's personal contacts, then the shared ones
    contacts.save_contact(data, {"name": "Eve Client", "company": "Acme", "phones": [["work", "+33 1 23 45 67 89"]]})
    contacts.save_contact(data, {"name": "Eve (mine)", "company": "Acme", "phones": [["mobile", "0123456789"]]},
                          login="alice")
    assert alice.get("/desk/caller?number=0123456789").get_json()["name"] == "Eve (mine)"
    shared = signed_in(runtime, "bob").get("/desk/caller?number=0033123456789").get_json()
    assert shared["name"] == "Eve Client" and shared["company"] == "Acme"
    assert alice.get("/desk/caller?number=0999").get_json()["name"] == ""
    dan = signed_in(runtime, "dan")
    assert "no phone to drive" in dan.get("/desk/").get_data(as_text=True)
    assert dan.post("/desk/token", headers={"X-CSRF-Token": csrf_of(dan, "/desk/")}).status_code == 404


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_pop_up_presence_and_click_to_dial_in_chromium(box, server):  # noqa: F811
    from playwright.sync_api import expect

    registrar = f"127.0.0.1:{box.svc.sip_port}"
    phones = {ext: Baresip(f"p{ext}", user=ext, password=SECRETS[ext], registrar=registrar)
              for ext in ("201", "202", "203")}
    with _browser(server, []) as page, phones["201"] as desk, phones["202"] as bob, phones["203"] as carol:
        for ua in (desk, bob, carol):
            ua.register()
        _sign_in(page, "alice")
        page.goto("/desk/")
        expect(page.locator("#desk-state")).to_have_attribute("data-state", "ready")
        carol_badge = page.locator("#desk-directory li[data-extension='203'] .desk-presence")
        expect(carol_badge).to_have_attribute("data-presence", "idle")

        # bob calls alice: the pop-up names him and links to the CRM
        bob.dial("201")
        expect(page.locator("#desk-popup")).to_be_visible()
        expect(page.locator("#desk-popup-name")).to_have_text("Bob Durand")
        expect(page.locator("#desk-popup-crm")).to_have_attribute("href", "https://crm.example/find?phone=202")
        expect(page.locator("#desk-directory li[data-extension='202'] .desk-presence")).to_have_attribute(
            "data-presence", "busy")
        bob.hangup()
        expect(page.locator("#desk-popup")).to_be_hidden()

        # bob calls carol: alice sees her colleague ring, then busy when she picks up, then idle
        bob.dial("203")
        expect(carol_badge).to_have_attribute("data-presence", "ringing")
        carol.answer()
        expect(carol_badge).to_have_attribute("data-presence", "busy")
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
        expect(carol_badge).to_have_attribute("data-presence", "idle")

        # click to dial carol: alice's own phone rings first, then carol's
        carol_calls = sum(e.get("type") == "CALL_INCOMING" for e in carol.events)
        page.click("#desk-directory li[data-extension='203'] .desk-dial")
        desk.wait_for("CALL_INCOMING")
        expect(page.locator("#desk-call-list li")).to_have_count(1)
        assert sum(e.get("type") == "CALL_INCOMING" for e in carol.events) == carol_calls
        desk.command("accept")
        carol.answer()
        expect(page.locator("#desk-call-list li[data-state='connected']")).to_have_count(1)
        page.click("#desk-call-list li .button-danger")  # hang up from the page
        carol.wait_for("CALL_CLOSED")
        expect(page.locator("#desk-call-list li")).to_have_count(0)

        # bob calls alice, she consults carol from the page, then joins the three
        bob.dial("201")
        expect(page.locator("#desk-popup")).to_be_visible()
        desk.command("accept")  # the ringing call is its current one
        expect(page.locator("#desk-call-list li[data-state='connected']")).to_have_count(1)
        page.fill("#desk-call-list li .desk-transfer-to", "203")
        page.click("#desk-call-list li[data-state='connected'] button:text('Consult')")
        expect(page.locator("#desk-call-list li")).to_have_count(2)  # her own phone rings first
        desk.command("accept")
        carol.answer()
        expect(page.locator("#desk-call-list li[data-state='hold'] .desk-conference")).to_be_visible()
        page.click("#desk-call-list li[data-state='hold'] .desk-conference")
        expect(page.locator("#desk-call-list li")).to_have_count(1)
        expect(page.locator("#desk-call-list li[data-state='connected']")).to_have_count(1)
        rooms = [r for r in box.svc.conference_rooms() if r["adhoc"]]
        assert [sorted(p["label"] for p in r["participants"]) for r in rooms] == [["201", "202", "203"]]
        for ua in (bob, carol):
            ua.hangup()
        desk.wait_for("CALL_CLOSED")
        expect(page.locator("#desk-call-list li")).to_have_count(0)

        # a phone screen: nothing wider than the viewport
        page.set_viewport_size({"width": 390, "height": 800})
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        assert re.search(r"/account/voicemail", page.locator("#desk-voicemail").get_attribute("href"))
