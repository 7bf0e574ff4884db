"""French and Chinese pages in headless Chromium: the browser's language before sign-in, the user's after."""
import re

import pytest

from tests.webadmin.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, server  # noqa: F401 - the HTTPS server fixture
from tests.webadmin.test_i18n import FR_DATE, ZH_DATE, add_user

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(server, admin_client):  # noqa: F811
    """Chromium, started once the box is set up with its users (the runtime's changes cannot run inside
    Playwright's event loop in this thread)."""
    add_user(admin_client, "mei", "zh_TW")
    add_user(admin_client, "lucie", "fr")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.parametrize(("browser_locale", "login", "sign_in", "heading", "menu", "history", "date"), [
    ("zh-TW", "mei", "登入", "儀表板", "使用者", "設定變更紀錄", ZH_DATE),
    ("fr-FR", "lucie", "Se connecter", "Tableau de bord", "Utilisateurs", "Historique de la configuration",
     FR_DATE),
])
def test_a_french_and_a_chinese_admin_in_a_real_browser(browser, server, browser_locale, login,  # noqa: F811
                                                        sign_in, heading, menu, history, date):
    from playwright.sync_api import expect

    context = browser.new_context(ignore_https_errors=True, base_url=server, locale=browser_locale,
                                  viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/login")  # before sign-in: the browser's Accept-Language
        expect(page.locator("h1")).to_have_text(sign_in)
        assert page.locator("html").get_attribute("lang") == browser_locale.split("-")[0] + (
            "-TW" if browser_locale == "zh-TW" else "")
        page.fill("#f-login", login)
        page.fill("#f-password", f"{login}-password-1")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator("nav.sidebar")).to_contain_text(menu)
        page.locator("nav.sidebar").get_by_role("link", name=history).click()
        expect(page.locator("h1")).to_have_text(history)
        first_time = page.locator("#rev-1 td").nth(1).inner_text()
        assert date.search(first_time), first_time
        page.get_by_role("button", name=re.compile("登出|Se déconnecter")).click()
        expect(page.locator("h1")).to_have_text(sign_in)
    finally:
        context.close()
