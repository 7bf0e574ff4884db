"""The firewall with the real nft in namespaces: NAT, default deny, port forwards, commit-confirm."""
from __future__ import annotations

import asyncio
import time

import pytest

from appliance import schema
from appliance.context import Context
from services.firewall import nft
from services.firewall.service import FirewallService
from tests.netns import needs_netns
from tests.services.firewall.topology import INET, LAN_BOX, LAN_PC, WAN_BOX, Appliance, Edge, fetch

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]


@pytest.fixture(scope="module")
def edge():
    net = Edge()
    yield net
    net.close()


@pytest.fixture
def firewall(edge, tmp_path):
    svc = FirewallService(Context(tmp_path / "var", lab=True), netns=edge.box.name)
    yield svc
    asyncio.run(svc.stop())


def start(svc, document) -> None:
    asyncio.run(svc.start(schema.parse(document)))


def test_lan_reaches_internet_through_masquerade(edge, firewall):
    start(firewall, edge.document())
    code, body = fetch(edge.pc, f"http://{INET}:8000/")
    assert code == 0 and body == f"from {WAN_BOX}"


def test_without_masquerade_replies_cannot_come_back(edge, firewall):
    start(firewall, edge.document({"masquerade": False}))
    code, _ = fetch(edge.pc, f"http://{INET}:8000/", timeout=1.5)
    assert code == 28


def test_inbound_from_wan_is_dropped(edge, firewall):
    start(firewall, edge.document())
    edge.inet.run("ip", "route", "replace", "192.0.2.0/24", "via", WAN_BOX)
    try:
        assert fetch(edge.inet, f"http://{LAN_PC}:8080/", timeout=1.5)[0] == 28   # to the LAN
        assert fetch(edge.inet, f"http://{WAN_BOX}:443/", timeout=1.5)[0] == 28   # to the box
        assert fetch(edge.pc, f"http://{LAN_BOX}:443/")[0] == 0                   # the LAN may
    finally:
        edge.inet.run("ip", "route", "del", "192.0.2.0/24", check=False)


def test_port_forward_reaches_the_lan_server(edge, firewall):
    forward = {"name": "web", "wan_port": 8081, "to_address": LAN_PC, "to_port": 8080}
    start(firewall, edge.document({"port_forwards": [forward]}))
    code, body = fetch(edge.inet, f"http://{WAN_BOX}:8081/")
    assert code == 0 and body == f"from {INET}"
    # only that port: another one stays closed
    assert fetch(edge.inet, f"http://{WAN_BOX}:8080/", timeout=1.5)[0] == 28


def test_port_forward_limited_to_sources(edge, firewall):
    forward = {"name": "web", "wan_port": 8081, "to_address": LAN_PC, "to_port": 8080,
               "sources": ["203.0.113.0/24"]}
    start(firewall, edge.document({"port_forwards": [forward]}))
    assert fetch(edge.inet, f"http://{WAN_BOX}:8081/", timeout=1.5)[0] == 28


def test_remote_admin_only_from_listed_sources(edge, firewall):
    start(firewall, edge.document({"admin_from_wan": [f"{INET}/32"]}))
    assert fetch(edge.inet, f"http://{WAN_BOX}:443/")[0] == 0
    old = schema.parse(edge.document({"admin_from_wan": [f"{INET}/32"]}))
    new = schema.parse(edge.document({"admin_from_wan": ["203.0.113.0/24"]}))
    asyncio.run(firewall.reload(new))
    assert firewall.confirm_window(old, new) == new.firewall.confirm_timeout  # touches access to the box
    assert fetch(edge.inet, f"http://{WAN_BOX}:443/", timeout=1.5)[0] == 28


def test_rate_limit_drops_a_flood_of_new_connections(edge, firewall):
    start(firewall, edge.document({"admin_from_wan": [f"{INET}/32"], "new_connections_per_second": 1,
                                   "burst": 2}))
    flood = ("import socket\nok = 0\nfor _ in range(12):\n    try:\n"
             f"        socket.create_connection(('{WAN_BOX}', 443), 0.3).close(); ok += 1\n"
             "    except OSError:\n        pass\nprint(ok)")
    accepted = int(edge.inet.run("python3", "-c", flood).stdout)
    assert 1 <= accepted < 12
    assert "counter packets 0 " not in next(
        line for line in nft.list_table(edge.box.name).splitlines() if "@flood4" in line)


