"""The restart button of a service card: asked once on a confirmation page, then the DNS service's own
process is replaced (a new pid) by the supervisor, dig gets answers again, and an audit line is logged."""
from __future__ import annotations

import logging
import socket

import pytest

from appliance.supervisor import Supervisor
from tests.runtimes import reachable_runtime, service_process
from tests.services.dns.digtool import dig, status
from tests.webadmin.helpers import post
from tests.webadmin.tasks import follow

pytestmark = pytest.mark.slow


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def runtime():
    """As conftest's, with its data outside pytest's tmp root (0700, which the service users cannot cross;
    see tests/appliance/conftest.py data)."""
    with reachable_runtime("ob-restart-") as rt:
        yield rt


@pytest.fixture
def dns_process(admin_client, runtime):
    """The runtime's DNS service in its own process under a supervisor on a loop thread, as when serving."""
    port = free_udp_port()
    runtime.engine.update("admin", "dns port", lambda doc: doc.setdefault("dns", {}).update(lab_port=port))
    with service_process(runtime, "dns") as (dns, run):
        supervisor = runtime.supervisor = Supervisor(runtime.ctx, {"dns": dns})
        try:
            run(supervisor.start(runtime.config))
            yield dns, port
        finally:
            run(supervisor.stop(), 30)


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
    done = follow(admin_client, post(admin_client, "/services/dns/restart", {}, form_path="/services/dns/restart"))
    assert done.status_code == 200 and 'id="task-done"' in done.get_data(as_text=True)
    assert "was restarted." in done.get_data(as_text=True) and 'href="/#service-dns"' in done.get_data(as_text=True)
    assert dns.alive and dns.proc.pid != before
    assert status(dig(port, name)) == "NOERROR"
    assert "restart of the dns service by admin" in caplog.text
