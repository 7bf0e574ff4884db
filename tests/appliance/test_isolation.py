"""One process per service: `officebox run --lab` runs DNS, DHCP and provisioning each in a child
process of its own. SIGKILL of the DNS process leaves DHCP (real udhcpc) and SIP (real sipsak) answering, the
supervisor brings DNS back, and the new DNS process knows the DHCP client's name again (lease events
cross processes on the bus)."""
import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.appliance.test_runtime import officebox, reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns

pytestmark = [needs_netns, pytest.mark.slow]


def service_pids(data: Path, name: str) -> list[int]:
    """The pids of the servicehost processes of `name` for this data directory (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"appliance.servicehost" in argv and name.encode() in argv and str(data.resolve()).encode() in argv:
            found.append(int(entry.name))
    return found


def configure(data: Path, *changes: tuple[str, str]) -> None:
    """`officebox config set` each (key, value) on the running lab box."""
    for key, value in changes:
        change = officebox(data, "config", "set", key, value)
        assert change.returncode == 0, change.stderr


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


@contextmanager
def lab_box(data: Path):
    """`officebox run --lab` in a namespace with a PC on its LAN: (box, pc, box_if, pc_if, proc), once its
    web admin is up; killed if the test fails."""
    with Lab() as lab:
        box, pc = lab.host("box"), lab.host("pc")
        box_if, pc_if = lab.link(box, "192.168.1.1/24", pc, None)
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            yield box, pc, box_if, pc_if, proc
        finally:
            reap(proc)


def lease(pc, pc_if: str) -> bool:
    """A DHCP lease for the PC ("deskpc"), from real udhcpc."""
    out = pc.run("udhcpc", "-i", pc_if, "-f", "-q", "-n", "-t", "3", "-T", "2", "-x", "hostname:deskpc",
                 "-s", "/bin/true", check=False, timeout=30)
    return out.returncode == 0


def test_killed_dns_process_leaves_dhcp_and_sip_serving_and_comes_back(data):
    with lab_box(data) as (box, pc, box_if, pc_if, proc):
        configure(data, ("dhcp.lab_interface", box_if), ("dhcp.enabled", "true"))
        domain = json.loads(officebox(data, "config", "show", "--section", "system").stdout)["domain"]

        def dig() -> str:
            out = box.run("dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", "5353",
                          f"deskpc.{domain}", check=False)
            return out.stdout.strip() if out.returncode == 0 else ""

        def sip_ok() -> bool:
            return box.run("sipsak", "-s", "sip:201@127.0.0.1:5070", check=False).returncode == 0

        assert lease(pc, pc_if), "no DHCP lease from the DHCP process"
        address = until(dig, 20, "the DNS process never learnt the DHCP client's name")
        assert address.startswith("192.168.1.")
        assert sip_ok()
        [dns_pid] = service_pids(data, "dns")
        [dhcp_pid] = service_pids(data, "dhcp")
        [prov_pid] = service_pids(data, "provisioning")
        fetch = ("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:18081/001565000000.cfg")
        assert box.run(*fetch, check=False).stdout in ("401", "403", "404")
        assert dns_pid != proc.pid != dhcp_pid
        os.kill(dns_pid, signal.SIGKILL)
        assert sip_ok(), "SIP stopped answering when the DNS process died"
        assert lease(pc, pc_if), "DHCP stopped answering when the DNS process died"
        assert service_pids(data, "dhcp") == [dhcp_pid] and service_pids(data, "provisioning") == [prov_pid]
        assert until(dig, 30, "DNS did not come back") == address
        assert service_pids(data, "dns") not in ([], [dns_pid])
        status = officebox(data, "status").stdout
        assert "dns" in status and "down" not in status, status
        stop(proc)
        assert not any(service_pids(data, name) for name in ("dns", "dhcp", "provisioning"))
