"""Every page an admin can open: each GET route without parameters, and every link found on those
pages, answers without a server error (the whole web admin on the real runtime)."""
from tests.webadmin.helpers import crawl


def test_every_page_and_link_opens(admin_client, app):
    seen = crawl(admin_client, app)
    broken = {path: code for path, code in seen.items() if code >= 500 or code == 404}
    assert not broken, broken
    assert len(seen) >= 25 and not any(p.startswith("/setup") for p in seen), sorted(seen)
