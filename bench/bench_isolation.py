"""Cross-service latency under a DNS flood: SIP OPTIONS and IMAPS sign-in while dnsperf floods DNS,
with every service in the appliance's process ("in-process", OFFICEBOX_ISOLATE="") and with the services of
appliance.runtime.ISOLATED (DNS, DHCP, provisioning, NTP, proxy, PBX) in processes of their own ("isolated").

For each mode, `officebox run --lab` runs in a network namespace of its own with one mail user;
a probe in that namespace measures PROBES SIP OPTIONS round trips (UDP, port 5070) and IMAPS
logins (port 2993) idle, then again while dnsperf (Debian `dnsperf`) sends local names (the
box's own, answered from its zone) as fast as it can for the probe's duration. Root only.

    python -m bench isolation
    python -m bench.bench_isolation          # alone, prints the rows
"""
from __future__ import annotations

import imaplib
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBES = 40
FLOOD_CLIENTS = 8
PY = sys.executable
ROOT = str(Path(__file__).resolve().parent.parent)
USER, PASSWORD = "bench", "bench-password-1"
MODES = {"in-process": "", "isolated": None}


# -- the probe (runs inside the box's namespace) -----------------------------------------------------------
def sip_options_ms(sock: socket.socket, n: int) -> float:
    sock.sendto((f"OPTIONS sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};"
                 f"branch=z9hG4bKbench{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=b{n}\r\n"
                 f"To: <sip:201@127.0.0.1>\r\nCall-ID: bench{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                 f"Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", 5070))
    start = time.perf_counter()
    while True:
        data = sock.recv(65535)
        if f"bench{n}@".encode() in data:
            return (time.perf_counter() - start) * 1000


def imap_login_ms() -> float:
    start = time.perf_counter()
    client = imaplib.IMAP4_SSL("127.0.0.1", 2993, ssl_context=ssl._create_unverified_context(), timeout=10)
    try:
        client.login(USER, PASSWORD)
    finally:
        client.shutdown()
    return (time.perf_counter() - start) * 1000


def probe() -> dict:
    sip, imap, lost = [], [], 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        for n in range(PROBES):
            try:
                sip.append(sip_options_ms(sock, n))
            except TimeoutError:
                lost += 1
            try:
                imap.append(imap_login_ms())
            except (OSError, imaplib.IMAP4.error):
                lost += 1
    return {"sip": sip, "imap": imap, "lost": lost}


# -- the driver -------------------------------------------------------------------------------------------------
def netns(name: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True, text=True, **kw)


def prepare(data: Path) -> str:
    """A lab data directory with the factory configuration and one mail user; returns the box's name."""
    script = (f"from appliance.runtime import Runtime\nfrom appliance.users import hash_password\n"
              f"rt = Runtime({str(data)!r}, lab=True)\nrt.bootstrap()\n"
              f"def add(doc):\n    doc['users'].append({{'login': {USER!r}, 'full_name': 'Bench',"
              f" 'password_hash': hash_password({PASSWORD!r})}})\n"
              f"rt.engine.update('bench', 'bench user', add)\nc = rt.config.system\n"
              f"print(c.hostname + '.' + c.domain)\nrt.store.close()\n")
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT}, check=True)
    return out.stdout.strip().splitlines()[-1]


def measure(mode: str, isolate: str | None) -> dict:
    ns = f"obbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="obbench-"))
    box = None
    try:
        netns(ns, "ip", "link", "set", "lo", "up", check=True)
        name = prepare(tmp / "var")
        env = {**os.environ, "PYTHONPATH": ROOT}
        if isolate is not None:
            env["OFFICEBOX_ISOLATE"] = isolate
        else:
            env.pop("OFFICEBOX_ISOLATE", None)
        box = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-m", "appliance.cli", "--lab", "--data-dir",
                                str(tmp / "var"), "run", "--admin-port", "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not re.search(r"web admin: ", box.stdout.readline()):
            pass
        time.sleep(2)  # let every service settle
        probe_argv = ["ip", "netns", "exec", ns, PY, "-m", "bench.bench_isolation", "probe"]
        idle = json.loads(subprocess.run(probe_argv, capture_output=True, text=True, cwd=ROOT, env=env,
                                         timeout=300, check=True).stdout)
        queries = tmp / "queries.txt"
        queries.write_text(f"{name} A\n" * 100)
        flood = subprocess.Popen(["ip", "netns", "exec", ns, "dnsperf", "-s", "127.0.0.1", "-p", "5353", "-d",
                                  str(queries), "-c", str(FLOOD_CLIENTS), "-l", "600", "-q", "500"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        try:
            loaded = json.loads(subprocess.run(probe_argv, capture_output=True, text=True, cwd=ROOT, env=env,
                                               timeout=600, check=True).stdout)
        finally:
            flood.send_signal(2)
            out = flood.communicate(timeout=30)[0]
        qps = re.search(r"Queries per second:\s+([\d.]+)", out)
        return {"idle": idle, "loaded": loaded, "qps": float(qps.group(1)) if qps else float("nan")}
    finally:
        if box is not None:
            box.terminate()
            try:
                box.wait(timeout=60)
            except subprocess.TimeoutExpired:
                box.kill()
        subprocess.run(["ip", "netns", "delete", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run() -> list[dict]:
    if os.geteuid() != 0 or not shutil.which("dnsperf"):
        return [{"area": "isolation", "metric": "skipped", "value": float("nan"), "note": "needs root and dnsperf"}]
    rows = []
    for mode, isolate in MODES.items():
        found = measure(mode, isolate)
        for what, label in (("sip", "SIP OPTIONS"), ("imap", "IMAPS login")):
            idle, loaded = _p50(found["idle"][what]), _p50(found["loaded"][what])
            rows.append({"area": "isolation", "metric": f"{label} p50, idle ({mode})", "value": round(idle, 2),
                         "unit": "ms"})
            rows.append({"area": "isolation", "metric": f"{label} p50, DNS flood ({mode})",
                         "value": round(loaded, 2), "unit": "ms", "note": f"x{loaded / idle:.1f} of idle"})
        lost = f"lost probes: {found['idle']['lost']} idle, {found['loaded']['lost']} flood"
        rows.append({"area": "isolation", "metric": f"DNS flood answered ({mode})", "value": found["qps"],
                     "unit": "q/s", "note": lost})
    return rows


if __name__ == "__main__":
    if sys.argv[1:] == ["probe"]:
        print(json.dumps(probe()))
    else:
        for row in run():
            print(row)
