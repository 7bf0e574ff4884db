"""The vpn section's validation, the rendered swanctl.conf, and the check by a real (throwaway) charon."""
from __future__ import annotations

import asyncio
import os

import pytest
from pydantic import ValidationError

from appliance import schema
from appliance.context import Context
from appliance.service import ApplyError
from services.vpn.config import DEFAULT_ESP, DEFAULT_ESP_V1, DEFAULT_IKE, DEFAULT_IKE_V1, psk_weakness
from services.vpn.service import VpnService
from services.vpn.strongswan import CHARON
from services.vpn.swanctl import parse_raw
from tests.netns import needs_netns

PSK = "Branch2Head-office-7fQ9xLw"
TUNNEL = {"name": "branch", "peer": "198.51.100.1", "local_subnets": ["192.168.1.0/24"],
          "remote_subnets": ["10.2.0.0/24"], "psk": PSK}


def config(*tunnels: dict, **vpn):
    return schema.parse({"vpn": {"enabled": True, "tunnels": list(tunnels or [TUNNEL]), **vpn}})


@pytest.fixture
def service(tmp_path):
    return VpnService(Context(tmp_path / "var", lab=True), netns="ob-none")


@pytest.mark.parametrize("psk, reason", [
    ("", "at least 20"), ("short1", "at least 20"), ("a1" * 15, "different"),
    ("abcdefghijklmnopqrstuvwxyz", "letters and digits"), (PSK + "\n", "line breaks")])
def test_weak_pre_shared_keys_are_refused(psk, reason):
    with pytest.raises(ValidationError, match=reason):
        config({**TUNNEL, "psk": psk})
    assert psk_weakness(PSK) == ""


def test_overlapping_subnets_are_refused():
    with pytest.raises(ValidationError, match="overlap"):
        config({**TUNNEL, "remote_subnets": ["192.168.1.128/25"]})
    with pytest.raises(ValidationError, match="remote subnets 10.2.0.0/24 .* overlap"):
        config(TUNNEL, {**TUNNEL, "name": "other", "peer": "203.0.113.9", "remote_subnets": ["10.2.0.0/16"]})
    with pytest.raises(ValidationError, match="two tunnels are named branch"):
        config(TUNNEL, {**TUNNEL, "remote_subnets": ["10.3.0.0/24"]})


def test_a_remote_subnet_clashing_with_the_lan_is_refused(service):
    bad = config({**TUNNEL, "remote_subnets": ["192.168.0.0/16"], "local_subnets": ["10.9.0.0/24"]})
    errors = service.validate(bad)
    assert any("overlaps this box's LAN 192.168.1.0/24" in e for e in errors)
    assert any("none of the local subnets" in e for e in errors)
    assert service.validate(config()) == []


def test_the_section_is_off_by_default_with_strong_proposals():
    vpn = schema.parse({}).vpn
    assert vpn.enabled is False and vpn.tunnels == []
    assert "sha1" not in DEFAULT_IKE + DEFAULT_ESP and "modp" not in DEFAULT_IKE + DEFAULT_ESP
    assert DEFAULT_IKE.startswith("aes256gcm16-prfsha384-x25519")


def test_rendered_tunnel_restarts_by_itself_and_keeps_the_key_quoted(service):
    files = service.render(config({**TUNNEL, "psk": PSK + '"x'}))
    conf = files["swanctl.conf"]
    assert "remote_addrs = 198.51.100.1" in conf and "local_ts = 192.168.1.0/24" in conf
    assert "dpd_action = restart" in conf and "keyingtries = 0" in conf and "start_action = start" in conf
    assert f'secret = "{PSK}\\"x"' in conf
    assert f"socket = {service.paths.uri}" in files["strongswan.conf"]
    assert "unix:///run/charon.vici" not in files["strongswan.conf"]


