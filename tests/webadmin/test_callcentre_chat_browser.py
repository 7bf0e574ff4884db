"""The wallboard's chat tiles in headless Chromium: a chat started changes "chats waiting" within a second
without a reload (the same server-sent events as calls), and its acceptance moves it to "chats open"."""
from __future__ import annotations

import time

import pytest

from tests.webadmin.helpers import ADMIN
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures)
from tests.webadmin.test_callcentre_chat import chat_board  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _LivePbx, _until

pytestmark = pytest.mark.slow


def test_wallboard_follows_a_chat_live(chat_board, runtime, request):  # noqa: F811 (the fixture)
    from playwright.sync_api import expect

    tab = request.getfixturevalue("page")
    with _LivePbx(runtime) as live:
        svc = live.svc
        assert svc.acd_agent_action("202", "login")["status"] == "available"
        tab.goto("/login")
        tab.fill("#f-login", ADMIN["login"])
        tab.fill("#f-password", ADMIN["password"])
        tab.click("button[type=submit]")
        tab.goto("/callcentre/")
        waiting = tab.locator("[data-q=sales][data-f=chats_waiting]")
        active = tab.locator("[data-q=sales][data-f=chats_active]")
        expect(waiting).to_have_text("0")
        tab.evaluate("() => { window.notReloaded = true; }")
        tab.wait_for_timeout(500)  # the event stream is open
        chat_id = svc.acd_chat_start("sales", "Ann", "", "hello")["id"]
        started = time.monotonic()
        expect(waiting).to_have_text("1", timeout=1000)
        shown_after = time.monotonic() - started
        expect(tab.locator("[data-q=sales][data-f=chat_longest_wait]")).to_have_text("2", timeout=4000)
        assert svc.acd_chat_act("202", "accept", chat_id)["status"] == "open"
        expect(waiting).to_have_text("0", timeout=1000)
        expect(active).to_have_text("1", timeout=1000)
        assert svc.acd_chat_act("202", "close", chat_id)["status"] == "closed"
        expect(active).to_have_text("0", timeout=1000)
        assert tab.evaluate("() => window.notReloaded") is True, "the page was reloaded"
        _until(lambda: svc.acd_chat_report(0, time.time() + 1, "queue")[0]["answered"] == 1)
        print(f"wallboard showed the chat {shown_after * 1000:.0f} ms after it started")
