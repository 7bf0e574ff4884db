"""The CSTA services a session may ask for (ECMA-269 / ECMA-323 names), each checked against the
session's device scope and carried out through the PBX's call control (pbxlink.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import csta
from .agents import REQUESTED, agent_state
from .pbxlink import PbxError
from .xmlsafe import Node, element, text_element

if TYPE_CHECKING:
    from .session import Session

PBX_ERRORS = {"device": ("operation", "invalidDeviceID"), "call": ("operation", "invalidCallID"),
              "connection": ("operation", "invalidConnectionID"),
              "state": ("stateIncompatibility", "invalidConnectionState"),
              "value": ("operation", "invalidParameterValue"),
              "unsupported": ("operation", "requestIncompatibleWithObject"),
              "busy": ("systemResourceAvailability", "serviceBusy"), "failed": ("unspecified", "generic")}
FORWARDING = {"forwardImmediate": "always", "forwardBusy": "busy", "forwardNoAns": "no_answer"}


class Refused(Exception):
    """A CSTA error response: (category, value)."""

    def __init__(self, category: str, value: str, detail: str = "") -> None:
        super().__init__(value)
        self.category, self.value, self.detail = category, value, detail


def _device_of(node: Node, *path: str) -> str:
    found = node.child(*path)
    value = (found.find("deviceObject") or found.find("deviceIdentifier") or found).text.strip() if found else ""
    if not value:
        raise Refused("operation", "invalidDeviceID")
    return value


def _connection(node: Node, name: str) -> tuple[str, str]:
    conn = node.child(name)
    call, device = (conn.value("callID"), conn.value("deviceID")) if conn else ("", "")
    if not call or not device:
        raise Refused("operation", "invalidConnectionID")
    return call, device


class Services:
    def __init__(self, session: "Session") -> None:
        self.s = session

    def _scoped(self, device: str) -> str:
        if not self.s.allowed(device):
            raise Refused("operation", "privilegeViolationOnSpecifiedDevice")
        return device

    def _own_connection(self, node: Node, name: str) -> tuple[str, str]:
        call, device = _connection(node, name)
        self._scoped(device)
        return call, device

    async def _pbx(self, op: str, **args) -> dict:
        try:
            return await self.s.server.pbx.request(op, by=self.s.login, **args)
        except PbxError as exc:
            raise Refused(*PBX_ERRORS.get(exc.code, ("unspecified", "generic")), str(exc)) from None

    # -- monitoring and snapshots -----------------------------------------------------------------
    async def MonitorStart(self, node: Node) -> str:
        device = _device_of(node, "monitorObject")
        if device in self.s.server.model.extensions:
            self._scoped(device)
        elif await self._queue(device):  # a scope of * or naming the queue, or one of its supervisors
            if not self.s.server.may_monitor_queue(self.s, device):
                raise Refused("operation", "privilegeViolationOnSpecifiedDevice", f"{device} is a queue outside "
                              "this session's scope, and its login supervises no such queue")
        else:
            self._scoped(device)
            raise Refused("operation", "invalidDeviceID")
        if len(self.s.monitors) >= self.s.server.cfg.max_monitors:
            raise Refused("systemResourceAvailability", "overallMonitorLimitExceeded")
        ref = self.s.server.monitor(self.s, device)
        return csta.csta("MonitorStartResponse", text_element("monitorCrossRefID", ref))

    async def _queue(self, device: str) -> bool:
        try:
            return await self.s.server.is_queue(device)
        except PbxError as exc:
            raise Refused(*PBX_ERRORS.get(exc.code, ("unspecified", "generic")), str(exc)) from None

    async def MonitorStop(self, node: Node) -> str:
        ref = node.value("monitorCrossRefID")
        if ref not in self.s.monitors:
            raise Refused("operation", "invalidCrossRefID")
        self.s.server.unmonitor(self.s, ref)
        return csta.csta("MonitorStopResponse")

    async def SnapshotDevice(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "snapshotObject"))
        items = [element("snapshotDeviceResponseInfo", csta.connection("connectionIdentifier", call, device),
                         element("localCallState", element("compoundCallState",
                                                           text_element("localConnectionState", state))))
                 for call, state in self.s.server.model.device_calls(device)]
        return csta.csta("SnapshotDeviceResponse", element("crossRefIDorSnapshotData",
                                                           element("snapshotData", *items)))

    def _call_in_scope(self, call_id: str):
        call = self.s.server.model.call(call_id)
        if call is None:
            raise Refused("operation", "invalidCallID")
        if not any(self.s.allowed(d) for d in call.connections):
            raise Refused("operation", "privilegeViolationOnSpecifiedDevice")
        return call

    async def SnapshotCall(self, node: Node) -> str:
        call = self._call_in_scope(node.value("snapshotObject", "callID"))
        items = [element("snapshotCallResponseInfo", element("deviceOnCall", csta.device_id(d)),
                         csta.connection("callIdentifier", call.id, d), text_element("localConnectionState", state))
                 for d, state in sorted(call.connections.items())]
        return csta.csta("SnapshotCallResponse", element("crossRefIDorSnapshotData", element("snapshotData", *items)))

    # -- call control -------------------------------------------------------------------------------
    async def MakeCall(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "callingDevice"))
        called = node.value("calledDirectoryNumber")
        auto = node.value("autoOriginate") != "doNotPrompt"
        result = await self._pbx("make_call", device=device, destination=called, auto_answer=auto)
        self.s.server.model.made[result["call"]] = device
        return csta.csta("MakeCallResponse", csta.connection("callingDevice", result["call"], device))

    async def AnswerCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "callToBeAnswered")
        await self._pbx("answer", call=call, device=device)  # refused with the reason (services/pbx/cti_commands)
        return csta.csta("AnswerCallResponse")

    async def ClearConnection(self, node: Node) -> str:
        call, device = self._own_connection(node, "connectionToBeCleared")
        await self._pbx("clear_connection", call=call, device=device)
        return csta.csta("ClearConnectionResponse")

    async def ClearCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "callToBeCleared")
        await self._pbx("clear_call", call=self._call_in_scope(call).id)
        return csta.csta("ClearCallResponse")

    async def HoldCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "callToBeHeld")
        await self._pbx("hold", call=call, device=device)
        return csta.csta("HoldCallResponse")

    async def RetrieveCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "callToBeRetrieved")
        await self._pbx("retrieve", call=call, device=device)
        return csta.csta("RetrieveCallResponse")

    async def ConsultationCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "existingCall")
        result = await self._pbx("consultation", call=call, device=device, destination=node.value("consultedDevice"))
        self.s.server.model.made[result["call"]] = device
        return csta.csta("ConsultationCallResponse", csta.connection("initiatedCall", result["call"], device))

    async def TransferCall(self, node: Node) -> str:
        held, device = self._own_connection(node, "heldCall")
        active, other = self._own_connection(node, "activeCall")
        if other != device:
            raise Refused("operation", "invalidConnectionID")
        result = await self._pbx("transfer", held_call=held, active_call=active, device=device)
        return csta.csta("TransferCallResponse", csta.connection("transferredCall", result["call"], device))

    async def ConferenceCall(self, node: Node) -> str:
        """The held call and the active call of one device become a three-party conference (ECMA-269 17.2.x);
        its monitors, and those of the parties, get ConferencedEvent."""
        held, device = self._own_connection(node, "heldCall")
        active, other = self._own_connection(node, "activeCall")
        if other != device:
            raise Refused("operation", "invalidConnectionID")
        result = await self._pbx("conference", held_call=held, active_call=active, device=device)
        parts = [(c["device"], c["old"]) for c in result["connections"]]
        self.s.server.model.conferenced(held, result["call"], device, result["added"], parts)
        items = [element("connectionListItem", csta.connection("newConnection", result["call"], d),
                         csta.connection("oldConnection", old, d), element("endpoint", text_element("deviceID", d)))
                 for d, old in parts]
        return csta.csta("ConferenceCallResponse", csta.connection("conferenceCall", result["call"], device),
                         element("connections", *items))

    async def SingleStepTransferCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "activeCall")
        result = await self._pbx("single_step_transfer", call=call, device=device,
                                 destination=node.value("transferredTo"))
        return csta.csta("SingleStepTransferCallResponse", csta.connection("transferredCall", result["call"], device))

    async def DeflectCall(self, node: Node) -> str:
        call, device = self._own_connection(node, "callToBeDiverted")
        await self._pbx("deflect", call=call, device=device, destination=node.value("newDestination"))
        return csta.csta("DeflectCallResponse")

    async def GenerateDigits(self, node: Node) -> str:
        call, device = self._own_connection(node, "connectionToSendDigits")
        await self._pbx("generate_digits", call=call, device=device, digits=node.value("charactersToSend"))
        return csta.csta("GenerateDigitsResponse")

    # -- device features ------------------------------------------------------------------------------
    async def GetForwarding(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "device"))
        result = await self._pbx("get_forwarding", device=device)
        items = [element("forwardListItem", text_element("forwardingType", name),
                         text_element("forwardStatus", "true" if result.get(kind) else "false"),
                         *((text_element("forwardDN", result[kind]),) if result.get(kind) else ()))
                 for name, kind in FORWARDING.items()]
        return csta.csta("GetForwardingResponse", element("forwardingList", *items))

    async def SetForwarding(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "device"))
        kind = FORWARDING.get(node.value("forwardingType"))
        if kind is None:
            raise Refused("operation", "invalidParameterValue")
        on = node.value("activateForward") == "true"
        await self._pbx("set_forwarding", device=device, kind=kind, to=node.value("forwardDN") if on else "")
        return csta.csta("SetForwardingResponse")

    async def GetDoNotDisturb(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "device"))
        result = await self._pbx("get_dnd", device=device)
        return csta.csta("GetDoNotDisturbResponse", text_element("doNotDisturbOn", str(result["dnd"]).lower()))

    async def SetDoNotDisturb(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "device"))
        await self._pbx("set_dnd", device=device, on=node.value("doNotDisturbOn") == "true")
        return csta.csta("SetDoNotDisturbResponse")

    # -- ACD agents -----------------------------------------------------------------------------------
    async def SetAgentState(self, node: Node) -> str:
        """loggedOn, loggedOff, ready, notReady (a reason in extensions/privateData/private); workingAfterCall is the
        PBX's own (after a queue call, for the queue's wrap-up time)."""
        device = self._scoped(_device_of(node, "device"))
        state = REQUESTED.get(node.value("requestedAgentState"))
        if state is None:
            raise Refused("operation", "invalidParameterValue")
        await self._pbx("set_agent_state", device=device, state=state, reason=csta.private_text(node)[:40])
        return csta.csta("SetAgentStateResponse")

    async def GetAgentState(self, node: Node) -> str:
        device = self._scoped(_device_of(node, "device"))
        result = await self._pbx("agent_state", device=device)
        state = agent_state(result["status"])
        items = [element("agentStateEntry", text_element("agentID", device),
                         text_element("loggedOnState", "false" if state == "agentNull" else "true"),
                         element("agentInfo", *(element("agentInfoItem", text_element("acdGroup", q),
                                                        text_element("agentState", state))
                                                for q in result.get("queues") or ())))]
        return csta.csta("GetAgentStateResponse", element("agentStateList", *items))

    async def GetSwitchingFunctionDevices(self, node: Node) -> str:
        ref = self.s.next_ref()
        devices = [d for d in sorted(self.s.server.model.extensions) if self.s.allowed(d)]
        items = [element("deviceListItem", text_element("deviceID", d), text_element("deviceCategory", "station"))
                 for d in devices]
        self.s.server.loop.call_soon(self.s.send_event, csta.csta(  # after the response
            "SwitchingFunctionDevices", text_element("serviceCrossRefID", ref),
                                    text_element("segmentID", 1), text_element("lastSegment", "true"),
                                    element("deviceList", *items)))
        return csta.csta("GetSwitchingFunctionDevicesResponse", text_element("serviceCrossRefID", ref))

    async def SystemStatus(self, node: Node) -> str:
        return csta.csta("SystemStatusResponse")
