"""Configuration checks of the DHCP section."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.dhcp import SERVICE, default_pool
from tests.services.dhcp.helpers import lan_config


def errors(ctx, **dhcp):
    return SERVICE(ctx).validate(lan_config("lan0", dhcp=dhcp))


def test_pool_must_lie_inside_the_lan(ctx):
    """Each problem names its field (dotted path), so the page shows it next to that field."""
    assert errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.0.20"}]) == []
    outside = errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.1.20"}])[0]
    assert outside.path == "dhcp.pools.0.start" and "must lie inside" in outside.message
    assert "box's own address" in errors(ctx, pools=[{"start": "10.77.0.1", "end": "10.77.0.20"}])[0].message
    overlap = errors(ctx, pools=[{"start": "10.77.0.10", "end": "10.77.0.20"},
                                 {"start": "10.77.0.15", "end": "10.77.0.30"}])[0]
    assert overlap.path == "dhcp.pools.1.start" and "overlap" in overlap.message
    voice = errors(ctx, pools=[{"network": "voice", "start": "10.77.0.10", "end": "10.77.0.20"}])[0]
    assert voice.path == "dhcp.pools.0.network" and "voice network is not enabled" in voice.message


def test_reservations_are_checked(ctx):
    [problem] = errors(ctx, reservations=[{"mac": "02:00:00:00:00:01", "ip": "10.9.0.5"}])
    assert problem.path == "dhcp.reservations.0.ip" and "not inside a LAN network" in problem.message
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


def _lease(i: int, **kw):
    import ipaddress
    import time

    from services.dhcp.leases import Lease

    return Lease(ip=ipaddress.IPv4Address("10.77.0.0") + 256 + i, mac=f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}",
                 network="lan", expires=time.time() + 3600, **kw)


def test_a_commit_writes_what_changed_not_the_whole_table(ctx):
    """5000 leases on disk; one more ACK appends one journal line instead of rewriting 5000."""
    import asyncio

    from services.dhcp.leases import LeaseTable

    path = ctx.state_dir("dhcp") / "leases.json"
    table = LeaseTable(path)
    for i in range(5000):
        table.put(_lease(i))
    table.save_now()
    snapshot = path.read_bytes()
    table.put(_lease(5000, hostname="new-pc", client_id="01aa"))
    asyncio.run(table.commit())
    assert path.read_bytes() == snapshot
    assert 0 < table.journal_path.stat().st_size < 300
    again = LeaseTable(path)
    again.load()
    assert len(again.by_ip) == 5001 and again.by_ip[_lease(5000).ip].hostname == "new-pc"
    assert again.by_ip[_lease(5000).ip].client_id == "01aa"


def test_journal_replay_release_quarantine_and_a_torn_last_line(ctx):
    import asyncio
    import time

    from services.dhcp.leases import LeaseTable

    path = ctx.state_dir("dhcp") / "leases.json"
    table = LeaseTable(path)
    for i in range(3):
        table.put(_lease(i))
    asyncio.run(table.commit())
    table.free(_lease(1).ip)
    table.quarantine(_lease(2).ip, time.time() + 600)
    asyncio.run(table.commit())
    with open(table.journal_path, "ab") as journal:
        journal.write(b'{"ip":"10.77.1.9","lease":{"ip":"10.77.1.9","ma')  # the power went here
    again = LeaseTable(path)
    again.load()
    assert {str(ip): lease.state for ip, lease in again.by_ip.items()} == {"10.77.1.0": "bound", "10.77.1.1": "free"}
    assert again.is_quarantined(_lease(2).ip, time.time())


def test_a_long_journal_is_folded_into_the_snapshot(ctx):
    import asyncio

    from services.dhcp.leases import JOURNAL_MIN, LeaseTable

    path = ctx.state_dir("dhcp") / "leases.json"
    table = LeaseTable(path)

    async def renewals():  # ten devices renewing, over and over
        for n in range(JOURNAL_MIN + 5):
            table.put(_lease(n % 10, hostname=f"pc-{n}"))
            await table.commit()
    asyncio.run(renewals())
    assert len(table.journal_path.read_text().splitlines()) < JOURNAL_MIN
    again = LeaseTable(path)
    again.load()
    assert len(again.by_ip) == 10 and again.by_ip[_lease(4).ip].hostname == f"pc-{JOURNAL_MIN + 4}"
