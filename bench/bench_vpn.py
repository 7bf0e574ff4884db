"""VPN benchmarks (issue 18): IPsec tunnel set-up time and throughput, WireGuard throughput, 100
WireGuard devices applied, on veth pairs in private namespaces with the real strongSwan/WireGuard.

Two offices as in tests/services/vpn/offices.py (firewall + VPN service on each box); iperf3 streams
host A -> host B through IPsec, and road warrior -> host A through WireGuard. CPU is the daemon's
(charon, wireguard-go) share of one core during the stream. ESP and WireGuard both run in userspace
here (the kernel has neither INET_ESP nor WireGuard), so the figures are userspace ones.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

AREA = "vpn"
SECONDS = 5


def row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": value, "unit": unit, "note": note}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream(client, server, address: str, pid: int) -> tuple[float, float]:
    """iperf3 client -> server for SECONDS: (Gbit/s received, CPU % of one core used by `pid`)."""
    srv = server.popen(["iperf3", "-s", "-1", "-B", address])
    try:
        time.sleep(0.5)
        cpu = cpu_seconds(pid)
        result = client.run("iperf3", "-c", address, "-t", str(SECONDS), "-J", timeout=SECONDS + 30)
        used = cpu_seconds(pid) - cpu
    finally:
        srv.kill()
        srv.wait(5)
    bits = json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"]
    return bits / 1e9, 100 * used / SECONDS


def child_pid(app, name: str) -> int:
    return app.supervisor.units["vpn"].children[name].proc.pid


def bench_ipsec(net) -> list[dict]:
    from tests.services.vpn.offices import HOST_B, wait_up

    b = net.start("b")
    started = time.monotonic()
    a = net.start("a")
    wait_up(a, timeout=60)
    setup = time.monotonic() - started
    gbits, cpu = stream(net.host_a, net.host_b, HOST_B, child_pid(a, "charon"))
    net.stop("a")
    net.stop("b")
    del b
    return [row("IPsec tunnel set-up (apply to traffic)", setup, "s", "box A booted while B waits: check, "
                "charon start, IKEv2 exchange, both SAs installed"),
            row("IPsec throughput (AES-256-GCM, libipsec)", gbits, "Gbit/s",
                f"iperf3 TCP {SECONDS} s host A -> host B; charon {cpu:.0f}% of a core on box A")]


def bench_wireguard(net) -> list[dict]:
    from services.vpn.wireguard import add_device, client_conf
    from tests.services.vpn.offices import HOST_A
    from tests.services.vpn.test_wireguard_netns import road_warrior, wait_for

    tag = net.lab.tag
    net.add_road_warrior()
    doc = net.document("a")
    doc["vpn"] = {"enabled": True, "wireguard": {"enabled": True, "interface": f"wgb{tag}"}}
    doc["users"] = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    add_device(doc["vpn"], "ann", "laptop")
    started = time.monotonic()
    box = net.start("a", doc)
    service = box.services["vpn"]
    wait_for(lambda: service._wg is not None and service._wg.listen_port() == 51820, what="WireGuard")
    ready = time.monotonic() - started
    config = box.store.current().config
    road_warrior(net, client_conf(config, config.vpn.wireguard.devices[0]), net.top)
    wg_pid = child_pid(box, "wireguard-go") if "wireguard-go" in box.supervisor.units["vpn"].children else None
    gbits, cpu = stream(net.road, net.host_a, HOST_A, wg_pid or os.getpid())
    kind = "wireguard-go" if wg_pid else "kernel"

    def hundred(d: dict) -> None:
        d["users"] += [{"login": f"user{i}", "full_name": f"User {i}", "vpn_enabled": True} for i in range(100)]
        for i in range(100):
            add_device(d["vpn"], f"user{i}", "laptop")

    started = time.monotonic()
    box.engine.update("bench", "100 devices", hundred)
    applied = time.monotonic() - started
    peers = len(service._wg.peers())
    net.stop("a")
    return [row("WireGuard interface ready (apply to listening)", ready, "s", kind),
            row("WireGuard throughput", gbits, "Gbit/s",
                f"iperf3 TCP {SECONDS} s road warrior -> LAN host; {kind}" +
                (f" {cpu:.0f}% of a core on the box" if wg_pid else "")),
            row("100 WireGuard devices added and applied", applied, "s",
                f"one revision: validate, render, wg syncconf; {peers} peers live after")]


def run() -> list[dict]:
    if os.geteuid() != 0 or not (shutil.which("iperf3") and os.path.exists("/usr/sbin/charon-systemd")):
        return [row("skipped", float("nan"), "", "needs root, iperf3 and strongSwan (services/vpn)")]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.services.vpn.offices import Offices

    rows = []
    for bench in (bench_ipsec, bench_wireguard):
        net = Offices()
        try:
            rows += bench(net)
        finally:
            net.close()
    return rows
