"""Internet edge benchmarks: access-log statistics, ruleset and squid.conf checks, NAT forwarding.

All local: temporary files, `nft -c` in an empty namespace, `squid -k parse`, and (as root) a TCP
stream LAN PC -> box (nft masquerade) -> "Internet" host across veth pairs in private namespaces.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AREA = "edge"
STREAM_SECONDS = 3

SINK = """
import socket, sys, time
srv = socket.socket(); srv.bind((sys.argv[1], 9000)); srv.listen(1); srv.settimeout(20)
conn, _ = srv.accept(); total = 0; start = None
while True:
    data = conn.recv(1 << 20)
    if not data: break
    start = start or time.monotonic(); total += len(data)
print(total, time.monotonic() - start)
"""
SOURCE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9000), 5); chunk = b"x" * (1 << 20)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end: s.sendall(chunk)
s.close()
"""


def row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": value, "unit": unit, "note": note}


def bench_stats(tmp: Path) -> list[dict]:
    from services.proxy.stats import UsageStats

    lines = 200_000
    now = time.time()
    with open(tmp / "access.log", "w") as f:
        for i in range(lines):
            f.write(f"{now - i:.3f}     7 10.0.{i % 7}.{i % 200} TCP_{'MEM_HIT' if i % 3 else 'MISS'}/200 "
                    f"{1000 + i % 5000} GET http://site{i % 500}.example/p{i} - HIER_DIRECT/198.51.100.1 text/html\n")
    stats = UsageStats(tmp / "usage.db", tmp / "access.log")
    start = time.perf_counter()
    counted = stats.collect()
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    stats.top_sites(now - 30 * 86400)
    stats.top_clients(now - 30 * 86400)
    stats.per_hour(now - 30 * 86400)
    query = time.perf_counter() - start
    stats.close()
    return [row("access.log ingestion", counted / elapsed, "lines/s", f"{lines} lines, 1400 clients, 500 sites"),
            row("usage report queries", query * 1000, "ms", "top sites + top clients + per hour, 30 days")]


def bench_nft(tmp: Path) -> list[dict]:
    from appliance import schema
    from services.firewall import nft
    from services.firewall.ruleset import render

    if not shutil.which("nft"):
        return []
    rules = [{"name": f"r{i}", "source_zone": "wan", "destination": "lan", "ports": str(1000 + i),
              "sources": [f"203.0.113.{i % 250}/32"]} for i in range(500)]
    forwards = [{"name": f"f{i}", "wan_port": 20000 + i, "to_address": f"192.168.1.{2 + i % 250}"}
                for i in range(200)]
    config = schema.parse({"network": {"wan": {"mode": "static", "address": "198.51.100.2/24",
                                               "gateway": "198.51.100.1"}},
                           "firewall": {"rules": rules, "port_forwards": forwards}})
    start = time.perf_counter()
    text = render(config)
    rendered = time.perf_counter() - start
    path = tmp / "ruleset.nft"
    path.write_text(text)
    start = time.perf_counter()
    nft.check(path)
    checked = time.perf_counter() - start
    return [row("ruleset render", rendered * 1000, "ms", "500 rules, 200 port forwards"),
            row("ruleset nft -c check", checked * 1000, "ms", "same ruleset, empty namespace")]


def bench_squid_parse(tmp: Path) -> list[dict]:
    from appliance import schema
    from services.proxy.squidconf import Paths, render

    if not shutil.which("squid"):
        return []
    groups = [{"name": f"g{i}", "sources": [f"10.{i}.0.0/16"],
               "blocked_domains": [f"d{i}-{j}.example" for j in range(100)],
               "allowed_hours": [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}]} for i in range(50)]
    config = schema.parse({"proxy": {"groups": groups, "blocked_patterns": [r"\.exe$"]}})
    paths = Paths(etc=tmp / "etc", work=tmp / "work", run=tmp / "run")
    files = render(config, paths, lab_ports=True)
    (tmp / "work" / "pages").mkdir(parents=True)
    for name in ("squid.conf", "hosts"):
        (tmp / name).write_text(files[name])
    for name, text in files.items():
        if name.startswith("errors/"):
            (paths.pages / name.removeprefix("errors/")).write_text(text)
    (paths.pages / "hosts").write_text(files["hosts"])
    start = time.perf_counter()
    result = subprocess.run(["squid", "-k", "parse", "-f", str(tmp / "squid.conf")], capture_output=True,
                            text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or "FATAL" in result.stderr:
        raise RuntimeError(f"squid -k parse failed: {result.stderr[-500:]}")
    return [row("squid -k parse", elapsed * 1000, "ms", "50 groups x 100 blocked domains")]


def bench_nat() -> list[dict]:
    import os

    if os.geteuid() != 0 or not shutil.which("nft"):
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.netns import Lab

    rules = ("table inet b {\n chain natpost {\n  type nat hook postrouting priority srcnat; policy accept;\n"
             '  oifname "%s" masquerade\n }\n chain forwarding {\n'
             '  type filter hook forward priority filter; policy drop;\n'
             '  ct state established,related accept\n  iifname "%s" oifname "%s" accept\n }\n}\n')
    with Lab() as lab:
        box, pc, inet = lab.host("bbox"), lab.host("bpc"), lab.host("binet")
        lan, _ = lab.link(box, "192.0.2.1/24", pc, "192.0.2.10/24")
        wan, _ = lab.link(box, "198.51.100.2/24", inet, "198.51.100.1/24")
        pc.run("ip", "route", "add", "default", "via", "192.0.2.1")
        box.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        result = box.run("nft", "-f", "-", input=rules % (wan, lan, wan), check=False)
        if result.returncode:
            raise RuntimeError(result.stderr)
        sink = inet.popen([sys.executable, "-c", SINK, "198.51.100.1"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        pc.run(sys.executable, "-c", SOURCE, "198.51.100.1", str(STREAM_SECONDS), timeout=STREAM_SECONDS + 20)
        out, _ = sink.communicate(timeout=20)
    total, seconds = (float(x) for x in out.split())
    return [row("NAT forwarding (one TCP stream)", total * 8 / seconds / 1e9, "Gbit/s",
                "veth pairs, nft masquerade + stateful forward, 2 cores")]


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ob-bench-edge-") as tmp:
        for part in (bench_stats, bench_nft, bench_squid_parse):
            sub = Path(tmp) / part.__name__
            sub.mkdir()
            rows += part(sub)
    rows += bench_nat()
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['metric']:<36} {r['value']:>12.2f} {r['unit']:<8} {r['note']}")