def test_broken_ruleset_keeps_the_old_one(edge, firewall, tmp_path):
    start(firewall, edge.document())
    before = nft.list_table(edge.box.name)
    bad = tmp_path / "bad.nft"
    bad.write_text(firewall.loaded.replace("masquerade", "masquerade\n\t\tbogus statement"))
    with pytest.raises(Exception, match="nft refused"):
        nft.check(bad)
    with pytest.raises(Exception, match="nft refused"):
        nft.load(bad, edge.box.name)
    assert nft.list_table(edge.box.name) == before
    assert fetch(edge.pc, f"http://{INET}:8000/")[0] == 0


# -- commit-confirm with the real apply engine and supervisor ----------------------------------------
@pytest.fixture
def appliance(edge, tmp_path):
    app = Appliance(tmp_path / "box", {"firewall": FirewallService}, edge.box.name)
    yield app
    app.close()


def lock_out(document: dict) -> None:
    document["firewall"]["anti_lockout"] = False
    document["firewall"]["lan"]["box"] = False
    document["firewall"]["confirm_timeout"] = 2


def admin_reachable(edge) -> bool:
    return fetch(edge.pc, f"http://{LAN_BOX}:443/", timeout=1.0)[0] == 0


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_lockout_is_rolled_back_when_not_confirmed(edge, appliance):
    confirmation = appliance.engine.confirmation
    appliance.boot(edge.document())
    good = appliance.store.current_id()
    assert admin_reachable(edge)
    appliance.engine.update("admin", "tighten the LAN", lock_out)
    assert confirmation.pending()["previous_revision"] == good
    assert not admin_reachable(edge)  # the change is live...
    assert wait_for(lambda: confirmation.last_rollback and confirmation.last_rollback["reverted"])
    assert admin_reachable(edge)      # ...and undone
    current = appliance.store.current()
    assert current.id > good and current.document == appliance.store.revision(good).document
    assert current.summary == f"roll back to revision #{good}"
    assert confirmation.pending() is None


def test_lockout_stays_when_confirmed(edge, appliance):
    confirmation = appliance.engine.confirmation
    appliance.boot(edge.document())
    appliance.engine.update("admin", "tighten the LAN", lock_out)
    changed = appliance.store.current_id()
    assert confirmation.confirm()
    time.sleep(3)  # longer than the 2 s confirm timeout
    assert confirmation.last_rollback is None
    assert appliance.store.current_id() == changed
    assert not admin_reachable(edge)


def test_forward_only_change_needs_no_confirmation(edge, appliance):
    confirmation = appliance.engine.confirmation
    appliance.boot(edge.document())
    forward = {"name": "web", "wan_port": 8081, "to_address": LAN_PC, "to_port": 8080}
    appliance.engine.update("admin", "publish", lambda d: d["firewall"]["port_forwards"].append(forward))
    assert confirmation.pending() is None
    assert fetch(edge.inet, f"http://{WAN_BOX}:8081/")[0] == 0


def test_a_pending_confirmation_survives_a_restart_and_still_expires(edge, tmp_path):
    first = Appliance(tmp_path / "box", {"firewall": FirewallService}, edge.box.name)
    first.boot(edge.document())
    good = first.store.current_id()
    first.engine.update("admin", "tighten the LAN", lambda d: (lock_out(d), d["firewall"].update(confirm_timeout=3)))
    assert first.engine.confirmation.pending() and not admin_reachable(edge)
    first.close()  # e.g. the appliance restarts before anyone confirmed
    second = Appliance(tmp_path / "box", {"firewall": FirewallService}, edge.box.name)
    try:
        second.start()  # comes back on the unconfirmed configuration...
        confirmation = second.engine.confirmation
        assert confirmation.pending()["previous_revision"] == good
        assert wait_for(lambda: confirmation.last_rollback is not None)
        assert admin_reachable(edge)  # ...and still falls back when the window closes
        assert confirmation.pending() is None
        assert second.store.current().document == second.store.revision(good).document
    finally:
        second.close()
