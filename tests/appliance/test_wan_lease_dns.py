"""The factory setting on a real box: the WAN by DHCP, no resolver typed in (dns.upstreams and
network.wan.dns empty). The network service runs the udhcpc client and publishes its lease on the bus
(appliance/wanlease.py); the DNS service, in its own process as the appliance runs it, forwards to the
resolvers of that lease and follows them when a renewal brings others.

Namespaces: "isp" runs busybox udhcpd (handing the box's WAN an address and `opt dns`) and two dnsmasq
resolvers; "box" runs the network service (in the test's process, as in the appliance's) and the DNS
child; "pc" on the LAN asks the box with dig."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from appliance import network
from appliance.bus import appliance_bus
from appliance.context import Context
from appliance.netservice import NetworkService
from appliance.wanlease import wan_lease_bus
from services.dns import DnsService
from tests.isolated import isolated, until
from tests.netns import Lab, needs_netns, udhcpd
from tests.runtimes import reachable_dir

pytestmark = [needs_netns, pytest.mark.slow]
RESOLVER_A, RESOLVER_B = "198.51.100.1", "198.51.100.2"


def dnsmasq(isp, address: str, answer: str) -> subprocess.Popen:
    return isp.popen(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
                      "--user=root", "--bind-interfaces", f"--listen-address={address}", "--port", "53",
                      f"--address=/example.test/{answer}"], stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def dig(pc, name: str) -> list[str]:
    out = pc.run("dig", "@10.77.0.1", "+time=2", "+tries=1", "+short", name, check=False, timeout=10).stdout
    return out.split()


def test_the_isolated_dns_forwards_to_the_resolvers_of_the_wan_dhcp_lease_and_follows_a_renewal():
    with reachable_dir("ob-wandns-") as top, Lab() as lab:
        box, pc, isp = lab.host("box"), lab.host("pc"), lab.host("isp")
        lan_if, _ = lab.link(box, "10.77.0.1/24", pc, "10.77.0.20/24")
        wan_if, isp_if = lab.link(box, None, isp, f"{RESOLVER_A}/24")
        isp.run("ip", "addr", "add", f"{RESOLVER_B}/24", "dev", isp_if)
        pc.run("ip", "route", "add", "default", "via", "10.77.0.1")
        (top / "isp").mkdir()
        peers = [udhcpd(isp, top / "isp", isp_if, RESOLVER_A, RESOLVER_A, 3600),
                 dnsmasq(isp, RESOLVER_A, "198.51.100.7"), dnsmasq(isp, RESOLVER_B, "198.51.100.8")]
        ctx = Context(top / "var", lab=False)
        document = {"system": {"hostname": "box", "domain": "office.test"},
                    "network": {"lan": {"interface": lan_if, "address": "10.77.0.1/24"},
                                "wan": {"interface": wan_if, "mode": "dhcp"}},
                    "dns": {"upstreams": []}}
        net = NetworkService(ctx)
        net.netns = box.name
        try:
            with isolated(ctx, DnsService(ctx), document, box, bus=appliance_bus(ctx)) as run:
                config = run.engine.current_config()
                assert DnsService.learns_from_wan(config)  # the factory setting
                assert run.service.proc.pid != os.getpid()
                run.call(net.start(config))
                try:
                    assert until(lambda: dig(pc, "www.example.test") == ["198.51.100.7"], 40), \
                        f"no answer through the WAN lease's resolver; bus: {wan_lease_bus(ctx).get(wan_if)}"
                    assert run.call(run.service.refresh_status()).health == "ok"

                    # the provider's router now hands out another resolver: the renewal brings it
                    stop(peers[0])
                    peers[0] = udhcpd(isp, top / "isp", isp_if, RESOLVER_A, RESOLVER_B, 3600)
                    time.sleep(0.5)  # udhcpd listening
                    client = network._dhcp_clients[(box.name, wan_if)]
                    os.kill(client.pid, signal.SIGUSR1)  # udhcpc: renew now
                    assert until(lambda: (wan_lease_bus(ctx).get(wan_if) or None) is not None
                                 and wan_lease_bus(ctx).get(wan_if).dns == (RESOLVER_B,), 30), \
                        f"the renewal's resolver was not published: {wan_lease_bus(ctx).get(wan_if)}"
                    assert until(lambda: dig(pc, "new.example.test") == ["198.51.100.8"], 20), \
                        "the DNS service did not follow the renewed lease"

                    # the WAN is no longer DHCP: its lease is no longer published
                    run.engine.apply({**document, "network": {**document["network"], "wan": {"mode": "none"}}},
                                     "test", "no WAN")
                    run.call(net.reload(run.engine.current_config()))
                    assert wan_lease_bus(ctx).get(wan_if) is None
                    run.call(net.reload(config))
                    assert until(lambda: wan_lease_bus(ctx).get(wan_if) is not None, 10), "DHCP again: not published"
                finally:
                    run.call(net.stop())
                assert wan_lease_bus(ctx).get(wan_if) is None  # the service stopped: the lease is no longer published
        finally:
            for proc in peers:
                stop(proc)
