"""Configuration changes asked for by a service's process: applied by the root through the apply engine
as one revision, refused with a reason for bad data or a kind the service did not declare, and a process
can ask only in its own service's name (the hub stamps its connection)."""
from __future__ import annotations

import asyncio
import socket

from appliance.apply import ApplyEngine
from appliance.bus import Bus, BusHub, RemoteBus
from appliance.changerequests import ChangeRequester, ChangeRequests
from appliance.store import ConfigStore
from tests.appliance.probe_service import ProbeService


def _company(doc: dict, data: dict) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a company name is needed")
    doc["system"]["company_name"] = name
    return f"company name set to {name}"


class Probe(ProbeService):
    change_requests = {"company": _company}


def _engine(ctx) -> tuple[ApplyEngine, Probe]:
    probe = Probe(ctx)
    engine = ApplyEngine(ctx, ConfigStore(ctx.db_path), {"probe": probe})
    engine.apply({}, "system", "factory")
    return engine, probe


async def _process(hub: BusHub, origin: str) -> RemoteBus:
    """A service process's bus: the remote end of a socket pair the hub stamped with `origin`."""
    ours, theirs = socket.socketpair()
    await hub.attach(ours, origin)
    remote = RemoteBus()
    await remote.connect(sock=theirs)
    return remote


def test_a_service_process_changes_its_own_settings_through_the_root(ctx):
    engine, _ = _engine(ctx)
    bus = Bus()
    handler = ChangeRequests(engine, {"probe": engine.services["probe"]}, bus)

    async def scenario():
        hub = BusHub(bus)
        remote = await _process(hub, "probe")
        requester = ChangeRequester(remote, "probe", timeout=10)
        await asyncio.sleep(0.05)  # its subscription reached the hub
        assert await requester.request("company", {"name": "Acme"}, by="201") is None
        assert await requester.request("company", {"name": " "}, by="201") == "a company name is needed"
        assert await requester.request("wipe", {}, by="201") == "probe may not change 'wipe'"
        requester.close()
        await remote.close()
        await hub.close()

    try:
        asyncio.run(scenario())
    finally:
        handler.close()
    current = engine.store.current()
    assert current.config.system.company_name == "Acme"
    assert (current.author, current.summary) == ("probe:201", "company name set to Acme")
    assert len(engine.store.history()) == 2  # the refused requests made no revision
    assert (handler.applied, handler.refused) == (1, 2)


def test_a_process_cannot_ask_in_another_services_name(ctx):
    """Before the hub stamped connections, any service process (the DNS one, say) could publish
    config.request.pbx and have the root apply the PBX's kinds on its word."""
    engine, _ = _engine(ctx)
    bus = Bus()
    handler = ChangeRequests(engine, {"probe": engine.services["probe"]}, bus)

    async def scenario():
        hub = BusHub(bus)
        intruder = await _process(hub, "dns")
        intruder.publish("config.request.probe", "k1", {"kind": "company", "by": "201", "data": {"name": "Evil"}})
        for _ in range(100):  # the hub drops the connection
            if not hub._clients:
                break
            await asyncio.sleep(0.02)
        assert not hub._clients
        await intruder.close()
        await hub.close()

    try:
        asyncio.run(scenario())
    finally:
        handler.close()
    assert engine.store.current().config.system.company_name != "Evil"
    assert len(engine.store.history()) == 1 and handler.applied == 0


def test_requests_wait_in_a_bounded_line_and_a_silent_root_times_out(ctx):
    engine, _ = _engine(ctx)
    bus = Bus()

    async def scenario():
        nobody = ChangeRequester(Bus(), "probe", timeout=0.2)  # no root listening on this bus
        assert await nobody.request("company", {"name": "X"}, by="201") == "the configuration did not answer in time"
        handler = ChangeRequests(engine, {"probe": engine.services["probe"]}, bus)
        handler.pending = 16  # the line is full
        requester = ChangeRequester(bus, "probe", timeout=5)
        assert "too many" in await requester.request("company", {"name": "Y"}, by="201")
        handler.close()

    asyncio.run(scenario())
    assert engine.store.current().config.system.company_name not in ("X", "Y")
