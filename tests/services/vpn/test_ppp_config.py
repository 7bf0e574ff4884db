"""Legacy PPTP's files and rules: pptpd.conf and pppd's options (MS-CHAPv2 only, MPPE-128), chap-secrets
(0600, only users allowed the VPN), pool clashes refused, TCP 1723 + GRE on the WAN and ppp* in the vpn
zone only while PPTP is on (the real `nft -c`), the real pptpd listening on the rendered configuration,
and the session records of pppd's ip-up script, with which a user no longer allowed is dropped.

This machine's kernel has no PPP (/dev/ppp): a real PPTP client connects in the OS image test
(tests/images/test_os_image.py, test_pptp_client_...)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from appliance import schema
from appliance.apply import ApplyEngine, ConfigError
from appliance.contributions import Listener, Network, collect
from appliance.store import ConfigStore
from services.firewall import nft
from services.firewall.ruleset import render as ruleset
from services.vpn import pptp
from services.vpn.service import VpnService
from tests.netns import needs_netns
from tests.services.vpn.test_ipsec_config import TUNNEL

SECRET = {"ann": "Ann-vpn-secret-0001", "bob": "Bob-vpn-secret-0002", "cid": "Cid-vpn-secret-0003"}
WAN = {"interface": "wan0", "mode": "static", "address": "203.0.113.1/24", "gateway": "203.0.113.254"}


def document(pptp_on=True, pool="10.10.0.0/24", **vpn) -> dict:
    users = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True},
             {"login": "bob", "full_name": "Bob", "vpn_enabled": False},  # VPN not allowed
             {"login": "cid", "full_name": "Cid", "vpn_enabled": True, "enabled": False}]  # disabled
    accounts = [{"user": u, "password_secret": s} for u, s in SECRET.items()]
    return {"users": users, "network": {"wan": WAN},
            "vpn": {"enabled": True, "remote_access": {"accounts": accounts},
                    "pptp": {"enabled": pptp_on, "pool": pool}, **vpn}}


def config(**kw):
    return schema.parse(document(**kw))


@pytest.fixture
def service(ctx):
    return VpnService(ctx, netns="ob-none")


def test_options_require_mschapv2_and_mppe_128(service):
    files = service.render(config())
    options = files["pptp-options"].splitlines()
    for line in ("auth", "require-mschap-v2", "require-mppe-128", "refuse-pap", "refuse-chap", "refuse-mschap",
                 "ms-dns 192.168.1.1", "noproxyarp", "nobsdcomp", "nodeflate", "idle 1800",
                 "lcp-echo-interval 30", "lcp-echo-failure 4", f"name {pptp.SERVER_NAME}"):
        assert line in options, line
    assert "proxyarp" not in options and not any(o.startswith("require-pap") for o in options)
    etc = service.paths.etc
    assert f"ip-up-script {etc / 'pptp-ip-up'}" in options and f"ip-down-script {etc / 'pptp-ip-down'}" in options
    conf = files["pptpd.conf"].splitlines()
    assert f"option {etc / 'pptp-options'}" in conf
    assert "localip 10.10.0.1" in conf and "remoteip 10.10.0.2-254" in conf and "connections 253" in conf
    assert "logwtmp" not in files["pptpd.conf"]
    small = service.render(config(pool="10.20.30.0/29"))["pptpd.conf"]
    assert "localip 10.20.30.1" in small and "remoteip 10.20.30.2-6" in small


def test_pptp_is_off_by_default(service):
    assert schema.parse({}).vpn.pptp.enabled is False
    assert [s.name for s in service.processes(config(pptp_on=False))] == []


def test_secrets_hold_only_users_allowed_the_vpn(service):
    secrets = service.render(config())["chap-secrets"]
    assert f'"ann" pptpd "{SECRET["ann"]}" *' in secrets
    assert "bob" not in secrets and SECRET["bob"] not in secrets  # VPN not allowed
    assert "cid" not in secrets and SECRET["cid"] not in secrets  # user disabled
    assert pptp.chap_secrets([type("A", (), {"user": "x", "password_secret": 'a"b\\c'})()]).endswith(
        '"x" pptpd "a\\"b\\\\c" *\n')
    off = service.render(config(pptp_on=False))
    assert not {"pptpd.conf", "pptp-options", "chap-secrets", "pptp-ip-up"} & set(off)


def test_applied_secrets_are_0600_and_the_scripts_executable_by_root_only(ctx):
    store = ConfigStore(ctx.db_path)
    try:
        engine = ApplyEngine(ctx, store, {"vpn": VpnService(ctx, netns="ob-none")})
        engine.apply(document(), "admin", "PPTP on")
        etc = ctx.etc_dir("vpn")
        assert (etc / "chap-secrets").stat().st_mode & 0o777 == 0o600
        assert (etc / "pptp-options").stat().st_mode & 0o777 == 0o600
        assert (etc / "pptp-ip-up").stat().st_mode & 0o777 == 0o700
        assert (etc / "pptp-ip-down").stat().st_mode & 0o777 == 0o700
        engine.apply(document(pptp_on=False), "admin", "PPTP off")
        assert not (etc / "chap-secrets").exists()
    finally:
        store.close()


@pytest.mark.parametrize("pool, vpn, clash", [
    ("192.168.1.0/24", {}, "the LAN 192.168.1.0/24"),
    ("10.2.0.0/28", {"tunnels": [TUNNEL]}, "tunnel branch 10.2.0.0/24"),
    ("10.8.0.0/24", {"wireguard": {"enabled": True, "endpoint": "vpn.example.test"}}, "the WireGuard pool 10.8.0.0/24"),
    ("10.9.0.128/25", {"remote_access": {"enabled": True, "server_name": "vpn.example.test",
                                         "accounts": [{"user": "ann"}]}}, "the IKEv2 client pool 10.9.0.0/24"),
])
def test_a_pool_clashing_with_the_lan_or_another_vpn_pool_is_refused(service, pool, vpn, clash):
    errors = service.validate(config(pool=pool, **vpn))
    assert errors == [f"the PPTP pool {pool} overlaps {clash}: choose another pool"]
    assert service.validate(config(pool="10.10.0.0/24", **vpn)) == []
    assert service.validate(config(pptp_on=False, pool=pool, **vpn)) == []  # off: nothing to clash with


def test_a_pool_bigger_than_one_range_is_refused():
    with pytest.raises(ValueError, match="must be a /24 to /29 network"):
        config(pool="10.10.0.0/23")


def test_the_engine_refuses_a_clash_with_a_clear_message(ctx):
    store = ConfigStore(ctx.db_path)
    try:
        engine = ApplyEngine(ctx, store, {"vpn": VpnService(ctx, netns="ob-none")})
        with pytest.raises(ConfigError, match="the PPTP pool 192.168.1.0/25 overlaps the LAN 192.168.1.0/24"):
            engine.apply(document(pool="192.168.1.0/25"), "admin", "PPTP on the LAN")
    finally:
        store.close()


def pptp_records(cfg) -> list:
    return [c for c in collect(cfg, Listener) + collect(cfg, Network) if "PPTP" in c.comment]


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None, reason="needs nft")
def test_wan_opens_tcp_1723_and_gre_and_ppp_links_are_vpn_only_while_pptp_is_on(tmp_path):
    on = config()
    assert {(c.name, c.protocol, c.ports, c.wan_peers) for c in pptp_records(on) if isinstance(c, Listener)} == {
        ("pptp", "tcp", (1723, 1723), ()), ("pptp-gre", "gre", (0, 0), ())}
    assert [(n.cidr, n.interface) for n in pptp_records(on) if isinstance(n, Network)] == [("10.10.0.0/24", "ppp*")]
    text = ruleset(on)
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    nft.check(path)  # the kernel takes GRE and the ppp* wildcard
    assert 'iifname "wan0" tcp dport 1723 accept' in text and 'iifname "wan0" meta l4proto gre accept' in text
    assert 'iifname "ppp*" ip saddr 10.10.0.0/24 accept' in text  # the vpn zone may use the box
    assert 'iifname "ppp*" ip saddr 10.10.0.0/24 oifname "lan0" accept' in text  # and reach the LAN
    for off in (config(pptp_on=False), schema.parse({**document(), "vpn": {**document()["vpn"], "enabled": False}})):
        assert pptp_records(off) == []
        text = ruleset(off)
        assert "1723" not in text and "gre" not in text and "ppp" not in text


def pppd_standin(tmp_path, script, interface: str, address: str, outside: str, user: str) -> subprocess.Popen:
    """A process named pppd (a copy of sh) running the rendered ip-up script as pppd does (interface, tty,
    speed, local, remote, ipparam; PEERNAME set), then waiting as a connected pppd would."""
    sh = tmp_path / "pppd"
    if not sh.exists():
        shutil.copy("/bin/sh", sh)
    env = {"PATH": os.environ["PATH"], "PEERNAME": user}
    return subprocess.Popen([str(sh), "-c", f'"$0" {interface} /dev/pts/9 115200 10.10.0.1 {address} {outside}'
                             f' && while :; do sleep 0.2; done', str(script)], env=env)


def test_ip_up_records_the_session_and_a_user_no_longer_allowed_is_dropped(service, tmp_path):
    cfg = config()
    files = service.render(cfg)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("pptp-ip-up", "pptp-ip-down"):
        (scripts / name).write_text(files[name])
        (scripts / name).chmod(0o700)
    run = service.paths.run
    procs = [pppd_standin(tmp_path, scripts / "pptp-ip-up", "ppp0", "10.10.0.2", "198.51.100.7", "ann"),
             pppd_standin(tmp_path, scripts / "pptp-ip-up", "ppp1", "10.10.0.3", "198.51.100.8", "dan")]
    try:
        deadline = time.monotonic() + 10
        while len(pptp.sessions(run)) < 2:
            assert time.monotonic() < deadline, list((run / "pptp").glob("*"))
            time.sleep(0.05)
        ann, dan = pptp.sessions(run)
        assert (ann["user"], ann["interface"], ann["address"], ann["outside"], ann["pid"]) == (
            "ann", "ppp0", "10.10.0.2", "198.51.100.7", procs[0].pid)
        assert abs(ann["since"] - time.time()) < 10 and dan["user"] == "dan"
        [row, _] = pptp.rows(pptp.sessions(run), time.time())
        assert row["user"] == "ann" and row["outside"] == "198.51.100.7" and 0 <= row["since"] < 10
        assert service.drop_pptp(cfg) == ["dan"]  # no account: dropped, ann stays
        assert procs[1].wait(timeout=10) == -signal.SIGTERM and procs[0].poll() is None
        assert [s["user"] for s in pptp.sessions(run)] == ["ann"]
        vpn_off = schema.parse({**document(), "users": [{"login": "ann", "full_name": "Ann", "vpn_enabled": False}]})
        assert service.drop_pptp(vpn_off) == ["ann"]  # switched off VPN: dropped at once
        assert procs[0].wait(timeout=10) == -signal.SIGTERM and pptp.sessions(run) == []
        subprocess.run([str(scripts / "pptp-ip-down"), "ppp0"], check=True, timeout=10)  # what pppd runs at the end
        assert not (run / "pptp" / "ppp0.json").exists()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@needs_netns
@pytest.mark.skipif(shutil.which(pptp.PPTPD) is None, reason="needs pptpd")
def test_the_real_pptpd_listens_on_the_rendered_configuration(ctx):
    """pptpd started as the vpn service's child (argv and config of processes/render) accepts PPTP's TCP
    control connection on 1723 in a namespace; stopped, it is gone."""
    from tests.netns import Lab

    lab = Lab()
    try:
        host = lab.host("pptpd")
        service = VpnService(ctx, netns=host.name)
        store = ConfigStore(ctx.db_path)
        try:
            ApplyEngine(ctx, store, {"vpn": service}).apply(document(), "admin", "PPTP on")
        finally:
            store.close()
        [spec] = [s for s in service.processes(config()) if s.name == "pptpd"]
        assert spec.argv[:4] == ("ip", "netns", "exec", host.name) and "--fg" in spec.argv
        proc = subprocess.Popen(spec.argv, env={**os.environ, **dict(spec.env)}, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                probe = host.run("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1723 && echo open", check=False)
                if "open" in probe.stdout:
                    break
                assert proc.poll() is None, "pptpd exited"
                assert time.monotonic() < deadline, probe.stderr
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        assert "open" not in host.run("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1723 && echo open",
                                      check=False).stdout
    finally:
        lab.close()

