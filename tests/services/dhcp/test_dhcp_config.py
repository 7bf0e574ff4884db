"""Configuration checks of the DHCP section."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.dhcp import SERVICE, default_pool
from tests.services.dhcp.helpers import lan_config


def errors(ctx, **dhcp):
    return SERVICE(ctx).validate(lan_config("lan0", dhcp=dhcp))


def test_pool_must_lie_inside_the_lan(ctx):
    assert errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.0.20"}]) == []
    assert "must lie inside" in errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.1.20"}])[0]
    assert "box's own address" in errors(ctx, pools=[{"start": "10.77.0.1", "end": "10.77.0.20"}])[0]
    assert "overlap" in errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.0.20"},
                                           {"start": "10.77.0.15", "end": "10.77.0.30"}])[0]
    assert "voice network is not enabled" in errors(ctx, pools=[{"network": "voice", "start": "10.77.0.10",
                                                                  "end": "10.77.0.20"}])[0]


def test_reservations_are_checked(ctx):
    assert "not inside a LAN network" in errors(ctx, reservations=[{"mac": "02:00:00:00:00:01", "ip": "10.9.0.5"}])[0]
    with pytest.raises(ValidationError, match="reserved twice"):
        lan_config("lan0", dhcp={"reservations": [{"mac": "02:00:00:00:00:01", "ip": "10.77.0.5"},
                                                  {"mac": "02-00-00-00-00-01", "ip": "10.77.0.6"}]})
    with pytest.raises(ValidationError, match="not a MAC"):
        lan_config("lan0", dhcp={"reservations": [{"mac": "nope", "ip": "10.77.0.5"}]})
    with pytest.raises(ValidationError, match="ends before it starts"):
        lan_config("lan0", dhcp={"pools": [{"start": "10.77.0.9", "end": "10.77.0.5"}]})


def test_lab_mode_serves_only_a_named_interface(ctx):
    svc = SERVICE(ctx)
    assert svc.interfaces(lan_config("lan0")) == {}
    assert svc.interfaces(lan_config("lan0", dhcp={"lab_interface": "veth9"})) == {"lan": "veth9"}


def test_default_pool():
    import ipaddress
    assert default_pool(ipaddress.IPv4Network("192.168.1.0/24")) == (ipaddress.IPv4Address("192.168.1.100"),
                                                                      ipaddress.IPv4Address("192.168.1.199"))


def test_corrupt_lease_file_is_survived(ctx, caplog):
    import asyncio

    path = ctx.state_dir("dhcp") / "leases.json"
    path.write_text('{"leases": [{"ip": "10.77.0.5", "mac": "02:00:00:00:00:01"')  # cut off by a crash
    svc = SERVICE(ctx)

    async def cycle():
        await svc.start(lan_config("lan0"))
        status = svc.status()
        await svc.stop()
        return status

    status = asyncio.run(cycle())
    assert status.health == "ok" and "no interface" in status.summary
    assert "unreadable" in caplog.text


def test_bad_lease_records_are_skipped(ctx):
    import json
    import time

    from services.dhcp.leases import LeaseTable

    path = ctx.state_dir("dhcp") / "leases.json"
    good = {"ip": "10.77.0.5", "mac": "02:00:00:00:00:01", "network": "lan", "expires": time.time() + 60}
    path.write_text(json.dumps({"leases": [good, {"ip": "not-an-ip", "mac": "x", "network": "lan", "expires": 1},
                                           {"mac": "02:00:00:00:00:02"}]}))
    table = LeaseTable(path)
    table.load()
    assert [str(lease.ip) for lease in table.bound(time.time())] == ["10.77.0.5"]
