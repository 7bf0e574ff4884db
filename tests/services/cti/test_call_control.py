"""The PBX's call control over the bus (services/pbx/cti_commands.py) without phones: who may ask,
bad requests, the configuration changes forwarding/DND ask for, and the CSTA side of forwarding and
do not disturb (Get*, and the Forwarding/DoNotDisturb events when the configuration changes)."""
import asyncio
import copy
import threading

import pytest

from appliance.apply import ApplyEngine
from appliance.bus import appliance_bus
from appliance.changerequests import ChangeRequests
from appliance.store import ConfigStore
from services.pbx import changes
from tests.services.pbx.pbxrunner import PbxRunner

from .conftest import PASSWORDS, CtiRunner, document
from .cstaclient import CstaClient


def ask(bus, topic: str, reply: str, key: str, data: dict, timeout: float = 5.0) -> dict | None:
    got, done = {}, threading.Event()

    def seen(event):
        if event.key == key and event.data is not None:
            got.update(event.data)
            done.set()
    off = bus.subscribe(reply, seen)
    try:
        bus.publish(topic, key, data)
        done.wait(timeout)
    finally:
        off()
    return got or None


def test_only_listed_services_drive_calls_and_bad_requests_get_reasons(tmp_path):
    cfg = document()
    with PbxRunner(tmp_path / "box", cfg) as pbx:
        bus = appliance_bus(pbx.ctx)
        devices = ask(bus, "pbx.command.cti", "pbx.reply.cti", "r1", {"op": "devices", "args": {}})
        assert devices["ok"] and [d["device"] for d in devices["result"]["devices"]] == ["201", "202", "203"]
        assert ask(bus, "pbx.command.dns", "pbx.reply.dns", "r2", {"op": "devices", "args": {}}, 1.5) is None
        unknown = ask(bus, "pbx.command.cti", "pbx.reply.cti", "r3", {"op": "format_disk", "args": {}})
        assert not unknown["ok"] and unknown["code"] == "unsupported"
        bad = ask(bus, "pbx.command.cti", "pbx.reply.cti", "r4", {"op": "hold", "args": {"call": "x"}})
        assert not bad["ok"] and bad["code"] == "value"
        nobody = ask(bus, "pbx.command.cti", "pbx.reply.cti", "r5",
                     {"op": "make_call", "args": {"device": "202", "destination": "203"}})
        assert not nobody["ok"] and "no registered phone" in nobody["error"]
        digits = ask(bus, "pbx.command.cti", "pbx.reply.cti", "r6",
                     {"op": "make_call", "args": {"device": "202", "destination": "20;3"}})
        assert digits["code"] == "value"


def test_forwarding_and_dnd_changes_are_checked_and_applied_to_the_document():
    doc = {"users": [{"login": "bob", "extension": "202"}], "pbx": {}}
    forwarding, dnd = changes.KINDS["call_control.forwarding"], changes.KINDS["call_control.dnd"]
    changed = copy.deepcopy(doc)
    assert "202" in forwarding(changed, {"extension": "202", "kind": "always", "to": "203"})
    assert changed["pbx"]["extensions"]["202"]["forward_always"] == "203"
    dnd(changed, {"extension": "202", "on": True})
    assert changed["pbx"]["extensions"]["202"]["dnd"] is True
    for bad in ({"extension": "299", "kind": "always", "to": "203"}, {"extension": "202", "kind": "sometimes"},
                {"extension": "202", "kind": "busy", "to": "20 3"}, {"extension": "202", "kind": "busy", "to": "202"}):
        with pytest.raises(ValueError):
            forwarding(copy.deepcopy(doc), bad)


class Live:
    """The runtime's part for the apply engine: each service reloads on its own loop thread."""

    def __init__(self, runners: dict) -> None:
        self.runners = runners

    def run(self, coro, timeout: float):
        return asyncio.run(asyncio.wait_for(coro, timeout))

    async def reconfigure(self, name: str, config) -> None:
        if name in self.runners:
            await asyncio.to_thread(self.runners[name].reload, config)


def test_set_forwarding_and_dnd_go_through_the_configuration_and_come_back_as_events(tmp_path):
    cfg = document()
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti, CstaClient(cti.tcp) as c:
        services = {"pbx": pbx.svc, "cti": cti.svc}
        engine = ApplyEngine(pbx.ctx, ConfigStore(pbx.ctx.db_path), services)
        engine.apply(cfg, "system", "factory")
        engine.live = Live({"pbx": pbx, "cti": cti})
        root = ChangeRequests(engine, services, appliance_bus(pbx.ctx))
        try:
            c.start_session("bob", PASSWORDS["bob"])
            ref = c.monitor("202")
            got = c.csta("GetForwarding", "<device>202</device>")
            assert got.name == "GetForwardingResponse" and got.all("forwardStatus") == ["false"] * 3
            assert c.csta("GetDoNotDisturb", "<device>202</device>").value("doNotDisturbOn") == "false"
            assert c.csta("SetDoNotDisturb", "<device>203</device><doNotDisturbOn>true</doNotDisturbOn>"
                          ).value("operation") == "privilegeViolationOnSpecifiedDevice"
            done = c.csta("SetForwarding", "<device>202</device><forwardingType>forwardBusy</forwardingType>"
                                           "<activateForward>true</activateForward><forwardDN>203</forwardDN>")
            assert done.name == "SetForwardingResponse", done
            forward = c.wait_event("ForwardingEvent", monitorCrossRefID=ref)
            assert forward.value("forwardingType") == "forwardBusy" and forward.value("forwardTo") == "203"
            assert c.csta("SetDoNotDisturb", "<device>202</device><doNotDisturbOn>true</doNotDisturbOn>"
                          ).name == "SetDoNotDisturbResponse"
            assert c.wait_event("DoNotDisturbEvent", monitorCrossRefID=ref).value("doNotDisturbOn") == "true"
            assert "203" in c.csta("GetForwarding", "<device>202</device>").all("forwardDN")
            assert c.csta("GetDoNotDisturb", "<device>202</device>").value("doNotDisturbOn") == "true"
            itself = c.csta("SetForwarding", "<device>202</device><forwardingType>forwardImmediate</forwardingType>"
                                             "<activateForward>true</activateForward><forwardDN>202</forwardDN>")
            assert itself.value("operation") == "invalidParameterValue"  # refused by the root's check
            settings = engine.current_config().pbx.extensions["202"]
            assert settings.forward_busy == "203" and settings.dnd and not settings.forward_always
        finally:
            root.close()


def test_another_service_process_cannot_ask_in_the_cti_name():
    """Through the bus hub a process stamped "dns" publishing on pbx.command.cti is cut off, and the
    request never reaches a subscriber (as the PBX process would be)."""
    from appliance.bus import Bus, BusHub
    from tests.appliance.test_change_requests import _process

    bus = Bus()
    seen = []
    off = bus.subscribe("pbx.command.", seen.append)

    async def scenario():
        hub = BusHub(bus)
        intruder = await _process(hub, "dns")
        intruder.publish("pbx.command.cti", "k1", {"op": "set_dnd", "args": {"device": "202", "on": True}})
        for _ in range(100):
            if not hub._clients:
                break
            await asyncio.sleep(0.02)
        assert not hub._clients
        await intruder.close()
        cti = await _process(hub, "cti")
        cti.publish("pbx.command.cti", "k2", {"op": "devices", "args": {}})
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        await cti.close()
        await hub.close()

    asyncio.run(scenario())
    off()
    assert [e.key for e in seen] == ["k2"]
