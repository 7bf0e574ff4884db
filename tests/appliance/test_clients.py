"""Typed clients over a service's RPC socket: DNS in its own process (lab mode, a free port) answers
status and flush_cache through appliance.clients, and refuses a method it does not expose."""
import asyncio

import pytest

from appliance import rpc, schema
from appliance.bus import Bus, BusHub
from appliance.clients import client_for
from appliance.context import Context
from appliance.service import ApplyError
from appliance.servicehost import IsolatedService
from services.dns import DnsService


def test_dns_in_its_own_process_through_its_client(data):
    ctx = Context(data, lab=True)
    config = schema.parse({"dns": {"lab_port": 0}})

    async def scenario():
        hub = BusHub(Bus())
        await hub.serve(ctx.run_dir("core") / "bus.sock")
        service = IsolatedService(DnsService(ctx), ctx.run_dir("core") / "bus.sock")
        try:
            await service.start(config)
            client = client_for(service)
            assert client.isolated
            status = await asyncio.to_thread(client.status)
            assert status.health in ("ok", "degraded") and "cached" in status.figures
            await asyncio.to_thread(client.flush_cache)
            with pytest.raises(rpc.RpcError, match="unknown request"):
                await rpc.call_async(service.rpc_path, {"op": "call", "method": "stop"}, 5)
            pid = service.proc.pid
            await service.stop()
            assert service.proc.returncode is not None and not service.alive
            with pytest.raises(ApplyError, match="not running"):
                service.call("flush_cache")
            return pid
        finally:
            await service.stop()
            await hub.close()
    assert asyncio.run(scenario()) > 0


def test_an_action_while_the_process_is_down_is_refused_not_dropped(data):
    """Before, an unban asked while the PBX process restarted went to the appliance's idle copy of the
    service, which did nothing, and the page said it was done."""
    from appliance.clients import ServiceRestarting
    from services.pbx import PbxService

    ctx = Context(data, lab=True)
    pbx = client_for(IsolatedService(PbxService(ctx), ctx.run_dir("core") / "bus.sock"))  # its process is down
    assert pbx.isolated and pbx.bans() == []  # reads: nothing live, never stale
    with pytest.raises(ServiceRestarting, match="restarting"):
        pbx.unban("192.0.2.7")
    dns = client_for(IsolatedService(DnsService(ctx), ctx.run_dir("core") / "bus.sock"))
    with pytest.raises(ServiceRestarting):
        dns.flush_cache()
