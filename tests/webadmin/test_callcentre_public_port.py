"""The public call-centre pages on their own HTTPS port (pbx.public_web, webadmin/publicsite.py), over real
TLS with the box's certificate: off by default (nothing listens); on, the call-back and chat pages and their
static files are served there and a visitor starts a chat through it on the runtime's real PBX, while the
sign-in, admin and staff pages, other static files and dot-segment tricks answer 404; the port moves and
closes as the configuration says (followed by the runtime's task)."""
from __future__ import annotations

import asyncio
import http.client
import re
import socket
import ssl
import threading

import pytest

from appliance.certs import ensure_certificate
from tests.appliance.test_runtime import officebox, reap, run_lab_box, stop, wait_for_line
from tests.isolated import until
from tests.netns import Lab, needs_netns
from tests.webadmin.test_chat import chat_site  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _LivePbx
from webadmin.publicsite import PublicSite, allowed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, cafile, method: str = "GET", body: str | None = None) -> tuple[int, str, dict]:
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace"), dict(response.getheaders())
    finally:
        conn.close()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def site(chat_site, runtime, tmp_path):  # noqa: F811 (the fixture)
    cert, key = ensure_certificate(tmp_path / "tls", "localhost", alt_names=("127.0.0.1",))
    public = PublicSite(chat_site, lambda _config: (cert, key), lab=True)
    yield public, cert
    public.stop()


def _set(runtime, on: bool, port: int) -> None:
    def mutate(doc):
        doc["pbx"].update(public_web=on, lab_public_web_port=port)
    runtime.engine.update("admin", "public pages", mutate)


def test_only_the_public_pages_on_their_port(site, runtime):
    public, cert = site
    port = _free_port()
    public.sync(runtime.config)
    assert public.port is None and _refused(port)  # off by default
    _set(runtime, True, port)
    public.sync(runtime.config)
    assert public.port == port
    status, html, headers = _get(port, "/public/callback/sales", cert)
    assert status == 200 and 'name="number"' in html and "frame-ancestors" in headers["Content-Security-Policy"]
    status, html, _ = _get(port, "/public/chat/sales", cert)
    assert status == 200 and 'name="token"' in html
    assert _get(port, "/static/officebox.css", cert)[0] == 200
    for path in ("/login", "/", "/callcentre/", "/callcentre/wallboard.json", "/agent/", "/account/",
                 "/static/wallboard.js", "/public/../login", "/public//login", "/publicx", "/public/"):
        assert _get(port, path, cert)[0] == 404, path
    assert _get(port, "/login", cert, "POST", "login=admin&password=x")[0] == 404
    with _LivePbx(runtime) as live:
        assert live.svc.acd_agent_action("202", "login")["status"] == "available"
        token = re.search(r'name="token" value="([^"]+)"', _get(port, "/public/chat/sales", cert)[1]).group(1)
        status, _, headers = _get(port, "/public/chat/sales", cert, "POST", f"token={token}&name=Ann&text=hello")
        assert status == 303 and headers["Location"].startswith("/public/chats/")
        status, html, _ = _get(port, headers["Location"], cert)
        assert status == 200 and "hello" in html
        assert [c["name"] for c in live.svc.acd_chat_agent("202")["offered"]] == ["Ann"]
    moved = _free_port()
    _set(runtime, True, moved)
    public.sync(runtime.config)
    assert public.port == moved and _refused(port) and _get(moved, "/login", cert)[0] == 404
    _set(runtime, False, moved)
    public.sync(runtime.config)
    assert public.port is None and _refused(moved)


def test_the_runtime_task_follows_the_configuration(site, runtime):
    public, cert = site
    port = _free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    task = asyncio.run_coroutine_threadsafe(public.follow(lambda: runtime.config), loop)
    try:
        _set(runtime, True, port)
        assert until(lambda: public.port == port, 10)
        assert _get(port, "/public/callback/sales", cert)[0] == 200
        _set(runtime, False, port)
        assert until(lambda: _refused(port), 10)
    finally:
        task.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_allowed_paths():
    assert allowed("/public/chat/sales") and allowed("/public/chats/abc/messages") and allowed("/static/chat.js")
    assert not any(allowed(p) for p in ("/public", "/public/", "/public/a/../b", "/public/./x", "/static/x.js",
                                         "/login", "/publicchat", "/public/a//b"))


def test_the_setting_on_the_queues_page(chat_site, admin_client, runtime):  # noqa: F811 (the fixture)
    from tests.webadmin.helpers import post
    from tests.webadmin.test_pbx_pages import page
    shown = page(admin_client, "/callcentre/queues")
    assert 'id="f-public_web">' in shown and 'value="8443"' in shown  # off, its default port
    clash = post(admin_client, "/callcentre/public-port", {"public_web": "on", "public_web_port": "443"},
                 form_path="/callcentre/queues")
    assert clash.status_code == 400 and "need a port of their own" in clash.get_data(as_text=True)
    assert not runtime.config.pbx.public_web
    on = post(admin_client, "/callcentre/public-port", {"public_web": "on", "public_web_port": "8444"},
              form_path="/callcentre/queues")
    assert on.status_code == 302 and runtime.config.pbx.public_web and runtime.config.pbx.public_web_port == 8444
    assert 'id="f-public_web" checked' in page(admin_client, "/callcentre/queues")
    off = post(admin_client, "/callcentre/public-port", {"public_web_port": "8444"}, form_path="/callcentre/queues")
    assert off.status_code == 302 and not runtime.config.pbx.public_web


@pytest.mark.slow
@needs_netns
def test_the_running_appliance_serves_the_public_port_as_configured(tmp_path):
    """`officebox run --lab` in a namespace of its own: a console change opens the port (public pages only),
    another closes it."""
    data = tmp_path / "var"
    port = 9443  # pbx.lab_public_web_port's default
    with Lab() as lab:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            admin = wait_for_line(proc, r"web admin: (https://127\.0\.0\.1:\d+/)").group(1)

            def code(url: str) -> str:
                return box.run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url, check=False).stdout

            public = f"https://127.0.0.1:{port}"
            assert code(public + "/static/officebox.css") == "000"  # off: nothing listens
            assert officebox(data, "config", "set", "pbx.public_web", "true").returncode == 0
            assert until(lambda: code(public + "/static/officebox.css") == "200", 15)
            assert (code(public + "/login"), code(public + "/")) == ("404", "404")
            assert code(admin + "login") == "302"  # the admin's port still answers (the first-boot wizard)
            assert officebox(data, "config", "set", "pbx.public_web", "false").returncode == 0
            assert until(lambda: code(public + "/static/officebox.css") == "000", 15)
            stop(proc)
        finally:
            reap(proc)
