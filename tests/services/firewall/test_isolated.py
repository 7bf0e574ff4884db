"""The firewall in its own process, as the appliance runs it on the box (appliance.servicehost): the child
runs as officebox-firewall with CAP_NET_ADMIN alone, loads the ruleset into the kernel (a namespace of the
test's), follows the calls' media addresses from the bus (pbx.media) into its nft sets, and after a kill -9
comes back with the same rules and sets."""
import asyncio
import os
import pwd
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from appliance.apply import ApplyEngine
from appliance.bus import Bus, BusHub
from appliance.context import Context
from appliance.servicehost import IsolatedService
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor
from services.firewall import mediaset
from services.firewall.ruleset import TABLE
from services.firewall.service import FirewallService
from tests.netns import Lab, needs_netns

pytestmark = [needs_netns, pytest.mark.slow]
CAP_NET_ADMIN = 12
DOC = {"system": {"hostname": "box", "domain": "office.test"},
       "firewall": {"rules": [{"name": "printer-ipp", "action": "accept", "source_zone": "lan", "protocol": "tcp",
                               "ports": "631"}]}}


def until(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_firewall_in_its_own_unprivileged_process_loads_rules_and_follows_the_media_addresses(tmp_path):
    with Lab() as lab:
        host = lab.host("fw")
        ctx = Context(tmp_path, lab=False)  # on the box: rules go into the kernel (the namespace's)
        loop = asyncio.new_event_loop()

        def serve():
            with host.enter():  # the child processes the loop spawns start in the namespace
                loop.run_forever()
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        def call(coro):
            return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

        def nft(*argv: str) -> str:
            return subprocess.run(["ip", "netns", "exec", host.name, "nft", *argv], capture_output=True, text=True,
                                  timeout=30).stdout

        hub = BusHub(Bus())
        call(hub.serve(ctx.run_dir("core") / "bus.sock"))
        service = IsolatedService(FirewallService(ctx), ctx.run_dir("core") / "bus.sock")
        store = ConfigStore(ctx.db_path)
        supervisor = Supervisor(ctx, {"firewall": service})
        try:
            ApplyEngine(ctx, store, {"firewall": service}).apply(DOC, "test", "start")
            call(supervisor.start(store.current().config))
            assert supervisor.units["firewall"].state == "running", supervisor.units["firewall"].error
            child = service.proc.pid
            status = proc_status(child)
            assert status["Uid"].split()[0] == str(pwd.getpwnam("officebox-firewall").pw_uid)
            assert int(status["CapEff"], 16) == 1 << CAP_NET_ADMIN and int(status["CapBnd"], 16) == 1 << CAP_NET_ADMIN
            assert "printer-ipp" in until(lambda: nft("list", "table", "inet", TABLE))

            loop.call_soon_threadsafe(hub.bus.publish, mediaset.TOPIC, "call-1", {"addresses": ["198.51.100.5"]}, True)
            assert until(lambda: "198.51.100.5" in nft("list", "set", "inet", TABLE, "media4")), "no media address"

            subprocess.run(["ip", "netns", "exec", host.name, "nft", "delete", "table", "inet", TABLE], check=True)
            os.kill(child, signal.SIGKILL)
            assert until(lambda: supervisor.units["firewall"].state == "running" and service.proc.pid != child), \
                "the firewall process was not restarted"
            assert "printer-ipp" in until(lambda: nft("list", "table", "inet", TABLE)), "rules not loaded again"
            assert until(lambda: "198.51.100.5" in nft("list", "set", "inet", TABLE, "media4")), "sets not written"
        finally:
            call(supervisor.stop())
            call(hub.close())
            store.close()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
