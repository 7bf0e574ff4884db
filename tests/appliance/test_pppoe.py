"""The WAN over PPPoE, host side (this machine's kernel has no PPP: the link itself is tested in the OS image
guest, tests/images/test_os_image.py): the schema's checks, pppd's rendered options (read by the real pppd,
which accepts every option before it finds no /dev/ppp here), a command line without the user name or the
password, the real ip-up/ip-down hooks (as pppd runs them) recording the link, the network service
publishing it on the bus keyed by the WAN port so DNS forwards to the peer's resolvers, and the status."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance import network, schema
from appliance.context import Context
from appliance.netservice import NetworkService
from appliance.wanlease import WanLease, wan_lease_bus
from services.dns import DnsService

SECRET = 'Line "secret" \\ #41'
WAN = {"interface": "wan0", "mode": "pppoe", "pppoe_user": "office@dsl.example", "pppoe_password": SECRET}
EXIT_OPTION_ERROR, EXIT_NO_KERNEL_SUPPORT = 2, 4  # pppd(8)
needs_pppd = pytest.mark.skipif(shutil.which("pppd") is None, reason="needs pppd (Debian's ppp)")


def config(**wan):
    return schema.parse({"network": {"wan": {**WAN, **wan}}})


def errors_of(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.value.errors()}


def test_a_pppoe_wan_needs_its_user_name_and_password_in_plain_words():
    with pytest.raises(ValidationError) as exc:
        config(pppoe_user="", pppoe_password="")
    found = errors_of(exc)
    assert "needs the user name" in found["network.wan.pppoe_user"], found
    assert "needs the password" in found["network.wan.pppoe_password"], found
    with pytest.raises(ValidationError):
        config(pppoe_password="two\nlines")  # the options file is line-based
    with pytest.raises(ValidationError):
        config(mtu=1600)
    wan = config().network.wan
    assert wan.mtu == 1492 and schema.mask_secrets({"pppoe_password": SECRET}) == {"pppoe_password": schema.MASK}
    assert config(mode="dhcp", pppoe_user="", pppoe_password="").network.wan.mode == "dhcp"  # only pppoe asks


def test_the_ppp_link_is_never_a_pptp_clients_name():
    assert network.PPP_IFNAME.startswith("wan") and not network.PPP_IFNAME.startswith("ppp")
    assert len(network.PPP_IFNAME) <= 15
    assert network.wan_ip_interface(config().network) == network.PPP_IFNAME
    assert network.wan_ip_interface(config(mode="dhcp").network) == "wan0"


@needs_pppd
def test_pppd_accepts_every_rendered_option_and_its_command_line_holds_no_secret(tmp_path):
    ctx = Context(tmp_path, lab=False)
    service = NetworkService(ctx)
    cfg = config(pppoe_service="fast line", pppoe_ac_name="BRAS-1", mtu=1480)
    files = service.render(cfg)
    assert set(files) == {"root-only/pppoe-options", "root-only/pppoe-ip-up", "root-only/pppoe-ip-down"}
    options = files["root-only/pppoe-options"]
    assert 'password "Line \\"secret\\" \\\\ #41"' in options and 'user "office@dsl.example"' in options
    for line in ("plugin rp-pppoe.so", "nic-wan0", 'rp_pppoe_service "fast line"', 'rp_pppoe_ac "BRAS-1"',
                 "ifname wanppp", "nodetach", "persist", "defaultroute", "usepeerdns", "mtu 1480", "hide-password"):
        assert f"\n{line}\n" in options, line
    # tty options are unknown once the plugin is loaded (the OS image guest's pppd refused `nolock`), and
    # this host cannot load it: none may be rendered
    assert not {"lock", "nolock", "crtscts", "nocrtscts", "modem", "local"} & set(options.split())
    assert list(Path("/usr/lib/pppd").glob(f"*/{network.PPPOE_PLUGIN}")), "no rp-pppoe plugin in Debian's ppp"
    [spec] = service.processes(cfg)  # makes pppd's folder and its log, which pppd opens as it reads its options
    # the real pppd reads the file: every option known (else it stops at once with EXIT_OPTION_ERROR), the
    # quoted password and user name included; the plugin (it needs the kernel's PPPoE) left out on this host
    generic = "\n".join(ln for ln in options.splitlines() if not ln.startswith(("plugin", "nic-", "rp_pppoe")))
    probe = tmp_path / "probe-options"
    probe.write_text(generic + "\npty true\n")
    done = subprocess.run(["pppd", "file", str(probe), "dryrun"], capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_NO_KERNEL_SUPPORT, done.stderr
    probe.write_text(generic + "\npty true\nno-such-option\n")  # the same check can fail
    done = subprocess.run(["pppd", "file", str(probe), "dryrun"], capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_OPTION_ERROR and "no-such-option" in done.stderr

    assert spec.name == "pppd" and spec.argv == (network.PPPD, "file",
                                                  str(ctx.etc_dir("network") / "root-only" / "pppoe-options"))
    assert not any(SECRET in part or "office@" in part for part in (*spec.argv, *(v for _, v in spec.env)))
    folder = network.pppoe_dir(ctx)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # root's: the network's user reads, never writes
    assert stat.S_IMODE(network.pppoe_log_file(ctx, None).stat().st_mode) == 0o644
    assert service.processes(config(mode="dhcp", pppoe_user="", pppoe_password="")) == []
    assert service.render(config(mode="dhcp")) == {}
    other = service.processes(config(pppoe_password="another one"))[0]
    assert other != spec  # a new password: the supervisor starts a new pppd


def run_hook(script: str, tmp_path: Path, *args: str, env: dict | None = None) -> None:
    path = tmp_path / "hook"
    path.write_text(script)
    path.chmod(0o700)
    subprocess.run([str(path), *args], check=True, timeout=10, env={"PATH": os.environ["PATH"], **(env or {})})


def test_the_hooks_record_the_link_and_the_network_service_publishes_it_for_dns(tmp_path):
    ctx = Context(tmp_path, lab=False)
    record = network.pppoe_record_file(ctx, None)
    record.parent.mkdir(parents=True)
    cfg = config(dns=[])
    service = NetworkService(ctx)
    files = service.render(cfg)
    up, down = files["root-only/pppoe-ip-up"], files["root-only/pppoe-ip-down"]
    run_hook(up, tmp_path, "wanppp", "", "0", "100.64.0.10", "100.64.0.1", "/somewhere/else.json",
             env={"DNS1": "100.64.0.53"})
    assert not record.exists() and not Path("/somewhere/else.json").exists()  # only its own record
    run_hook(up, tmp_path, "wanppp", "", "0", "100.64.0.10", "100.64.0.1", str(record),
             env={"DNS1": "100.64.0.53", "DNS2": "100.64.0.54"})
    assert stat.S_IMODE(record.stat().st_mode) == 0o644
    lease = WanLease.from_lease_file(json.loads(record.read_text()))
    assert (lease.address, lease.router, lease.dns) == ("100.64.0.10/32", "100.64.0.1", ("100.64.0.53", "100.64.0.54"))
    state = network.pppoe_state(ctx, None)
    assert state["connected"] and state["address"] == "100.64.0.10/32" and state["dns"] == ["100.64.0.53",
                                                                                            "100.64.0.54"]

    async def follow() -> WanLease | None:
        service._follow(cfg)
        try:
            for _ in range(50):  # bounded: 5 s
                published = wan_lease_bus(ctx).get("wan0")
                if published is not None:
                    return published
                await asyncio.sleep(0.1)
            return None
        finally:
            service._unfollow()

    published = asyncio.run(follow())
    assert published is not None and published.interface == "wan0" and published.router == "100.64.0.1"
    dns = DnsService(ctx)
    assert dns.learns_from_wan(cfg) and not dns.learns_from_wan(config(dns=["9.9.9.9"]))
    wan_lease_bus(ctx).publish(published)
    assert dns.upstreams(cfg) == [("100.64.0.53", 53), ("100.64.0.54", 53)]

    run_hook(down, tmp_path, "wanppp", "", "0", "100.64.0.10", "100.64.0.1", str(record))
    assert not record.exists()
    assert network.pppoe_lease(ctx, None) is None and not network.pppoe_state(ctx, None)["connected"]


def test_the_status_says_why_pppoe_is_not_connected(tmp_path):
    ctx = Context(tmp_path, lab=False)
    network.prepare_pppoe_dir(ctx, None)
    log = network.pppoe_log_file(ctx, None)
    assert network.pppoe_state(ctx, None)["problem"] == "connecting"
    with log.open("a") as out:
        out.write("Plugin rp-pppoe.so loaded.\nTimeout waiting for PADO packets\n"
                  "Unable to complete PPPoE Discovery\n")
    assert "no PPPoE server answered" in network.pppoe_state(ctx, None)["problem"]
    with log.open("a") as out:
        out.write("PPP session is 3\nPAP authentication failed\nConnection terminated.\n"
                  "PAP authentication failed\n")
    problem = network.pppoe_state(ctx, None)["problem"]
    assert problem == "the provider refused the PPPoE user name or password", problem
    assert SECRET not in log.read_text()
