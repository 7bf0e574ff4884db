"""The usual office: the WAN gets its address and resolvers by DHCP from the provider's router and no
resolver is configured by hand. The forwarder follows the resolvers of the WAN's lease, which the network
service publishes on the bus (appliance/wanlease.py; real udhcpc on the box, busybox udhcpd and a dnslib
server on the 'ISP' side), and the LAN resolves through it."""
from __future__ import annotations

import time

import pytest

import appliance.netservice as netservice_module
from appliance.context import Context
from appliance.netservice import NetworkService
from appliance.network import wait_for_lease
from services.dns import SERVICE as DNS
from tests.netns import Lab, needs_netns, udhcpd
from tests.services.dhcp.helpers import LoopThread, in_netns, lan_config
from tests.services.dns.upstream import Upstream

pytestmark = [needs_netns, pytest.mark.slow]


def test_forwarder_uses_the_resolvers_of_the_wan_dhcp_lease(tmp_path, monkeypatch):
    monkeypatch.setattr(netservice_module, "LEASE_POLL", 0.2)
    ctx = Context(tmp_path / "var", lab=False)
    with Lab() as lab:
        box, pc, isp = lab.host("box"), lab.host("pc"), lab.host("isp")
        box_if, pc_if = lab.link(box, "10.77.0.1/24", pc, "10.77.0.20/24")
        wan_if, isp_if = lab.link(box, None, isp, "198.51.100.1/24")
        server = udhcpd(isp, tmp_path, isp_if, dns="198.51.100.1")
        with in_netns(isp):
            upstream = Upstream("198.51.100.1", 53)
        config = lan_config(box_if, dns={"upstreams": []})
        document = config.model_dump(mode="json")
        document["network"]["wan"] = {"interface": wan_if, "mode": "dhcp"}
        config = type(config).model_validate(document)
        runner = LoopThread(box)
        dns = DNS(ctx)
        net = NetworkService(ctx)
        net.netns = box.name
        try:
            runner.call(net.start(config))
            runner.call(dns.start(config))
            assert wait_for_lease(ctx, box.name, wan_if, timeout=30) is not None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and runner.sync(dns.status).health != "ok":
                time.sleep(0.2)
            assert runner.sync(lambda: dns.server.forwarder.upstreams) == [("198.51.100.1", 53)]
            answer = pc.run("dig", "@10.77.0.1", "+time=2", "+tries=1", "+short", "intranet.example.net").stdout
            assert answer.split() and answer.split()[0].startswith("203.0.113.")
            assert upstream.asked["intranet.example.net"] == 1
        finally:
            runner.call(dns.stop())
            runner.call(net.stop())
            runner.close()
            server.kill()
            server.wait(5)
            upstream.close()
