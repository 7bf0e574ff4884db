"""The VPN in its own process, as the appliance runs it (appliance.servicehost): the web admin's live rows,
the remote-access CA and the disconnect action come through the typed client (appliance.clients.VpnClient)
from the child; while the child is down the action is refused, and it answers again once restarted."""
import asyncio
import os
import signal
import threading
import time

import pytest

from appliance.apply import ApplyEngine
from appliance.bus import Bus, BusHub
from appliance.clients import ServiceRestarting, client_for
from appliance.context import Context
from appliance.servicehost import IsolatedService
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor
from services.vpn.service import VpnService, tunnel_rows

pytestmark = pytest.mark.slow
DOC = {"system": {"hostname": "box", "domain": "office.test"},
       "users": [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}],
       "vpn": {"enabled": True, "tunnels": [{"name": "branch", "peer": "198.51.100.7", "psk": "Branch2Head-9xQp-41zz",
                                             "local_subnets": ["192.168.1.0/24"], "remote_subnets": ["10.2.0.0/24"]}],
               "remote_access": {"enabled": True, "server_name": "vpn.office.test",
                                 "accounts": [{"user": "ann", "password_secret": "Ann-vpn-secret-42"}]}}}


def until(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_vpn_in_its_own_process_answers_the_web_admin_through_its_client(tmp_path):
    ctx = Context(tmp_path, lab=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    hub = BusHub(Bus())
    call(hub.serve(ctx.run_dir("core") / "bus.sock"))
    service = IsolatedService(VpnService(ctx), ctx.run_dir("core") / "bus.sock")
    store = ConfigStore(ctx.db_path)
    supervisor = Supervisor(ctx, {"vpn": service})
    try:
        engine = ApplyEngine(ctx, store, {"vpn": service})
        engine.apply(DOC, "test", "start")  # strongSwan's own check of the rendered files; the CA is made
        call(supervisor.start(engine.current_config()))
        assert supervisor.units["vpn"].state == "running", supervisor.units["vpn"].error
        child = service.proc.pid
        assert child != os.getpid()

        client = client_for(service)
        assert client.isolated
        live = client.live()
        assert live == {"sas": [], "sas_at": live["sas_at"], "peers": {}} and live["sas_at"] > 0  # the child listed
        assert [(t["name"], t["state"]) for t in tunnel_rows(engine.current_config(), live["sas"])] == [
            ("branch", "down")]
        ca = client.ca_pem()
        assert ca.startswith("-----BEGIN CERTIFICATE-----") and ca == VpnService(ctx).pki.ca.read_text()
        assert client.disconnect("7") == ""  # not connected: nothing ended

        os.kill(child, signal.SIGKILL)
        assert until(lambda: not service.alive, 10)
        with pytest.raises(ServiceRestarting):  # the appliance's own copy must not take the action
            client.disconnect("7")
        assert until(lambda: supervisor.units["vpn"].state == "running" and service.proc.pid != child, 30), \
            "the VPN process was not restarted"
        assert until(lambda: client.live()["sas_at"] > 0, 30)  # the new child answers
    finally:
        call(supervisor.stop())
        call(hub.close())
        store.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
