"""The firewall pages with the firewall in its own process (as `officebox run` has it): the page asks the
process whether rules really load (FirewallService.live, a property, through FirewallClient). Before, the
process called the property's value and the page was a server error."""
from __future__ import annotations

import asyncio
import re

import pytest

from services.firewall.service import FirewallService
from tests.netns import Lab, needs_netns
from tests.runtimes import service_process
from tests.webadmin.test_pbx_unban_restart import runtime  # noqa: F401  (data the service users can reach)

pytestmark = pytest.mark.slow


@pytest.fixture
def firewall_process(admin_client, runtime):  # noqa: F811
    with service_process(runtime, "firewall") as (service, run):
        run(service.start(runtime.config))
        yield service


def test_the_firewall_page_reads_its_process(admin_client, runtime, firewall_process):  # noqa: F811
    assert runtime.client("firewall").reachable and firewall_process.alive
    page = admin_client.get("/firewall/")
    assert page.status_code == 200
    assert "Lab mode: the ruleset is generated and checked with nft, not loaded." in page.get_data(as_text=True)
    assert runtime.client("firewall").live() is False  # lab mode: answered by the process


@needs_netns
def test_the_firewall_page_shows_what_the_counted_rules_matched(admin_client, runtime):  # noqa: F811
    """Rules loaded into a namespace (the service's netns, as on the box): the page lists the counters from nft,
    with the LAN PC's connections counted by the rule that lets them in; in lab mode the section is not shown."""
    assert 'id="counters"' not in admin_client.get("/firewall/").get_data(as_text=True)
    with Lab() as lab:
        box, pc = lab.host("box"), lab.host("pc")
        lan_if, _ = lab.link(box, "192.0.2.1/24", pc, "192.0.2.10/24")
        runtime.engine.update("admin", "lan, printer rule", lambda doc: (
            doc["network"]["lan"].update(interface=lan_if, address="192.0.2.1/24"),
            doc.setdefault("firewall", {}).update(rules=[{"name": "printer-ipp", "action": "accept",
                                                          "source_zone": "lan", "protocol": "tcp", "ports": "631"}])))
        firewall = runtime.services["firewall"] = FirewallService(runtime.ctx, netns=box.name)
        try:
            asyncio.run(firewall.start(runtime.config))
            for _ in range(2):
                pc.run("curl", "-s", "-m", "2", "http://192.0.2.1:631/", check=False)
            page = admin_client.get("/firewall/").get_data(as_text=True)
            section = page[page.index('id="counters"'):]
            row = re.search(r"<tr><td>printer-ipp</td><td class=\"mono\">input</td><td>(\d+)</td>", section)
            assert row and int(row.group(1)) >= 2, section[:2000]
        finally:
            asyncio.run(firewall.stop())
