"""The wallboard in headless Chromium: a baresip caller entering the queue changes the "calls waiting"
figure within a second, without a reload (server-sent events), and leaving it changes it back."""
from __future__ import annotations

import re
import time
from contextlib import ExitStack

import pytest

from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import ADMIN, post
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures)
from tests.webadmin.test_callcentre import QUEUE, cc_client  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _LivePbx, _until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_wallboard_follows_a_caller_live(cc_client, runtime, request):  # noqa: F811 (the fixture)
    from playwright.sync_api import expect

    assert post(cc_client, "/callcentre/queues/new", QUEUE).status_code == 302
    tab = request.getfixturevalue("page")  # after the change: Playwright's loop runs in this thread from now
    with _LivePbx(runtime) as live, ExitStack() as stack:
        svc = live.svc
        assert svc.acd_agent_action("202", "login")["status"] == "available"
        svc.acd_agent_action("202", "pause", "meeting")  # logged in but paused: the caller waits
        tab.goto("/login")
        tab.fill("#f-login", ADMIN["login"])
        tab.fill("#f-password", ADMIN["password"])
        tab.click("button[type=submit]")
        tab.goto("/callcentre/")
        expect(tab.locator("h1")).to_have_text("Call centre wallboard")
        waiting = tab.locator("[data-q=sales][data-f=waiting]")
        expect(waiting).to_have_text("0")
        tab.evaluate("() => { window.notReloaded = true; }")
        tab.wait_for_timeout(500)  # the event stream is open
        registrar = f"127.0.0.1:{svc.sip_port}"
        alice = stack.enter_context(Baresip("alice", user="201", password="alicesecret1", registrar=registrar))
        alice.register()
        alice.dial("600")
        _until(lambda: svc.acd_wallboard(0)["queues"][0]["waiting"] == 1, 20)
        entered = time.monotonic()
        expect(waiting).to_have_text("1", timeout=1000)  # within a second of the caller entering
        shown_after = time.monotonic() - entered
        expect(tab.locator("#agents")).to_contain_text("paused (meeting)")
        since = tab.locator("[data-a='202'][data-f=since]").inner_text()  # as the script renders it
        assert re.fullmatch(r"\d{1,2}:\d{2}:\d{2}( [AP]M)?", since.replace("\u202f", " ")), since
        alice.hangup()
        alice.wait_for("CALL_CLOSED")
        expect(waiting).to_have_text("0", timeout=3000)
        expect(tab.locator("[data-q=sales][data-f=abandoned]")).to_have_text("1", timeout=3000)
        assert tab.evaluate("() => window.notReloaded") is True, "the page was reloaded"
        print(f"wallboard showed the caller {shown_after * 1000:.0f} ms after the PBX queued them")
