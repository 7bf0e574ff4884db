"""Service processes run unprivileged: `officebox run --lab` in a namespace, with DNS on port 53, DHCP on
67 and provisioning HTTP on 80. Each child runs as its own system user with only the capabilities it
needs (read from /proc/<pid>/status), still serves real dig, udhcpc and curl (NTP and the PBX: their status;
their own tests serve chrony and SIP), and its user can neither write nor read the configuration store."""
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.serviceusers import PRIVILEGES, user_name
from tests.appliance.test_isolation import configure, lab_box, lease, service_pids, until
from tests.appliance.test_runtime import officebox, stop
from tests.netns import needs_netns

pytestmark = [needs_netns, pytest.mark.slow]
CAP_BITS = {"net_bind_service": 10, "net_admin": 12, "net_raw": 13, "sys_nice": 23}  # linux/capability.h
EXPECTED_CAPS = {"dns": 1 << 10, "dhcp": 1 << 10 | 1 << 13, "provisioning": 1 << 10, "ntp": 0,
                 "pbx": 1 << 10 | 1 << 23, "network": 1 << 10 | 1 << 12 | 1 << 13}


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def as_user(status: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """Run argv with the uid, gid and groups of a process (whose status is given)."""
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    groups = ",".join(status["Groups"].split())
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                           f"--groups={groups}" if groups else "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30)


def test_expected_capabilities_match_the_table():
    for name, caps in EXPECTED_CAPS.items():
        assert sum(1 << CAP_BITS[c] for c in PRIVILEGES[name].capabilities) == caps


def test_service_processes_run_as_their_own_users_with_only_their_capabilities(data):
    with lab_box(data) as (box, pc, box_if, pc_if, proc):
        configure(data, ("dns.lab_port", "53"), ("provisioning.lab_http_port", "80"),
                  ("dhcp.lab_interface", box_if), ("dhcp.enabled", "true"))
        domain = json.loads(officebox(data, "config", "show", "--section", "system").stdout)["domain"]
        assert lease(pc, pc_if), "no DHCP lease on port 67"

        def dig() -> str:
            out = box.run("dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", "53", f"deskpc.{domain}",
                          check=False)
            return out.stdout.strip() if out.returncode == 0 else ""
        assert until(dig, 20, "no answer on port 53").startswith("192.168.1.")
        fetch = box.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:80/001565000000.cfg", check=False)
        assert fetch.stdout in ("401", "403", "404"), fetch

        status = officebox(data, "status").stdout
        assert all(f"{name} " in status for name in EXPECTED_CAPS) and "down" not in status, status
        db = data / "officebox.db"
        for name, caps in EXPECTED_CAPS.items():
            [pid] = service_pids(data, name)
            status = proc_status(pid)
            uid = pwd.getpwnam(user_name(name)).pw_uid
            assert status["Uid"].split() == [str(uid)] * 4, (name, status["Uid"])
            assert status["Gid"].split()[0] != "0" and "0" not in status["Groups"].split(), name
            for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
                assert int(status[field], 16) == caps, (name, field, status[field])
            assert status["NoNewPrivs"] == "1", name
            peek = as_user(status, sys.executable, "-c", f"open('/proc/{pid}/mem', 'rb')")
            assert "PermissionError" in peek.stderr, (name, peek)  # not dumpable: its own user cannot peek
            for mode in ("r+b", "rb"):
                attempt = as_user(status, sys.executable, "-c", f"open({str(db)!r}, {mode!r})")
                assert attempt.returncode != 0 and "PermissionError" in attempt.stderr, (name, mode, attempt)
            store = as_user(status, sys.executable, "-c", f"open({str(data / 'state' / name / 'x')!r}, 'w')")
            assert store.returncode == 0, (name, store.stderr)  # its own state folder is its own
        [pbx] = service_pids(data, "pbx")
        engines = until(lambda: [int(p) for p in Path(f"/proc/{pbx}/task/{pbx}/children").read_text().split()
                                 if "media/engine.py" in Path(f"/proc/{p}/cmdline").read_text()], 20,
                        "no media engine under the PBX")
        assert [os.sched_getscheduler(p) for p in engines] == [os.SCHED_RR], "the media engine is not real-time"
        stop(proc)
