"""The public call-centre pages' port in the firewall, through the PBX's typed "public-web" Listener (the
firewall reads contributions, never the pbx section): closed from the WAN by default, open to anyone on the
WAN (with a per-address connection cap) when pbx.public_web is on, at its port, checked by the real `nft -c`;
a port shared with the web admin is refused at the field."""
from __future__ import annotations

import shutil

import pytest

from appliance import schema
from appliance.contributions import Listener, collect
from services.firewall import nft
from services.firewall.ruleset import render
from services.pbx import PUBLIC_WEB_CONNECTIONS, SERVICE

needs_nft = pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None,
                               reason="needs nft and unshare")
WAN = {"interface": "wan0", "mode": "static", "address": "198.51.100.2/24", "gateway": "198.51.100.1"}
OPEN = 'iifname "wan0" tcp dport {port} accept comment "public call-centre pages"'


def _checked(tmp_path, doc: dict) -> str:
    text = render(schema.parse({"network": {"wan": WAN}, **doc}))
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    nft.check(path)
    return text


@needs_nft
def test_the_public_port_is_open_on_the_wan_only_when_enabled(tmp_path):
    default = _checked(tmp_path, {})
    assert "public call-centre pages" not in default and "dport 8443" not in default
    on = _checked(tmp_path, {"pbx": {"public_web": True}})
    assert OPEN.format(port=8443) in on
    assert f"ct count over {PUBLIC_WEB_CONNECTIONS}" in on
    moved = _checked(tmp_path, {"pbx": {"public_web": True, "public_web_port": 9444}})
    assert OPEN.format(port=9444) in moved and "dport 8443" not in moved
    off = _checked(tmp_path, {"pbx": {"public_web": True, "enabled": False}})
    assert "public call-centre pages" not in off  # the PBX off: nothing to serve


def test_the_listener_and_its_port_checks():
    config = schema.parse({"pbx": {"public_web": True}})
    [public] = [ls for ls in collect(config, Listener) if ls.name == "public-web"]
    assert (public.protocol, public.ports, public.wan_peers) == ("tcp", (8443, 8443), ())
    [lab] = [ls for ls in collect(config, Listener, lab=True) if ls.name == "public-web"]
    assert lab.ports == (9443, 9443)
    clash = schema.parse({"pbx": {"public_web": True, "public_web_port": 443}})
    assert [e.path for e in SERVICE.validate(SERVICE.__new__(SERVICE), clash)] == ["pbx.public_web_port"]
    assert SERVICE.validate(SERVICE.__new__(SERVICE), config) == []
