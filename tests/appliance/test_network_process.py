"""The network service in its own process, as the appliance runs it on the box (appliance.servicehost): the
child runs as officebox-network with CAP_NET_ADMIN (and its DHCP client's NET_RAW/NET_BIND_SERVICE) only,
cannot read the configuration store, brings the LAN address of a namespace of the test's to the configuration
(seen with `ip addr` there and through the web admin's client), keeps the address it had when an apply
fails, goes back to it when a move is not confirmed in time, and after a kill -9 is restarted by the
supervisor, which applies the configuration again; its WAN DHCP client runs as its user, one per interface
across that restart."""
import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import netservice
from appliance.clients import client_for
from appliance.context import Context
from appliance.netservice import NetworkService
from appliance.service import ApplyError
from appliance.users import hash_password
from tests.isolated import isolated, until
from tests.netns import Lab, needs_netns, udhcpd

pytestmark = [needs_netns, pytest.mark.slow]
ADMIN_HASH = hash_password("admin password")
CAPS = 1 << 12 | 1 << 13 | 1 << 10  # net_admin, net_raw, net_bind_service (linux/capability.h)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def document(lan_if: str, address: str, wan: dict | None = None) -> dict:
    return {"system": {"hostname": "box", "domain": "office.test", "initialized": True},
            "users": [{"login": "admin", "full_name": "Admin", "role": "admin", "password_hash": ADMIN_HASH}],
            "network": {"lan": {"interface": lan_if, "address": address}, "voice": {"enabled": False},
                        "wan": wan or {"interface": "wan0", "mode": "none"}}}


def test_network_in_its_own_unprivileged_process_applies_rolls_back_and_comes_back(tmp_path, monkeypatch):
    monkeypatch.setattr(netservice, "CONFIRM_SECONDS", 3)  # the engine asks the appliance's copy for its window
    with Lab() as lab:
        box, pc = lab.host("nb"), lab.host("pc")
        lan_if, _ = lab.link(box, None, pc, "192.0.2.10/24")
        ctx = Context(tmp_path, lab=False)  # on the box: addresses go into the kernel (the namespace's)

        def addresses() -> str:
            return box.run("ip", "-4", "-o", "addr", "show", "dev", lan_if).stdout

        with isolated(ctx, NetworkService(ctx), document(lan_if, "192.0.2.1/24"), box) as run:
            run.engine.live = run.supervisor
            child = run.service.proc.pid
            status = proc_status(child)
            assert status["Uid"].split() == [str(pwd.getpwnam("officebox-network").pw_uid)] * 4
            for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
                assert int(status[field], 16) == CAPS, (field, status[field])
            assert status["NoNewPrivs"] == "1"
            uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
            peek = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable,
                                   "-c", f"open({str(ctx.db_path)!r}, 'rb')"], capture_output=True, text=True,
                                  timeout=30)
            assert peek.returncode != 0 and "PermissionError" in peek.stderr, peek
            assert "192.0.2.1/24" in addresses()
            client = client_for(run.service)
            [lan] = [i for i in client.state()["interfaces"] if i["name"] == lan_if]
            assert lan["addresses"] == ["192.0.2.1/24"]

            with pytest.raises(ApplyError):  # no such interface: the process refuses, the address stays
                run.engine.apply(document("nosuch0", "192.0.2.3/24"), "test", "wrong port")
            assert "192.0.2.1/24" in addresses() and run.supervisor.units["network"].state == "running"

            run.engine.apply(document(lan_if, "192.0.2.2/24"), "test", "move the LAN")
            assert "192.0.2.2/24" in until(addresses) and "192.0.2.1/" not in addresses()
            assert run.engine.confirmation.pending() is not None
            assert until(lambda: "192.0.2.1/24" in addresses(), 20), "not rolled back when unconfirmed"
            assert "192.0.2.2/" not in addresses() and run.engine.confirmation.pending() is None
            assert str(run.engine.current_config().network.lan.address) == "192.0.2.1/24"

            wan_if, _ = lab.link(box, None, lab.host("isp"), None)  # no DHCP server: the client keeps asking
            dhcp = {"interface": wan_if, "mode": "dhcp"}
            run.engine.apply(document(lan_if, "192.0.2.1/24", dhcp), "test", "DHCP on the WAN")
            run.engine.confirmation.confirm()

            def clients() -> list[int]:
                found = subprocess.run(["pgrep", "-f", f"udhcpc -f -i {wan_if} "], capture_output=True, text=True)
                return [int(p) for p in found.stdout.split()]
            [first] = until(clients)
            assert proc_status(first)["Uid"].split()[0] == uid and int(proc_status(first)["CapEff"], 16) == CAPS
            assert until(lambda: client.state()["dhcp_client"] is True)

            box.run("ip", "addr", "flush", "dev", lan_if)
            os.kill(child, signal.SIGKILL)
            assert run.restarted(child), "the network process was not restarted"
            assert until(lambda: "192.0.2.1/24" in addresses()), "address not applied again"
            assert proc_status(run.service.proc.pid)["Uid"].split()[0] == uid
            assert until(lambda: len(clients()) == 1 and clients() != [first]), clients()


