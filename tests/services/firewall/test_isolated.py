"""The firewall in its own process, as the appliance runs it on the box (appliance.servicehost): the child
runs as officebox-firewall with CAP_NET_ADMIN alone, loads the ruleset into the kernel (a namespace of the
test's), follows the calls' media addresses from the bus (pbx.media) into its nft sets, and after a kill -9
comes back with the same rules and sets. The web admin's client reads, from that process, whether rules load and
what the counted rules matched (a LAN PC's connections to the printer rule's port)."""
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.clients import client_for
from appliance.context import Context
from services.firewall import mediaset
from services.firewall.ruleset import TABLE
from services.firewall.service import FirewallService
from tests.isolated import isolated, until
from tests.netns import Lab, needs_netns

pytestmark = [needs_netns, pytest.mark.slow]
CAP_NET_ADMIN = 12
DOC = {"system": {"hostname": "box", "domain": "office.test"},
       "firewall": {"rules": [{"name": "printer-ipp", "action": "accept", "source_zone": "lan", "protocol": "tcp",
                               "ports": "631"}]}}


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_firewall_in_its_own_unprivileged_process_loads_rules_and_follows_the_media_addresses(tmp_path):
    with Lab() as lab:
        host, pc = lab.host("fw"), lab.host("pc")
        lan_if, _ = lab.link(host, "192.0.2.1/24", pc, "192.0.2.10/24")
        document = {**DOC, "network": {"lan": {"interface": lan_if, "address": "192.0.2.1/24"}}}
        ctx = Context(tmp_path, lab=False)  # on the box: rules go into the kernel (the namespace's)

        def nft(*argv: str) -> str:
            return subprocess.run(["ip", "netns", "exec", host.name, "nft", *argv], capture_output=True, text=True,
                                  timeout=30).stdout

        with isolated(ctx, FirewallService(ctx), document, host) as run:
            child = run.service.proc.pid
            status = proc_status(child)
            assert status["Uid"].split()[0] == str(pwd.getpwnam("officebox-firewall").pw_uid)
            assert int(status["CapEff"], 16) == 1 << CAP_NET_ADMIN and int(status["CapBnd"], 16) == 1 << CAP_NET_ADMIN
            assert "printer-ipp" in until(lambda: nft("list", "table", "inet", TABLE))
            loaded = (tmp_path / "run" / "firewall" / "ruleset.nft").read_text()  # what the process gave nft
            assert loaded == (tmp_path / "etc" / "current" / "firewall" / "ruleset.nft").read_text()  # as checked
            client = client_for(run.service)
            assert client.live() is True
            for _ in range(3):  # refused by the box (nothing listens), counted by the rule that lets it in
                pc.run("curl", "-s", "-m", "2", "http://192.0.2.1:631/", check=False)
            printer = [c for c in client.counters() if c["rule"] == "printer-ipp"]
            assert len(printer) == 1 and printer[0]["packets"] >= 3 and printer[0]["chain"] == "input", printer

            run.loop.call_soon_threadsafe(run.hub.bus.publish, mediaset.TOPIC, "call-1",
                                          {"addresses": ["198.51.100.5"]}, True)
            assert until(lambda: "198.51.100.5" in nft("list", "set", "inet", TABLE, "media4")), "no media address"

            subprocess.run(["ip", "netns", "exec", host.name, "nft", "delete", "table", "inet", TABLE], check=True)
            os.kill(child, signal.SIGKILL)
            assert run.restarted(child), "the firewall process was not restarted"
            assert "printer-ipp" in until(lambda: nft("list", "table", "inet", TABLE)), "rules not loaded again"
            assert until(lambda: "198.51.100.5" in nft("list", "set", "inet", TABLE, "media4")), "sets not written"
