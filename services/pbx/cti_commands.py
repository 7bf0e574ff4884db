"""Call control over the appliance bus: a generic request/response API that another process (the CTI
server, a web app's back end) uses to drive calls. The PBX knows nothing of who asks.

    request   topic pbx.command.<service>  key = request id  data = {"op", "args": {...}, "by": who asks}
    answer    topic pbx.reply.<service>    key = request id  data = {"ok", "result": {...}, "error", "code"}

<service> is the asking service: across processes the bus hub lets only that service's process publish
on its pbx.command topic (appliance/bus.py ORIGIN_PREFIXES), and only the services in REQUESTERS are
served, so another service's process (DNS, DHCP...) cannot drive calls or change forwarding.

`code` names the kind of failure: "device" (unknown extension), "call" (no such call), "connection" (the
device is not in that call), "state" (not possible in the call's state), "value" (a bad argument),
"unsupported" (the phone or the box cannot do it), "busy" (too many requests), "failed".

Operations (args): make_call (device, destination, auto_answer) -> {"call"}: the box rings the device
first (with auto-answer headers), then the destination, and joins them; clear_connection (call, device);
clear_call (call); hold / retrieve (call, device): the other party hears the holder's music on hold;
consultation (call, device, destination) -> {"call"}: hold, then a new call of the device;
transfer (held_call, active_call, device): the device leaves, its two partners talk; conference (held_call,
active_call, device) -> {"call", "added", "connections": [{"device", "old"}]}: the three talk; single_step_transfer
and deflect (call, device, destination); generate_digits (call, device, digits): SIP INFO to the others;
devices () -> {"devices": [{"device", "name", "contacts"}]}; get_forwarding / get_dnd (device);
set_forwarding (device, kind: always|busy|no_answer, to) and set_dnd (device, on), through the
configuration change path (changes.py); answer (call, device): the device's ringing phone is sent a
NOTIFY Event: talk and answers by itself, or "unsupported" with the phone's refusal (it rings on);
call_log (device, limit) -> {"calls": [call records, newest first]};
agent_state (device) -> the ACD agent's {"status", "reason", "queues"} (acd/__init__.py STATES);
set_agent_state (device, state: logged_on|logged_off|ready|not_ready, reason) -> the same, after the
change (as the agent page and the feature codes do it: the ACD publishes pbx.agent); queues () ->
{"queues": [{"name", "number", "supervisors"}]}."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from appliance.bus import Event

from .config import ExtensionSettings
from .holdmusic import HoldMusic

if TYPE_CHECKING:
    from .calls import Call
    from .core import PbxCore
    from .leg import Leg

log = logging.getLogger("officebox.pbx.commands")
COMMAND_TOPIC = "pbx.command."  # + the asking service
RESULT_TOPIC = "pbx.reply."
REQUESTERS = frozenset({"cti"})  # the services that may drive calls
MAX_PENDING = 200  # commands running at once; more are answered "busy"
AUTO_ANSWER = {"Call-Info": "<sip:box>;answer-after=0", "Alert-Info": "<http://127.0.0.1>;info=alert-autoanswer"}
NUMBER = re.compile(r"^[0-9*#+]{1,32}$")
DIGITS = re.compile(r"^[0-9*#A-D]{1,32}$")
CALL_LOG_FIELDS = ("call_id", "direction", "caller", "caller_name", "dialled", "callee", "start", "answer", "end",
                   "billsec", "disposition", "transferred_to")
FORWARD_FIELDS = {"always": "forward_always", "busy": "forward_busy", "no_answer": "forward_no_answer"}
ANSWER_WAIT = 5.0  # seconds a phone that took the talk event has to send its 200 OK
TALK_TIMEOUT = 4.0  # seconds for the phone's response to the NOTIFY
AGENT_ACTIONS = {"logged_on": "login", "logged_off": "logout", "not_ready": "pause", "ready": "resume"}


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CommandHandler:
    """Serves pbx.command for `core` on its loop, from whichever thread the bus calls back on."""

    def __init__(self, core: "PbxCore") -> None:
        self.core = core
        self.bus = core.events.bus
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task] = set()
        self.off = self.bus.subscribe(COMMAND_TOPIC, self._received)

    def close(self) -> None:
        self.off()
        for task in list(self.tasks):
            task.cancel()

    def _received(self, event: Event) -> None:
        service = event.topic[len(COMMAND_TOPIC):]
        if service in REQUESTERS and event.data is not None:
            self.loop.call_soon_threadsafe(self._start, service, event.key, event.data)

    def _start(self, service: str, request_id: str, data: dict) -> None:
        if len(self.tasks) >= MAX_PENDING:
            self._answer(service, request_id, CommandError("busy", "too many call control requests at once"))
            return
        task = self.loop.create_task(self._run(service, request_id, data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, service: str, request_id: str, data: dict) -> None:
        op, args = data.get("op"), data.get("args")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) and op.isidentifier() else None
        try:
            if handler is None or not isinstance(args, dict):
                raise CommandError("unsupported", f"unknown operation {op!r}")
            result = await handler(**args)
        except CommandError as exc:
            self._answer(service, request_id, exc)
        except TypeError as exc:
            self._answer(service, request_id, CommandError("value", f"bad arguments for {op}: {exc}"))
        except Exception as exc:  # never leaves a requester waiting
            log.exception("call control %s failed", op)
            self._answer(service, request_id, CommandError("failed", str(exc) or type(exc).__name__))
        else:
            self.bus.publish(RESULT_TOPIC + service, request_id,
                             {"ok": True, "result": result or {}, "error": "", "code": ""})

    def _answer(self, service: str, request_id: str, exc: CommandError) -> None:
        self.bus.publish(RESULT_TOPIC + service, request_id,
                         {"ok": False, "result": {}, "error": str(exc), "code": exc.code})

    # -- lookups ----------------------------------------------------------------------------------
    def _device(self, device) -> str:
        if not isinstance(device, str) or device not in self.core.users:
            raise CommandError("device", f"{device!r} is not an extension")
        return device

    def _call(self, call_id) -> "Call":
        call = self.core.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.state == "ended":
            raise CommandError("call", f"no call {call_id!r}")
        return call

    def _party(self, call: "Call", device: str) -> "Leg":
        leg = next((p for p in call.legs if p.extension == device), None)
        if leg is None:
            raise CommandError("connection", f"{device} is not in call {call.id}")
        return leg

    def _connected(self, call: "Call", device: str) -> tuple["Leg", "Leg"]:
        leg = self._party(call, device)
        other = call.other(leg)
        if call.state != "connected" or other is None:
            raise CommandError("state", f"call {call.id} is not connected")
        if leg.kind != "sip" or other.kind != "sip":
            raise CommandError("unsupported", "a call with a voice application cannot be driven")
        return leg, other

    @staticmethod
    def _number(value) -> str:
        if not isinstance(value, str) or not NUMBER.match(value):
            raise CommandError("value", f"{value!r} is not a number to dial")
        return value

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- operations -------------------------------------------------------------------------------
    async def op_devices(self) -> dict:
        contacts: dict[str, list[str]] = {}
        for binding in self.core.location.snapshot():
            contacts.setdefault(binding["extension"], []).append(binding["contact"])
        return {"devices": [{"device": ext, "name": user.full_name, "contacts": contacts.get(ext, [])}
                            for ext, user in sorted(self.core.users.items())]}

    async def op_make_call(self, device, destination, auto_answer: bool = True) -> dict:
        device, destination = self._device(device), self._number(destination)
        if not self.core.targets_for(device):
            raise CommandError("state", f"{device} has no registered phone")
        started: asyncio.Future = self.loop.create_future()
        self._spawn(self._make_call(device, destination, bool(auto_answer), started))
        return {"call": await started}

    async def _make_call(self, device: str, destination: str, auto_answer: bool, started: asyncio.Future) -> None:
        core = self.core
        user = core.users[device]
        try:
            own = await core.originate(device, caller=destination, headers=AUTO_ANSWER if auto_answer else None,
                                       authority=core.permission_of_extension(device),
                                       started=lambda call: started.set_result(call.id))
            if own is None:
                return
            far = await core.originate(destination, caller=device, caller_name=user.full_name,
                                       authority=core.permission_of_extension(device))
            if far is None or own.ended or own.call.state != "connected":
                if far is not None:
                    far.bye()
                    far.call.hangup(far)
                if not own.ended:
                    own.bye()
                    own.call.hangup(own)
                return
            core.bridge(own, far)
        finally:
            if not started.done():
                started.set_exception(CommandError("failed", "the call could not be started"))

    async def op_answer(self, call, device) -> dict:
        """Remote answer of the device's ringing phone: a NOTIFY `Event: talk` in the early dialog of each of its
        ringing INVITEs (the BroadSoft remote-control event that Polycom, Yealink, Snom, Grandstream... honour
        when allowed), then the phone's own 200 OK answers the call. A phone that refuses it (baresip) or does
        not answer within ANSWER_WAIT keeps ringing, and the reason comes back ("unsupported")."""
        c, device = self._call(call), self._device(device)
        if any(p.extension == device for p in c.legs):
            raise CommandError("state", f"{device} is connected in call {c.id} already")
        ringing = [leg for leg in list(self.core.dialogs.values()) if leg.call is c and leg.extension == device
                   and leg.alerted and not leg.confirmed and not leg.abandoned and not leg.ended
                   and getattr(leg, "early_tag", "")]
        if c.state != "setup" or not ringing:
            raise CommandError("state", f"no phone of {device} is ringing for call {c.id}")
        statuses = await asyncio.gather(*(self._talk(leg) for leg in ringing))
        if not any(200 <= s < 300 for s in statuses):
            raise CommandError("unsupported", f"the phone of {device} cannot be answered from here: it refused the "
                                              f"remote answer (NOTIFY Event: talk: {statuses[0]}); it rings on")
        deadline = self.loop.time() + ANSWER_WAIT
        while self.loop.time() < deadline and c.state == "setup":
            await asyncio.sleep(0.05)
        if not any(p.extension == device for p in c.legs):
            raise CommandError("unsupported", f"the phone of {device} took the remote answer but did not go "
                                              "off-hook; it rings on")
        return {}

    async def _talk(self, leg: "Leg") -> int:
        req = leg.new_request("NOTIFY")
        if not leg.remote.params.get("tag"):
            req.set("To", f"{leg.remote};tag={leg.early_tag}")  # the early dialog of its 180
        req.add("Event", "talk")
        req.add("Subscription-State", "active")
        try:
            resp = await asyncio.wait_for(self.core.stack.request(req, leg.flow, TALK_TIMEOUT), TALK_TIMEOUT + 1)
        except TimeoutError:
            return 408
        return resp.status

    async def op_call_log(self, device, limit=20) -> dict:
        device = self._device(device)
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            raise CommandError("value", "limit: 1 to 200 records")
        rows = await asyncio.to_thread(self.core.cdr.query, party=device, limit=limit)
        return {"calls": [{k: r.get(k) for k in CALL_LOG_FIELDS} for r in rows]}

    async def op_clear_connection(self, call, device) -> dict:
        c = self._call(call)
        leg = self._party(c, self._device(device))
        if c.state == "connected" and leg.kind == "sip":
            leg.bye()
            c.hangup(leg)
        else:
            c.media_down("cleared")
        return {}

    async def op_clear_call(self, call) -> dict:
        self._call(call).media_down("cleared")
        return {}

    async def op_hold(self, call, device) -> dict:
        c = self._call(call)
        leg, other = self._connected(c, self._device(device))
        if c.hold_music is not None or other.side is None:
            raise CommandError("state", f"call {c.id} is held already")
        c.hold_music = HoldMusic(c, leg, other)
        c.announce("held")
        return {}

    async def op_retrieve(self, call, device) -> dict:
        c = self._call(call)
        leg, _ = self._connected(c, self._device(device))
        music = c.hold_music
        if music is None or music.holder is not leg:
            raise CommandError("state", f"{device} does not hold call {c.id}")
        music.stop()
        c.hold_music = None
        c.announce("retrieved")
        return {}

    async def op_consultation(self, call, device, destination) -> dict:
        c = self._call(call)
        leg, _ = self._connected(c, self._device(device))
        if c.hold_music is None:
            await self.op_hold(call, device)
        elif c.hold_music.holder is not leg:
            raise CommandError("state", f"call {c.id} is held by its other party")
        return await self.op_make_call(device, destination)

    def _held_and_active(self, held_call, active_call, device):
        """The two calls of a transfer or conference and the device's (own leg, other party) in each."""
        device = self._device(device)
        first, second = self._call(held_call), self._call(active_call)
        if first is second:
            raise CommandError("value", "the held and the active call are the same call")
        return first, second, self._connected(first, device), self._connected(second, device)

    async def op_transfer(self, held_call, active_call, device) -> dict:
        first, second, (mine1, theirs1), (mine2, theirs2) = self._held_and_active(held_call, active_call, device)
        for c in (first, second):
            if c.hold_music is not None:
                c.hold_music.stop(relink=False)
                c.hold_music = None
        self._leave(first, mine1, theirs1)
        self._leave(second, mine2, theirs2)
        self.core.bridge(theirs2, theirs1)
        second.announce("transferred")
        return {"call": second.id}

    async def op_conference(self, held_call, active_call, device) -> dict:
        """The device's held call and its active (consultation) call become one three-party conference:
        the device leaves the held call and its partner there joins the active call's ad-hoc room
        (features/threeway.py, the mixer the *3 code uses)."""
        from .features import threeway
        first, second, (mine1, theirs1), (mine2, theirs2) = self._held_and_active(held_call, active_call, device)
        if threeway.active(first) or threeway.active(second):
            raise CommandError("state", "a call of a three-party conference already")
        if first.hold_music is None or first.hold_music.holder is not mine1:
            raise CommandError("state", f"{device} does not hold call {first.id}")
        if theirs1.side is None or theirs2.side is None or mine2.side is None:
            raise CommandError("state", "a call without media cannot join a conference")
        for c in (first, second):
            if c.hold_music is not None:
                c.hold_music.stop(relink=False)
                c.hold_music = None
        self._leave(first, mine1, theirs1)
        threeway.conference(second, mine2, theirs2, theirs1)
        first.announce("retrieved")  # no longer held (holders: none)
        return {"call": second.id, "added": theirs1.extension or theirs1.label,
                "connections": [{"device": p.extension or p.label, "old": old.id}
                                for p, old in ((mine2, second), (theirs2, second), (theirs1, first))]}

    def _leave(self, call: "Call", leg: "Leg", partner: "Leg") -> None:
        """`leg` hangs up and leaves `call`, which goes on with `partner` alone (to be joined)."""
        leg.bye()
        call.legs.remove(leg)
        if leg.side is not None:
            leg.side.close()
            leg.side = None
        self.core.events.device(leg.extension, call, "cleared", initiator=leg is call.a, peer=partner.label)

    async def op_single_step_transfer(self, call, device, destination) -> dict:
        c = self._call(call)
        leg, other = self._connected(c, self._device(device))
        if c.transferor is not None or c.renegotiating:
            raise CommandError("state", f"call {c.id} is being changed")
        self._spawn(c.blind_transfer(leg, other, self._number(destination)))
        return {"call": c.id}

    async def op_deflect(self, call, device, destination) -> dict:
        c = self._call(call)
        self._party(c, self._device(device))
        if c.state != "connected":
            raise CommandError("unsupported", "a ringing call cannot be deflected; answer it, then transfer it")
        return await self.op_single_step_transfer(call, device, destination)

    async def op_generate_digits(self, call, device, digits) -> dict:
        c = self._call(call)
        leg, other = self._connected(c, self._device(device))
        if not isinstance(digits, str) or not DIGITS.match(digits):
            raise CommandError("value", f"{digits!r} are not DTMF digits")
        for digit in digits:
            other.send(other.new_request("INFO", f"Signal={digit}\r\nDuration=160\r\n".encode(),
                                         "application/dtmf-relay"))
            await asyncio.sleep(0.2)
        return {}

    # -- call centre agents ---------------------------------------------------------------------------
    def _acd(self):
        from . import acd
        return acd.for_core(self.core)

    async def op_queues(self) -> dict:
        return {"queues": [{"name": q.name, "number": q.number, "supervisors": list(q.supervisors)}
                           for q in self.core.cfg.queues]}

    async def op_agent_state(self, device) -> dict:
        view = self._acd().agent_view(self._device(device))
        return {k: view[k] for k in ("status", "reason", "queues")}

    async def op_set_agent_state(self, device, state, reason="") -> dict:
        device, acd = self._device(device), self._acd()
        if state not in AGENT_ACTIONS or not isinstance(reason, str):
            raise CommandError("value", f"{state!r} is not an agent state (logged_on, logged_off, ready, not_ready)")
        if not acd.queues_of(device):
            raise CommandError("state", f"{device} is an agent of no queue")
        try:
            if state == "ready" and acd.agent(device).status == "logged_out":
                acd.action(device, "login")
            acd.action(device, AGENT_ACTIONS[state], reason or "")
        except ValueError as exc:
            raise CommandError("state", str(exc)) from None
        return await self.op_agent_state(device)

    def _settings(self, device: str) -> ExtensionSettings:
        return self.core.cfg.extensions.get(device) or ExtensionSettings()

    async def op_get_forwarding(self, device) -> dict:
        s = self._settings(self._device(device))
        return {kind: getattr(s, name) or "" for kind, name in FORWARD_FIELDS.items()}

    async def op_get_dnd(self, device) -> dict:
        return {"dnd": self._settings(self._device(device)).dnd}

    async def _change(self, kind: str, data: dict, by: str) -> None:
        change = getattr(self.core, "change_config", None)
        if change is None:
            raise CommandError("unsupported", "this box cannot change its configuration from the PBX")
        error = await change(kind, data, by=by)
        if error:
            raise CommandError("value", error)

    async def op_set_forwarding(self, device, kind, to="") -> dict:
        device = self._device(device)
        if kind not in FORWARD_FIELDS:
            raise CommandError("value", f"{kind!r} is not a kind of forwarding (always, busy, no_answer)")
        if to:
            self._number(to)
        await self._change("call_control.forwarding", {"extension": device, "kind": kind, "to": to or ""}, device)
        return {}

    async def op_set_dnd(self, device, on) -> dict:
        device = self._device(device)
        await self._change("call_control.dnd", {"extension": device, "on": bool(on)}, device)
        return {}