def test_parse_raw_list_sas():
    raw = ("list-sa event {hq {uniqueid=2 version=2 state=ESTABLISHED remote-host=198.51.100.1 "
           "established=4 child-sas {hq-1 {name=hq state=INSTALLED bytes-in=168 packets-in=2 bytes-out=84 "
           "local-ts=[10.1.0.0/24 10.5.0.0/24] remote-ts=[10.2.0.0/24]}}}}\nlist-sas reply {}\n")
    [sa] = parse_raw(raw)
    assert sa["name"] == "hq" and sa["state"] == "ESTABLISHED" and sa["established"] == "4"
    child = sa["child-sas"]["hq-1"]
    assert child["bytes-in"] == "168" and child["local-ts"] == ["10.1.0.0/24", "10.5.0.0/24"]

    ports = ("list-sa event {hq {child-sas {hq-1 {local-ts=[10.1.0.0/24[tcp/8000] 10.1.0.0/24[icmp]] "
             "remote-ts=[10.2.0.0/24] state=INSTALLED}}}}\n")
    child = parse_raw(ports)[0]["child-sas"]["hq-1"]  # a selector's own brackets end no list
    assert child["local-ts"] == ["10.1.0.0/24[tcp/8000]", "10.1.0.0/24[icmp]"] and child["state"] == "INSTALLED"


def test_allowed_services_narrow_the_local_traffic_selectors(service):
    tunnel = {**TUNNEL, "local_subnets": ["192.168.1.0/24", "192.168.5.0/24"],
              "allowed_services": ["TCP/443", "udp/53-54", "icmp", "tcp/443"]}
    cfg = config(tunnel)
    assert cfg.vpn.tunnels[0].allowed_services == ["tcp/443", "udp/53-54", "icmp"]
    conf = service.render(cfg)["swanctl.conf"]
    assert ("local_ts = 192.168.1.0/24[tcp/443],192.168.1.0/24[udp/53-54],192.168.1.0/24[icmp],"
            "192.168.5.0/24[tcp/443],192.168.5.0/24[udp/53-54],192.168.5.0/24[icmp]") in conf
    assert "remote_ts = 10.2.0.0/24\n" in conf
    assert "local_ts = 192.168.1.0/24\n" in service.render(config())["swanctl.conf"]  # default: everything
    for wrong in ("ssh", "tcp/0", "tcp/70000", "tcp/90-80", "gre/1", "tcp/"):
        with pytest.raises(ValidationError, match="is not a service"):
            config({**TUNNEL, "allowed_services": [wrong]})



def test_ikev1_renders_main_mode_with_proposals_it_has_and_one_pair_of_networks(service):
    cfg = config({**TUNNEL, "ike_version": 1})
    conf = service.render(cfg)["swanctl.conf"]
    assert "version = 1\n    aggressive = no\n" in conf
    assert f"proposals = {DEFAULT_IKE_V1}\n" in conf and f"esp_proposals = {DEFAULT_ESP_V1}\n" in conf
    assert "gcm" not in DEFAULT_IKE_V1 and "sha1" not in DEFAULT_IKE_V1 + DEFAULT_ESP_V1
    assert "version = 2\n" in service.render(config())["swanctl.conf"]  # the default
    own = config({**TUNNEL, "ike_version": 1, "ike_proposals": "aes128-sha256-modp3072"})
    assert "proposals = aes128-sha256-modp3072\n" in service.render(own)["swanctl.conf"]
    with pytest.raises(ValidationError, match="IKEv1 has no AES-GCM"):
        config({**TUNNEL, "ike_version": 1, "ike_proposals": "aes256gcm16-prfsha256-ecp256"})
    for more in ({"remote_subnets": ["10.2.0.0/24", "10.3.0.0/24"]}, {"allowed_services": ["tcp/80", "icmp"]}):
        with pytest.raises(ValidationError, match="IKEv1 carries one local and one remote network"):
            config({**TUNNEL, "ike_version": 1, **more})
    assert config({**TUNNEL, "ike_version": 1, "allowed_services": ["tcp/80"]}).vpn.tunnels[0].local_ts == [
        "192.168.1.0/24[tcp/80]"]
    with pytest.raises(ValidationError):
        config({**TUNNEL, "ike_version": 3})