def test_the_wan_dhcp_client_dies_with_the_network_process_and_the_lease_comes_back(tmp_path):
    """A real DHCP server (busybox udhcpd) behind the WAN port: the network process's udhcpc, as its user,
    gets a lease; kill -9 of the process ends that client by itself (PR_SET_PDEATHSIG: the supervisor is not
    told of the exit meanwhile, so no restarted process could have ended it), then the supervisor's restart
    starts one client which brings the WAN address back."""
    with Lab() as lab:
        box, isp = lab.host("nb"), lab.host("isp")
        lan_if, _ = lab.link(box, None, lab.host("pc"), "192.0.2.10/24")
        wan_if, isp_if = lab.link(box, None, isp, "198.51.100.1/24")
        server = udhcpd(isp, tmp_path, isp_if, lease=600)
        ctx = Context(tmp_path / "data", lab=False)
        doc = document(lan_if, "192.0.2.1/24", {"interface": wan_if, "mode": "dhcp"})

        def wan_addresses() -> list[str]:
            return box.run("ip", "-4", "-o", "addr", "show", "dev", wan_if).stdout.split()[3::4][:1]

        def clients() -> list[int]:
            found = subprocess.run(["pgrep", "-f", f"udhcpc -f -i {wan_if} "], capture_output=True, text=True)
            return [int(p) for p in found.stdout.split()]

        def gone(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True
        try:
            with isolated(ctx, NetworkService(ctx), doc, box) as run:
                run.engine.live = run.supervisor
                run.engine.confirmation.confirm()
                client = client_for(run.service)
                lease = until(lambda: client.state()["lease"])
                assert lease and lease["gateway"] == "198.51.100.1", lease
                assert wan_addresses() == [lease["address"]]
                [first] = clients()
                child = run.service.proc.pid
                uid = proc_status(child)["Uid"].split()[0]
                assert proc_status(first)["Uid"].split()[0] == uid != "0"

                # the supervisor hears of the exit only below: neither the reaper's report nor the watchdog
                # restarts the process meanwhile, whose start would end an orphan too (network._end_orphan)
                notify, run.service.on_exit = run.service.on_exit, None
                run.loop.call_soon_threadsafe(run.supervisor._watchdog.cancel)
                os.kill(child, signal.SIGKILL)
                assert until(lambda: gone(first), 10), "the DHCP client outlived its network process"
                assert until(lambda: not clients(), 5), clients()
                assert run.service.proc.returncode is not None
                box.run("ip", "addr", "flush", "dev", wan_if)
                run.service.on_exit = notify
                run.loop.call_soon_threadsafe(notify, "network")  # what the reaper tells the supervisor
                assert run.restarted(child), "the network process was not restarted"
                assert until(lambda: wan_addresses() == [lease["address"]], 30), wan_addresses()  # the same lease
                assert len(clients()) == 1 and clients() != [first]
                assert proc_status(clients()[0])["Uid"].split()[0] == uid
                assert until(lambda: client.state()["dhcp_client"] is True)
        finally:
            server.terminate()
            server.wait(10)


def test_the_interfaces_page_shows_what_the_network_process_sees(tmp_path):
    """The web admin's Interfaces page reads the interfaces, addresses and routes through NetworkClient.state
    from the network's process: that process runs in a namespace of the test's (its interface and address
    there), the web admin's runtime in the test's own namespace, where neither exists."""
    from appliance.runtime import Runtime
    from tests.webadmin.helpers import admin_client_for
    from webadmin import create_app

    runtime = Runtime(tmp_path / "var", lab=True)
    runtime.bootstrap()
    try:
        app = create_app(runtime)
        app.config["TESTING"] = True
        admin = admin_client_for(runtime, app)
        with Lab() as lab:
            box = lab.host("nb")
            lan_if, _ = lab.link(box, None, lab.host("pc"), "192.0.2.10/24")
            assert lan_if not in Path("/proc/net/dev").read_text()  # not in the web admin's namespace
            ctx = Context(tmp_path / "net", lab=False)
            with isolated(ctx, NetworkService(ctx), document(lan_if, "192.0.2.1/24"), box) as run:
                run.engine.live = run.supervisor
                runtime.services["network"] = run.service
                page = admin.get("/network/").get_data(as_text=True)
                assert lan_if in page and "192.0.2.1/24" in page, page[-3000:]
                assert "192.0.2.0/24" in page  # its connected route, from the process's namespace
                assert "Lab mode" not in page

                # a PPPoE WAN: its link's state comes through the client too (no PPP in this kernel: pppd
                # brings no link up, so the page says it is not connected)
                wan_if, _ = lab.link(box, None, lab.host("isp"), None)
                pppoe = {"interface": wan_if, "mode": "pppoe", "pppoe_user": "office@dsl.example",
                         "pppoe_password": "Line-secret-41"}
                run.engine.update("admin", "pppoe", lambda doc: doc["network"].update(wan=pppoe))
                page = admin.get("/network/").get_data(as_text=True)
                assert 'id="pppoe-state"' in page and "PPPoE not connected" in page, page[-3000:]
    finally:
        runtime.store.close()