def register_changes() -> None:
    """The configuration changes set_forwarding / set_dnd ask for, checked in the root process."""
    try:
        from . import changes
    except ImportError:  # a tree without the change path: set_* answer "unsupported"
        return

    def extension_of(doc: dict, data: dict) -> dict:
        ext = data.get("extension")
        if not any(u.get("extension") == ext and u.get("enabled", True) for u in doc.get("users", [])):
            raise ValueError(f"{ext!r} is not an extension")
        return doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {})

    @changes.kind("call_control.forwarding")
    def _forwarding(doc: dict, data: dict) -> str:
        settings = extension_of(doc, data)
        kind, to = data.get("kind"), data.get("to") or None
        if kind not in FORWARD_FIELDS or (to is not None and not (isinstance(to, str) and NUMBER.match(to))):
            raise ValueError("forwarding needs a kind (always, busy, no_answer) and a number")
        if to == data["extension"]:
            raise ValueError(f"extension {to} cannot forward to itself")
        settings[FORWARD_FIELDS[kind]] = to
        return f"forwarding ({kind}) of {data['extension']} {'to ' + to if to else 'off'} by call control"

    @changes.kind("call_control.dnd")
    def _dnd(doc: dict, data: dict) -> str:
        settings = extension_of(doc, data)
        settings["dnd"] = bool(data.get("on"))
        return f"do not disturb of {data['extension']} {'on' if settings['dnd'] else 'off'} by call control"
