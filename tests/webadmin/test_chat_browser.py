"""The web text chat in headless Chromium, a visitor's browser context and a signed-in staff agent's: with no
agent logged in the visitor is offered the call-back form; then the chat appears on the agent's page by
itself, the agent accepts, and messages go both ways without reloading either page; a script in the
visitor's name and message is shown as text and never runs; axe-core finds no serious violation on either page."""
from __future__ import annotations

import pytest

from tests.webadmin.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, server  # noqa: F401 (fixture)
from tests.webadmin.test_chat import XSS, chat_site  # noqa: F401 (fixture)
from tests.webadmin.test_layout_a11y import AXE, problems
from tests.webadmin.test_pbx_pages import _LivePbx

pytestmark = pytest.mark.slow


def test_visitor_and_agent_chat_live(chat_site, runtime, request):  # noqa: F811 (the fixture)
    from playwright.sync_api import expect, sync_playwright

    base_url = request.getfixturevalue("server")  # after the chat queue is configured
    dialogs: list[str] = []
    with _LivePbx(runtime) as live, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            tabs = []
            for _ in range(2):
                context = browser.new_context(ignore_https_errors=True, base_url=base_url)
                context.set_default_timeout(TIMEOUT_MS)
                tab = context.new_page()
                tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                tabs.append(tab)
            visitor, agent = tabs
            visitor.goto("/public/chat/sales")
            visitor.fill("#f-text", "anybody there?")
            visitor.click("button[type=submit]")
            expect(visitor.locator("#chat-error")).to_contain_text("No agent is available")
            visitor.click("#chat-callback a")
            expect(visitor.locator("form h1")).to_have_text("Call me back")

            agent.goto("/login")
            agent.fill("#f-login", "bob")
            agent.fill("#f-password", "bob-password-1")
            agent.click("button[type=submit]")
            assert live.svc.acd_agent_action("202", "login")["status"] == "available"
            agent.goto("/agent/")
            expect(agent.locator("#no-chats")).to_be_visible()

            visitor.goto("/public/chat/sales")
            visitor.fill("#f-name", XSS)
            visitor.fill("#f-text", "Hello " + XSS)
            visitor.click("button[type=submit]")
            expect(visitor.locator("#chat-state")).to_contain_text("Waiting for an agent")
            offer = agent.locator("#chats .chat-offer")
            expect(offer).to_contain_text(XSS)  # the page reloaded by itself when the chat was offered
            agent.click("#chats button[value=accept]")
            log = agent.locator("#chats ol.chat-log")
            expect(log).to_contain_text("Hello " + XSS)
            expect(visitor.locator("#chat-state")).to_contain_text("You are chatting with Bob Durand")
            for tab in tabs:  # both chat pages: no serious or critical axe-core violation
                assert problems(tab, AXE.read_text())[1] == [], tab.url

            visitor.evaluate("() => { window.notReloaded = true; }")
            agent.fill("#chats textarea", "Good morning, how can I help?")
            agent.click("#chats button[value=reply]")  # the agent's form reloads its page
            expect(visitor.locator("ol.chat-log")).to_contain_text("Bob Durand: Good morning, how can I help?")
            assert visitor.evaluate("() => window.notReloaded") is True, "the visitor's page was reloaded"
            expect(agent.locator("#chats ol.chat-log")).to_contain_text("You: Good morning")
            agent.evaluate("() => { window.notReloaded = true; }")
            visitor.fill("#f-text", "My invoice is wrong")
            visitor.click("button[value=send]")
            expect(agent.locator("#chats ol.chat-log")).to_contain_text(f"{XSS}: My invoice is wrong")
            assert agent.evaluate("() => window.notReloaded") is True, "the agent's page was reloaded"
            agent.click("#chats button[value=close]")
            expect(visitor.locator("#chat-state")).to_contain_text("This chat is closed")
            assert dialogs == [], "a visitor's script ran"
        finally:
            browser.close()
