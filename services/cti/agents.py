"""ACD agents and queues as CTI sees them, from the PBX's bus events (pbx.agent: an agent's state,
retained; pbx.queued: a caller's turn in a queue; services/pbx/events.py): the ECMA-269 agent state
of each agent, the CSTA events a change means (AgentLoggedOn, AgentReady, AgentNotReady, AgentBusy,
AgentWorkingAfterCall, AgentLoggedOff; Queued, and Established / ConnectionCleared for the queue
device when an agent answers or the caller leaves), and their JSON API form."""
from __future__ import annotations

from collections.abc import Callable

from . import csta
from .xmlsafe import element, text_element

AGENT_TOPIC, QUEUED_TOPIC = "pbx.agent", "pbx.queued"
CSTA_STATE = {"logged_out": "agentNull", "available": "agentReady", "ringing": "agentBusy", "on_call": "agentBusy",
              "wrap_up": "agentWorkingAfterCall", "paused": "agentNotReady"}
STATE_EVENT = {"agentReady": ("AgentReadyEvent", "ready"), "agentNotReady": ("AgentNotReadyEvent", "not_ready"),
               "agentBusy": ("AgentBusyEvent", "busy"),
               "agentWorkingAfterCall": ("AgentWorkingAfterCallEvent", "working_after_call")}
REQUESTED = {"loggedOn": "logged_on", "loggedOff": "logged_off", "ready": "ready", "notReady": "not_ready"}
LEFT_CAUSE = {"abandoned": "normalClearing"}  # else: the queue gave up on the caller (timeout, no agents...)
# (device, CSTA event name, its content after monitorCrossRefID, JSON kind, JSON data)
Sink = Callable[[str, str, tuple[str, ...], str, dict], None]


def agent_state(status: str) -> str:
    return CSTA_STATE.get(status, "agentNull")


class AcdView:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.agents: dict[str, dict] = {}  # extension -> the PBX's last pbx.agent data
        self.queues: dict[str, str] = {}  # queue number (its CSTA device) -> queue name
        self.supervisors: dict[str, frozenset[str]] = {}  # queue number -> its supervisors' extensions (the PBX's)

    def seed(self, retained: dict[str, dict]) -> None:
        self.agents.update({ext: data for ext, data in retained.items() if isinstance(data, dict)})

    def on_agent(self, ext: str, data: dict) -> None:
        before = self.agents.get(ext, {})
        old, old_reason = agent_state(before.get("status", "logged_out")), str(before.get("reason") or "")
        self.agents[ext] = data
        new, reason = agent_state(data.get("status", "")), str(data.get("reason") or "")
        base = (element("agentDevice", csta.device_id(ext)), text_element("agentID", ext))
        info = {"status": data.get("status"), "reason": reason, "state": new, "time": data.get("since")}
        if old == "agentNull" and new != "agentNull":
            self.sink(ext, "AgentLoggedOnEvent", base, "agent", {"event": "logged_on", **info})
        if new == "agentNull":
            if old != "agentNull":
                self.sink(ext, "AgentLoggedOffEvent", base, "agent", {"event": "logged_off", **info})
            return
        if new == old and (new != "agentNotReady" or reason == old_reason):
            return
        name, kind = STATE_EVENT[new]
        extra = (csta.extensions(reason),) if new == "agentNotReady" and reason else ()
        self.sink(ext, name, base + extra, "agent", {"event": kind, **info})

    def on_turn(self, data: dict) -> None:
        number, call, caller = str(data.get("number") or ""), str(data["call"]), str(data.get("caller") or "")
        if not number:
            return
        self.queues[number] = str(data.get("queue") or "")
        event, when = data["event"], {"time": data.get("time")}
        json_data = {"event": event, "call": call, "queue": data.get("queue"), "number": number, "caller": caller,
                     "agent": data.get("agent") or "", "outcome": data.get("outcome") or "",
                     "waiting": data.get("waiting", 0), **when}
        if event == "queued":
            content = (csta.connection("queuedConnection", call, number), element("queue", csta.device_id(number)),
                       element("callingDevice", csta.device_id(caller)),
                       element("calledDevice", csta.device_id(number)),
                       element("lastRedirectionDevice", element("notKnown")),
                       text_element("numberQueued", data.get("waiting", 1)),
                       text_element("localConnectionInfo", "queued"),
                       text_element("cause", "enteringDistribution"))
            for device in dict.fromkeys((number, caller)):
                if device:
                    self.sink(device, "QueuedEvent", content, "queue", json_data)
        elif event == "answered":
            agent = str(data.get("agent") or "")
            self.sink(number, "EstablishedEvent", (
                csta.connection("establishedConnection", call, agent),
                element("answeringDevice", csta.device_id(agent)), element("callingDevice", csta.device_id(caller)),
                element("calledDevice", csta.device_id(number)),
                element("lastRedirectionDevice", csta.device_id(number)),
                text_element("localConnectionInfo", "connected"), text_element("cause", "distributed")),
                "queue", json_data)
        elif event == "left":
            self.sink(number, "ConnectionClearedEvent", (
                csta.connection("droppedConnection", call, caller), element("releasingDevice", csta.device_id(caller)),
                text_element("localConnectionInfo", "null"),
                text_element("cause", LEFT_CAUSE.get(data.get("outcome"), "callNotAnswered"))), "queue", json_data)
