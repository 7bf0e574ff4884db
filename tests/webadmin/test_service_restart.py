"""The restart button of a service card: asked once on a confirmation page, then the DNS service's own
process is replaced (a new pid) by the supervisor, dig gets answers again, and an audit line is logged."""
from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from appliance.bus import Bus, BusHub
from appliance.runtime import Runtime
from appliance.servicehost import IsolatedService
from appliance.supervisor import Supervisor
from tests.services.dns.digtool import dig, status
from tests.webadmin.helpers import post

pytestmark = pytest.mark.slow


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def runtime():
    """As conftest's, with its data outside pytest's tmp root (0700, which the service users cannot cross;
    see tests/appliance/conftest.py data)."""
    top = Path(tempfile.mkdtemp(prefix="ob-restart-"))
    rt = Runtime(top / "var", lab=True)
    rt.bootstrap()
    yield rt
    rt.store.close()
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def dns_process(admin_client, runtime):
    """The runtime's DNS service in its own process under a supervisor on a loop thread, as when serving."""
    port = free_udp_port()
    runtime.engine.update("admin", "dns port", lambda doc: doc.setdefault("dns", {}).update(lab_port=port))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    hub = BusHub(Bus())
    bus_path = runtime.ctx.run_dir("core") / "bus.sock"
    asyncio.run_coroutine_threadsafe(hub.serve(bus_path), loop).result(10)
    dns = runtime.services["dns"] = IsolatedService(runtime.services["dns"], bus_path)
    supervisor = runtime.supervisor = Supervisor(runtime.ctx, {"dns": dns})
    try:
        asyncio.run_coroutine_threadsafe(supervisor.start(runtime.config), loop).result(60)
        yield dns, port
    finally:
        asyncio.run_coroutine_threadsafe(supervisor.stop(), loop).result(30)
        asyncio.run_coroutine_threadsafe(hub.close(), loop).result(10)
        runtime.supervisor = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_restart_the_dns_process_from_its_card(admin_client, runtime, dns_process, caplog):
    caplog.set_level(logging.INFO, "officebox.audit")
    dns, port = dns_process
    name = f"{runtime.config.system.hostname}.{runtime.config.system.domain}"
    assert status(dig(port, name)) == "NOERROR"
    before = dns.proc.pid

    card = admin_client.get("/").get_data(as_text=True)
    assert 'href="/services/dns/restart"' in card and 'href="/services/network/restart"' not in card
    confirm = admin_client.get("/services/dns/restart")
    assert confirm.status_code == 200 and 'id="restart-confirm"' in confirm.get_data(as_text=True)
    assert dns.proc.pid == before  # the page only asks
    done = post(admin_client, "/services/dns/restart", {}, form_path="/services/dns/restart")
    assert done.status_code == 302 and done.headers["Location"].endswith("/#service-dns")
    assert dns.alive and dns.proc.pid != before
    assert status(dig(port, name)) == "NOERROR"
    assert "restart of the dns service by admin" in caplog.text
    assert "was restarted." in admin_client.get("/").get_data(as_text=True)
