"""Firewall rules: edited with the add form's checks (input kept on error), moved up and down in one change,
and the new order is the order of the rendered nftables ruleset (checked by `nft -c` where available)."""
from __future__ import annotations

import re
import shutil

import pytest

from services.firewall import nft
from services.firewall.ruleset import render
from tests.webadmin.helpers import post

RULES = [{"name": "ssh in", "source_zone": "wan", "ports": "22", "sources": ["203.0.113.0/24"]},
         {"name": "web in", "source_zone": "wan", "ports": "8080"},
         {"name": "no smb", "source_zone": "wan", "action": "reject", "ports": "445"}]


@pytest.fixture
def fw_client(admin_client, runtime):
    runtime.engine.update("admin", "test rules", lambda doc: doc["firewall"].update(rules=[dict(r) for r in RULES]))
    return admin_client


def error_of(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return match.group(1) if match else None


def names(runtime) -> list[str]:
    return [r.name for r in runtime.store.current().config.firewall.rules]


def ruleset_order(runtime, tmp_path) -> list[str]:
    text = render(runtime.store.current().config)
    if shutil.which("nft") and shutil.which("unshare"):
        path = tmp_path / "ruleset.nft"
        path.write_text(text)
        nft.check(path)   # the real nft accepts the reordered ruleset
    return [n for n in re.findall(r'comment "([^"]+)"', text) if n in {r["name"] for r in RULES}]


def test_edit_keeps_input_on_error_then_saves(fw_client, runtime):
    form = fw_client.get("/firewall/rules/1/edit").get_data(as_text=True)
    assert 'value="web in"' in form and 'value="8080"' in form
    typed = {"name": "web in", "action": "accept", "source_zone": "wan", "destination": "box", "protocol": "tcp",
             "ports": "80-", "sources": "198.51.100.0/24", "destinations": "", "enabled": "on"}
    bad = post(fw_client, "/firewall/rules/1/edit", typed)
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "not a port" in error_of(page, "ports")
    assert 'value="80-"' in page and 'value="198.51.100.0/24"' in page   # what was typed stays
    assert runtime.store.current().config.firewall.rules[1].ports == "8080"
    good = post(fw_client, "/firewall/rules/1/edit", {**typed, "ports": "80,443"})
    assert good.status_code == 302
    rule = runtime.store.current().config.firewall.rules[1]
    assert rule.ports == "80,443" and [str(s) for s in rule.sources] == ["198.51.100.0/24"] and rule.enabled
    assert fw_client.get("/firewall/rules/7/edit").status_code == 404


def test_move_up_and_down_reorders_the_ruleset(fw_client, runtime, tmp_path):
    assert ruleset_order(runtime, tmp_path) == ["ssh in", "web in", "no smb"]
    listed = fw_client.get("/firewall/").get_data(as_text=True)
    assert listed.count('name="direction" value="up"') == 2 and listed.count('name="direction" value="down"') == 2
    before = runtime.store.current_id()
    moved = post(fw_client, "/firewall/rules/2/move", {"direction": "up"}, form_path="/firewall/")
    assert moved.status_code == 302 and names(runtime) == ["ssh in", "no smb", "web in"]
    assert runtime.store.current_id() == before + 1   # one change, one revision
    assert ruleset_order(runtime, tmp_path) == ["ssh in", "no smb", "web in"]
    post(fw_client, "/firewall/rules/0/move", {"direction": "down"}, form_path="/firewall/")
    assert names(runtime) == ["no smb", "ssh in", "web in"]
    assert ruleset_order(runtime, tmp_path) == ["no smb", "ssh in", "web in"]
    assert post(fw_client, "/firewall/rules/0/move", {"direction": "up"}, form_path="/firewall/").status_code == 400
    assert post(fw_client, "/firewall/rules/9/move", {"direction": "up"}, form_path="/firewall/").status_code == 404
    assert names(runtime) == ["no smb", "ssh in", "web in"]