needs_charon = pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan (debian-packages.txt)")


@needs_netns
@needs_charon
def test_charon_checks_the_staged_files(service, tmp_path):
    good = config()
    staged = tmp_path / "staged"
    staged.mkdir()
    for name, text in service.render(good).items():
        (staged / name).write_text(text)
    asyncio.run(service.check(good, staged))
    (staged / "swanctl.conf").write_text((staged / "swanctl.conf").read_text().replace(
        DEFAULT_ESP, "aes256gcm16-nosuchgroup"))
    with pytest.raises(ApplyError, match="esp_proposals"):
        asyncio.run(service.check(good, staged))


def test_wireguard_pool_clash_unknown_owner_and_endpoint_are_refused(service):
    from services.vpn.wireguard import add_device, server_conf

    vpn = {"enabled": True, "wireguard": {"enabled": True, "pool": "192.168.1.0/24"}}
    add_device(vpn, "ann", "laptop")
    errors = service.validate(schema.parse({"vpn": vpn}))
    assert any("pool 192.168.1.0/24 overlaps 192.168.1.0/24" in e for e in errors)
    assert any("no user with the login ann" in e for e in errors)
    assert any("public name or address devices dial" in e for e in errors)
    with pytest.raises(ValidationError, match="not a device address of the pool"):
        schema.parse({"vpn": {"wireguard": {**vpn["wireguard"], "pool": "10.9.0.0/24"}}})

    vpn["wireguard"].update(pool="10.8.0.0/24", endpoint="vpn.example.test", devices=[])
    add_device(vpn, "ann", "laptop")
    users = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    good = schema.parse({"vpn": vpn, "users": users})
    assert service.validate(good) == []
    assert "AllowedIPs = 10.8.0.2/32" in server_conf(good)
    for user in ({**users[0], "vpn_enabled": False}, {**users[0], "enabled": False}):
        assert "[Peer]" not in server_conf(schema.parse({"vpn": vpn, "users": [user]}))


def test_road_warriors_need_a_server_name_a_free_pool_and_only_allowed_accounts_get_in(service):
    from services.vpn.strongswan import swanctl_conf

    vpn = {"enabled": True, "remote_access": {"enabled": True, "pool": "192.168.1.0/25",
                                              "accounts": [{"user": "ann"}, {"user": "zed"}]}}
    errors = service.validate(schema.parse({"vpn": vpn, "users": [{"login": "ann", "full_name": "Ann"}]}))
    assert any("name or address clients dial" in e for e in errors)
    assert any("client pool 192.168.1.0/25 overlaps" in e for e in errors)
    assert any("no user with the login zed" in e for e in errors)
    vpn["remote_access"].update(pool="10.9.0.0/24", server_name="vpn.example.test",
                                accounts=[{"user": "ann", "password_secret": "Ann-vpn-secret-42"}])
    users = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    good = schema.parse({"vpn": vpn, "users": users})
    assert service.validate(good) == []
    conf = swanctl_conf(good, service.pki, service.server_id(good))
    assert "auth = eap-mschapv2" in conf and "id = vpn.example.test" in conf and 'secret = "Ann-vpn-secret-42"' in conf
    assert "addrs = 10.9.0.0/24" in conf and "dns = 192.168.1.1" in conf
    off = schema.parse({"vpn": vpn, "users": [{**users[0], "vpn_enabled": False}]})
    assert "Ann-vpn-secret-42" not in swanctl_conf(off, service.pki, service.server_id(off))
    assert len(schema.parse({"vpn": {"remote_access": {"accounts": [{"user": "ann"}]}}})
               .vpn.remote_access.accounts[0].password_secret) == 20  # made by the box
