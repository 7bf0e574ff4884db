"""CSV import in headless Chromium at phone width: upload a file with one bad line, land on the preview's error
summary (axe-core: no serious violation, nothing wider than the screen), follow its link to the cell, choose the
corrected file, confirm, and sign in as an imported user with the password shown once."""
from __future__ import annotations

import re

import pytest

from tests.webadmin.helpers import admin_client_for
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures: the box's HTTPS server, Chromium)
from tests.webadmin.test_layout_a11y import problems, sign_in_at_390

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

    axe = sign_in_at_390(page)
    page.goto("/users/")
    page.click("text=Import or export (CSV)")
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode("utf-8"))  # as Excel writes "CSV UTF-8" in French
    page.set_input_files("#f-file", str(path))
    page.click("text=Preview the import")
    expect(page.locator("#import-counts")).to_contain_text("2 to add, 0 to change, 0 unchanged, 1 with errors")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("Line 3, extension: use 2 to 6 digits, like 201")
    expect(page.locator("#confirm-import")).to_have_count(0)
    assert problems(page, axe) == (0, [])
    page.click("#error-summary a[href='#f-line3_extension']")
    expect(page.locator("#f-line3_extension")).to_be_focused()
    expect(page.locator("#line-3")).to_contain_text("extension 30a: use 2 to 6 digits, like 201")
    assert runtime.store.current().config.user("nora") is None  # nothing saved by the preview
    path.write_bytes(b"\xef\xbb\xbf" + CSV.replace("30a", "303").encode("utf-8"))
    page.set_input_files("#f-file", str(path))
    page.click("text=Preview the import")
    expect(page.locator("#import-counts")).to_contain_text("3 to add, 0 to change, 0 unchanged, 0 with errors")
    page.click("#confirm-import")
    expect(page.locator("#import-done")).to_contain_text("3 users added or changed")
    password = page.locator("#imported-nora code.password").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9]{14}", password)
    config = runtime.store.current().config
    assert config.user("nora").full_name == "Nora Lefèvre" and config.user("oscar").extension == "303"
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("#f-login", "nora")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page.locator(".banner-error")).to_have_count(0)
    assert "/login" not in page.url
