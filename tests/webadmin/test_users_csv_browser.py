"""CSV import in headless Chromium: upload a file with one bad line, read the preview, confirm, and sign in
as an imported user with the password shown once."""
from __future__ import annotations

import re

import pytest

from tests.webadmin.helpers import ADMIN, admin_client_for
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures: the box's HTTPS server, Chromium)

pytestmark = pytest.mark.slow
CSV = ("login;full_name;extension;email\n"
       "nora;Nora Lefèvre;301;nora@acme.example\n"
       "oscar;Oscar;30a;\n"
       "paula;Paula Wu;302;\n")


@pytest.fixture
def set_up(runtime):
    """The wizard has run (before Chromium starts: its driver holds an event loop in this thread)."""
    admin_client_for(runtime)


def test_import_upload_preview_confirm(set_up, page, runtime, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto("/users/")
    page.click("text=Import or export (CSV)")
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode("utf-8"))  # as Excel writes "CSV UTF-8" in French
    page.set_input_files("#f-file", str(path))
    page.click("text=Preview the import")
    expect(page.locator("#import-counts")).to_contain_text("2 to add, 0 to change, 0 unchanged, 1 with errors")
    expect(page.locator("#line-3")).to_contain_text("extension: use 2 to 6 digits")
    assert runtime.store.current().config.user("nora") is None  # nothing saved by the preview
    page.click("#confirm-import")
    expect(page.locator("#import-done")).to_contain_text("2 users added or changed")
    password = page.locator("#imported-nora code.password").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9]{14}", password)
    config = runtime.store.current().config
    assert config.user("nora").full_name == "Nora Lefèvre" and config.user("oscar") is None
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("#f-login", "nora")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page.locator(".banner-error")).to_have_count(0)
    assert "/login" not in page.url
