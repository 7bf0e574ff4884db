"""Names the services bring (appliance.contributions.DnsName), served by the DNS service, asked with dig:
provisioning and mail declare theirs; the admin's own record of a name wins; a service switched off takes
its name away on reload; a DHCP client cannot take a service's name."""
from __future__ import annotations

import ipaddress
import time

from appliance import schema
from appliance.leases import LeaseInfo, lease_bus
from services.dns import SERVICE
from tests.services.dhcp.helpers import LoopThread
from tests.services.dns.digtool import dig, status


def _config(records=(), **sections):
    """The whole schema (every service that may bring a name), the LAN 10.77.0.1/24 of office.test."""
    document = {"system": {"hostname": "box", "domain": "office.test"},
                "network": {"lan": {"interface": "lan0", "address": "10.77.0.1/24"}},
                "dns": {"lab_port": 0, "upstreams": [], "records": list(records)},
                "provisioning": {"enabled": True}, "mail": {"enabled": True}}
    for name, values in sections.items():
        document[name].update(values)
    return schema.parse(document)


def test_services_names_are_served(ctx):
    runner, svc = LoopThread(), SERVICE(ctx)
    try:
        runner.call(svc.start(_config()))
        port = svc.addresses[0][1]
        assert dig(port, "+short", "provisioning.office.test").split() == ["10.77.0.1"]
        assert dig(port, "+short", "mail.office.test").split() == ["10.77.0.1"]
        assert dig(port, "+short", "mail").split() == ["10.77.0.1"]  # a bare name of the LAN
        assert dig(port, "+short", "-x", "10.77.0.1").split() == ["box.office.test."]  # the box keeps its PTR

        lease = LeaseInfo(ip=ipaddress.IPv4Address("10.77.0.50"), mac="02:00:00:00:00:50", hostname="provisioning",
                          expires=time.time() + 600, network="lan")
        lease_bus(ctx).publish("bound", lease)
        time.sleep(0.2)
        assert dig(port, "+short", "provisioning.office.test").split() == ["10.77.0.1"]

        runner.call(svc.reload(_config(records=[{"name": "mail", "value": "10.77.0.25"}],
                                       provisioning={"enabled": False})))
        assert dig(port, "+short", "mail.office.test").split() == ["10.77.0.25"]  # the admin's record wins
        # provisioning is off: its name is gone, and the DHCP client may now have it
        assert dig(port, "+short", "provisioning.office.test").split() == ["10.77.0.50"]
        runner.call(svc.reload(_config(provisioning={"enabled": False}, mail={"enabled": False})))
        assert status(dig(port, "mail.office.test")) == "NXDOMAIN"
    finally:
        runner.call(svc.stop())
        runner.close()
