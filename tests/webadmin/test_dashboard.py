"""The dashboard's state cards, their JSON for the refresh, the calls-per-hour chart from real call
records, a trunk that a carrier PBX (on 127.0.0.2) refuses shown with its reason, and the notification
banner on every admin page."""
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.pbx.cdr import CallRecord, CdrStore
from tests.services.pbx.pbxrunner import PbxRunner, config, user
from tests.webadmin.helpers import ADMIN
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures: Chromium on the HTTPS server)
from tests.webadmin.test_pbx_pages import _LivePbx

CARDS = {"internet": "/network/", "trunks": "/pbx/trunks/", "phones": "/lan/phones", "calls": "/pbx/calls",
         "mail": "/mail/queue", "disk": "/system/", "memory": None, "uptime": "/system/", "updates": "/system/",
         "backup": "/backups/"}
LINE = user("line", "5000", "linesecret99", "Office line")


def html_of(client, path: str = "/") -> str:
    resp = client.get(path)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    return resp.get_data(as_text=True)


def section(html: str, key: str) -> str:
    start = html.index(f'id="state-{key}"')
    return html[start:html.index("</section>", start)]


def test_every_card_links_to_the_page_that_fixes_it(admin_client):
    html = html_of(admin_client)
    for key, link in CARDS.items():
        card = section(html, key)
        assert 'data-part="value"' in card
        if link:
            assert f'href="{link}"' in card and html_of(admin_client, link)
    assert 'src="/static/dashboard.js"' in html
    data = admin_client.get("/dashboard.json").get_json()
    assert set(data["cards"]) == set(CARDS)
    assert data["cards"]["disk"]["value"].endswith("% used") and data["chart"].startswith("<svg id=\"calls-per-hour\"")
    assert data["cards"]["trunks"] == {"state": "muted", "value": "No trunk", "detail": "no carrier line is set up"}


def test_the_json_needs_a_sign_in(client):
    assert client.get("/dashboard.json").status_code == 302  # staff and anonymous: test_routes_access.py


def test_calls_today_per_hour_from_the_call_records(admin_client, runtime):
    zone = ZoneInfo(runtime.config.system.timezone)
    midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    store = CdrStore(runtime.services["pbx"].cdr_path)
    for n, start in enumerate([midnight + 9 * 3600 + 60, midnight + 9 * 3600 + 600, midnight + 14 * 3600,
                               midnight - 60]):  # the last one was yesterday
        store.add(CallRecord(call_id=f"c{n}", direction="internal", caller="201", dialled="202", start=start,
                             end=start + 30, disposition="answered", status=200))
    store.flush()
    calls = section(html_of(admin_client), "calls")
    assert "3 today" in calls and "0 now" in calls
    assert "<title>09:00: 2 calls</title>" in calls and "<title>14:00: 1 call</title>" in calls
    assert 'y="2" width="8" height="60"' in calls  # the busiest hour is the full height


@pytest.mark.slow
def test_a_refused_trunk_says_why_and_raises_the_banner(admin_client, runtime, tmp_path):
    with PbxRunner(tmp_path / "carrier", config([LINE]), host="127.0.0.2") as carrier:
        def mutate(doc):
            doc.setdefault("pbx", {}).update(lab_sip_port=0, trunks=[{
                "name": "carrier", "host": "127.0.0.2", "port": carrier.port, "username": "5000",
                "auth_password": "not-the-password", "registration": True}])
        runtime.engine.update("admin", "a trunk", mutate)
        with _LivePbx(runtime) as live:
            deadline = time.monotonic() + 10
            while not live.svc.trunks()[0]["last_status"] and time.monotonic() < deadline:
                time.sleep(0.1)
            trunks = admin_client.get("/dashboard.json").get_json()["cards"]["trunks"]
            assert trunks["state"] == "bad" and trunks["value"] == "0 of 1 registered"
            assert trunks["detail"].startswith("carrier: the carrier refused the credentials (SIP 40")
            assert "Needs attention" not in html_of(admin_client, "/pbx/")
            [event] = runtime.notifier.check()  # what the appliance's loop runs every CHECK_INTERVAL s
            assert event["key"] == "trunk:carrier"
            for path in ("/", "/pbx/trunks/", "/system/"):
                banner = html_of(admin_client, path)
                assert "Needs attention:</strong> Trunk carrier is not registered: the carrier refused" in banner
    assert "Needs attention" not in admin_client.application.test_client().get("/login").get_data(as_text=True)


@pytest.mark.slow
def test_the_cards_refresh_by_themselves_in_a_real_browser(admin_client, page, runtime, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    expect(page.locator("#state-calls [data-part=detail]")).to_have_text("0 today")
    store = CdrStore(runtime.services["pbx"].cdr_path)
    store.add(CallRecord(call_id="live", direction="internal", caller="201", dialled="202", start=time.time(),
                         end=time.time() + 1, disposition="answered", status=200))
    store.flush()
    expect(page.locator("#state-calls [data-part=detail]")).to_have_text("1 today", timeout=25000)  # polled each 10 s
    expect(page.locator("#calls-per-hour rect[height='60']")).to_have_count(1)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert errors == []


def test_every_notification_text_is_marked_for_translation():
    from appliance import notify
    from webadmin.blueprints.dashboard import NOTICES

    assert set(notify.TEXTS.values()) | set(notify.SIP_REASONS.values()) | {notify.REFUSED} == set(NOTICES)


@pytest.mark.parametrize("language, heading, banner", [
    ("fr", "Disque", "À traiter :</strong> Le disque de données est plein à"),
    ("zh_TW", "磁碟", "需要處理：</strong> 資料磁碟已使用")])
def test_cards_and_banner_in_the_readers_language(admin_client, runtime, language, heading, banner):
    def mutate(doc):
        next(u for u in doc["users"] if u["login"] == ADMIN["login"])["language"] = language
    runtime.engine.update("admin", "language", mutate)
    runtime.notifier.disk_threshold = 0.0
    assert [e["key"] for e in runtime.notifier.check()] == ["disk"]
    html = html_of(admin_client, "/pbx/")
    assert banner in html
    assert f">{heading}</a>" in section(html_of(admin_client), "disk")
