"""DHCP and DNS together in the box's namespace, as the supervisor runs them (one loop):
a udhcpc client's name resolves with dig from the LAN, upstream names come from a dnslib server
in a 'WAN' namespace and are cached, and a WAN client is REFUSED (not an open resolver)."""
from __future__ import annotations

import pytest

from services.dhcp import SERVICE as DHCP
from services.dns import SERVICE as DNS
from tests.netns import Lab, needs_netns
from tests.services.dhcp.clients import udhcpc
from tests.services.dhcp.helpers import LoopThread, in_netns, lan_config
from tests.services.dns.upstream import Upstream

pytestmark = [needs_netns, pytest.mark.slow]


def dig(host, server: str, *args: str) -> str:
    return host.run("dig", f"@{server}", "+time=2", "+tries=1", *args, check=False).stdout


def status(output: str) -> str:
    return output.split("status: ", 1)[1].split(",", 1)[0] if "status: " in output else "no answer"


def test_dhcp_names_upstream_cache_and_wan_refused(tmp_path):
    from appliance.context import Context

    ctx = Context(tmp_path / "var", lab=False)
    with Lab() as lab:
        box, pc, wan = lab.host("box"), lab.host("pc"), lab.host("wan")
        box_if, pc_if = lab.link(box, "10.77.0.1/24", pc, None)
        lab.link(box, "198.51.100.1/24", wan, "198.51.100.53/24")
        wan.run("ip", "route", "add", "10.77.0.0/24", "via", "198.51.100.1")
        with in_netns(wan):
            upstream = Upstream("198.51.100.53", 53)
        config = lan_config(box_if, dhcp={"conflict_probe": False}, dns={"upstreams": []})
        document = config.model_dump(mode="json")
        document["network"]["wan"] = {"interface": "wan0", "mode": "static", "address": "198.51.100.1/24",
                                      "gateway": "198.51.100.53", "dns": ["198.51.100.53"]}
        config = type(config).model_validate(document)
        runner = LoopThread(box)
        dhcp, dns = DHCP(ctx), DNS(ctx)
        runner.call(dhcp.start(config))
        runner.call(dns.start(config))
        try:
            env = udhcpc(pc, pc_if, tmp_path / "c", "-x", "hostname:Reception-PC")
            pc.run("ip", "addr", "add", f"{env['ip']}/24", "dev", pc_if)
            assert env["dns"] == "10.77.0.1"
            assert dig(pc, "10.77.0.1", "+short", "reception-pc.office.test").split() == [env["ip"]]
            assert dig(pc, "10.77.0.1", "+short", "-x", env["ip"]).split() == ["reception-pc.office.test."]
            answer = dig(pc, "10.77.0.1", "+short", "intranet.example.net").split()
            assert answer and answer[0].startswith("203.0.113.")
            assert dig(pc, "10.77.0.1", "+short", "intranet.example.net").split() == answer
            assert upstream.asked["intranet.example.net"] == 1  # the second came from the cache
            outside = dig(wan, "10.77.0.1", "intranet.example.net")
            assert status(outside) == "REFUSED" and "203.0.113." not in outside
            assert status(dig(wan, "10.77.0.1", "reception-pc.office.test")) == "REFUSED"
            assert status(dig(wan, "10.77.0.1", "+tcp", "intranet.example.net")) == "REFUSED"
            assert runner.sync(dns.status).figures["refused"] == 3
        finally:
            runner.call(dns.stop())
            runner.call(dhcp.stop())
            runner.close()
            upstream.close()
