"""The time service with the real chronyd, run by the real supervisor and apply engine in the box's
namespace; an upstream chronyd on the "Internet" host; sntp (a real NTP client) on the LAN PC.

    pc 192.0.2.10 --- 192.0.2.1 [box: chronyd] 198.51.100.2 --- 198.51.100.1 internet: chronyd, stratum 3
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from appliance import schema
from appliance.context import Context
from services.ntp import SERVICE as NtpService
from tests.netns import Lab, needs_netns
from tests.services.firewall.topology import INET, LAN_BOX, WAN_BOX, Appliance, Edge

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
UPSTREAM = """local stratum 3
allow 198.51.100.0/24
port 123
cmdport 0
bindcmdaddress /
pidfile {folder}/upstream.pid
"""


def stratum(host, server: str) -> int | None:
    """The stratum sntp reports for `server`, or None when nobody answered."""
    result = host.run("sntp", "-t", "2", server, check=False, timeout=20)
    found = re.search(r"\s+s(\d+)\s", result.stdout)
    return int(found.group(1)) if found else None


def wait_for_stratum(host, server: str, wanted: int, timeout: float = 40) -> int | None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = stratum(host, server)
        if seen == wanted:
            return seen
        time.sleep(1)
    return seen


@pytest.fixture(scope="module")
def edge():
    net = Edge()
    folder = Path(tempfile.mkdtemp(prefix="ob-ntp-up-"))
    (folder / "chrony.conf").write_text(UPSTREAM.format(folder=folder))
    net.procs.append(net.inet.popen(["chronyd", "-d", "-x", "-4", "-f", str(folder / "chrony.conf")]))
    yield net
    net.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def box(edge):
    top = Path(tempfile.mkdtemp(prefix="ob-ntp-"))
    app = Appliance(top / "var", {"ntp": NtpService}, edge.box.name)
    try:
        app.boot(edge.document(ntp={"pools": [], "servers": [INET]}))
        yield app
    finally:
        app.close()
        shutil.rmtree(top, ignore_errors=True)


def test_lan_gets_time_the_box_took_from_its_wan_upstream(edge, box):
    # the upstream is stratum 3: once the box follows it, it serves stratum 4 (10 is its own clock)
    assert wait_for_stratum(edge.pc, LAN_BOX, 4) == 4
    assert stratum(edge.inet, WAN_BOX) is None  # the WAN side is not served
    assert box.supervisor.status("ntp").health == "ok"


def test_switched_off_means_no_time_served(edge, box):
    assert wait_for_stratum(edge.pc, LAN_BOX, 4) == 4
    box.engine.update("admin", "no time server", lambda d: d["ntp"].update(enabled=False))
    deadline = time.monotonic() + 15
    while stratum(edge.pc, LAN_BOX) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stratum(edge.pc, LAN_BOX) is None
    box.engine.update("admin", "time server, own clock", lambda d: d["ntp"].update(enabled=True, servers=[]))
    assert wait_for_stratum(edge.pc, LAN_BOX, 10, timeout=20) == 10  # restarted, now without upstream


def test_lab_mode_serves_the_local_clock_on_loopback_only(tmp_path):
    """A namespace with nothing but loopback: the lab box's chronyd answers there, on its lab port."""
    svc = NtpService(Context(tmp_path / "var", lab=True))
    config = schema.parse({})
    folder = svc.ctx.etc_dir("ntp")
    folder.mkdir(parents=True)
    (folder / "chrony.conf").write_text(svc.render(config)["chrony.conf"])
    with Lab() as lab:
        host = lab.host("lab")
        proc = host.popen(list(svc.processes(config)[0].argv))
        try:
            query = f"server 127.0.0.1 port {config.ntp.lab_port} iburst maxsamples 1"
            deadline, answer = time.monotonic() + 20, ""
            while "System clock wrong by" not in answer and time.monotonic() < deadline:
                result = host.run("chronyd", "-Q", "-t", "4", query, check=False, timeout=15)  # a real client
                answer = result.stdout + result.stderr
            assert "System clock wrong by" in answer
        finally:
            proc.terminate()
            proc.wait(10)
