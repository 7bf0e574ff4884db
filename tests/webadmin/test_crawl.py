"""Every page an admin can open: each GET route without parameters, and every link found on those
pages, answers without a server error (the whole web admin on the real runtime)."""
import re


def test_every_page_and_link_opens(admin_client, app):
    routes = sorted(r.rule for r in app.url_map.iter_rules()
                    if "GET" in r.methods and not r.arguments and r.endpoint not in ("static", "auth.logout")
                    and not r.endpoint.startswith("setup."))  # the wizard is gone once the box is set up
    seen: dict[str, int] = {}
    queue = list(routes)
    while queue and len(seen) < 400:  # bounded crawl
        path = queue.pop(0)
        if path in seen:
            continue
        response = admin_client.get(path)
        seen[path] = response.status_code
        if response.mimetype == "text/html":
            for link in re.findall(r'href="(/[^"#?]*)', response.get_data(as_text=True)):
                if link not in seen and not link.startswith("/static/"):
                    queue.append(link)
    broken = {path: code for path, code in seen.items() if code >= 500 or code == 404}
    assert not broken, broken
    assert len(seen) >= 25 and not any(p.startswith("/setup") for p in seen), sorted(seen)
