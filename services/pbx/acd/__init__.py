"""Call centre (ACD): queues (`queue:<name>`, pbx.queues, dialled by their number too), agents and their
state, the records behind the wallboard and the reports.

- decide.py: the one decision point (which caller to which free agent), pure;
- queue.py: the caller's side (music, announcements, call-back offer, overflow), an application;
- agents.py: the agents' feature codes (log in / out / pause with a reason / resume);
- callback.py: call-back requests from the public web page;
- monitor.py: supervisors' silent monitor, whisper and barge-in;
- store.py: agent state changes and one row per caller's turn in SQLite (acd.sqlite), and the reports.

Agent state is runtime state, not configuration: every agent starts logged out when the PBX starts.
Each change is recorded with its time and published on the bus (AGENT_TOPIC `pbx.agent`, key the
extension, retained); each queue's waiting callers too (QUEUE_TOPIC `pbx.queue`, key the queue's name).
Everything here runs on the PBX's loop; snapshot() and the agent actions are safe from other threads.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..calls import Call
from ..config import CallQueue
from ..loopcall import call_on
from ..percore import PerCore
from . import decide
from .store import AcdStore, QueueCall

log = logging.getLogger("officebox.pbx.acd")
AGENT_TOPIC = "pbx.agent"
QUEUE_TOPIC = "pbx.queue"
STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused")
LOGGED_IN = ("available", "ringing", "on_call", "wrap_up", "paused")
PAUSE_REASONS = {"1": "break", "2": "lunch", "3": "meeting", "4": "training", "5": "paperwork"}
CALLBACK_KEEP = 4 * 3600.0  # seconds a call-back request waits for a free agent at most
RECENT = 200_000  # finished turns kept in memory for the wallboard's "today"


@dataclass
class AgentState:
    extension: str
    status: str = "logged_out"
    reason: str = ""
    since: float = field(default_factory=time.time)
    idle_since: float = field(default_factory=time.monotonic)
    calls: int = 0
    missed: int = 0  # in a row
    wrap_up: asyncio.TimerHandle | None = None
    talk: dict | None = None  # the queue call the agent is on: queue, caller, caller_name, since, leg


@dataclass
class Waiter:
    """A caller's turn in a queue: `channel` while they wait on the line, None once they asked to be
    called back (they keep their place)."""
    id: int
    queue: str
    channel: object | None
    caller: str
    caller_name: str
    authority: str
    record: QueueCall
    web: bool = False  # a web call-back request (callback.py)
    since: float = field(default_factory=time.monotonic)
    serving: bool = False  # agents are being rung for it
    tried: set[str] = field(default_factory=set)
    leg: object | None = None  # the agent's answered leg, for the caller's coroutine to take
    handed: asyncio.Future | None = None  # the caller's coroutine says whether it handed the caller over
    overflow: str = ""  # why the caller must leave the queue: timeout, no_agents
    finished: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    call: str = ""  # the caller's call id once queued on the line (events.py QUEUED_TOPIC)


class Acd:
    def __init__(self, core) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.store = AcdStore(Path(core.bindings_path).with_name("acd.sqlite"))
        self.agents: dict[str, AgentState] = {}
        self.waiting: dict[str, list[Waiter]] = {}
        self.last_order: dict[str, int] = {}
        self.recent: collections.deque[tuple[float, str, str, bool]] = collections.deque(maxlen=RECENT)
        self.answered_recent: collections.deque[tuple[float, str, bool]] = collections.deque(maxlen=RECENT)
        self.decisions = 0
        self._ids = 0
        self._dispatch_soon = False
        self._tasks: set[asyncio.Task] = set()

    # -- configuration ------------------------------------------------------------------------------
    def queue(self, name: str) -> CallQueue | None:
        return next((q for q in self.core.cfg.queues if q.name == name), None)

    def queues_of(self, ext: str) -> list[CallQueue]:
        return [q for q in self.core.cfg.queues if q.member(ext)]

    def agent(self, ext: str) -> AgentState:
        state = self.agents.get(ext)
        if state is None:
            state = self.agents[ext] = AgentState(ext)
        return state

    # -- agent state --------------------------------------------------------------------------------
    def set_state(self, ext: str, status: str, reason: str = "") -> AgentState:
        if status not in STATES:
            raise ValueError(f"unknown agent state {status!r}")
        agent = self.agent(ext)
        if agent.wrap_up is not None and status != "wrap_up":
            agent.wrap_up.cancel()
            agent.wrap_up = None
        if (agent.status, agent.reason) == (status, reason):
            return agent
        if status == "available" and agent.status != "ringing":
            agent.idle_since = time.monotonic()
        if status in ("available", "logged_out") and agent.status in ("logged_out", "paused"):
            agent.missed = 0
        agent.status, agent.reason, agent.since = status, reason, time.time()
        self.store.agent_state(agent.since, ext, status, reason)
        self._publish_agent(agent)
        if status == "logged_out":
            self._check_staffed()
        self.dispatch()
        return agent

    def login(self, ext: str) -> bool:
        """False: the extension is in no queue."""
        if not self.queues_of(ext):
            return False
        if self.agent(ext).status == "logged_out":
            self.set_state(ext, "available")
        return True

    def logout(self, ext: str) -> None:
        if self.agent(ext).status != "logged_out":
            self.set_state(ext, "logged_out")

    def pause(self, ext: str, reason: str = "") -> bool:
        agent = self.agent(ext)
        if agent.status == "logged_out":
            return False
        if agent.status in ("ringing", "on_call"):
            agent.reason = reason or "paused"  # after this call (serve() reads it)
            return True
        self.set_state(ext, "paused", reason or "paused")
        return True

    def resume(self, ext: str) -> bool:
        if self.agent(ext).status not in ("paused", "wrap_up"):
            return False
        self.set_state(ext, "available")
        return True

    def action(self, ext: str, action: str, reason: str = "") -> str:
        """An agent's action from the web (thread-safe): the agent's state after it, or raises ValueError."""
        if not ext or ext not in self.core.users:
            raise ValueError("not an extension")
        if action not in ("login", "logout", "pause", "resume"):
            raise ValueError(f"unknown action {action!r}")

        def run() -> str:
            if action == "login" and not self.login(ext):
                raise ValueError("this extension is an agent of no queue")
            if action == "logout":
                self.logout(ext)
            if action == "pause" and not self.pause(ext, reason[:40]):
                raise ValueError("log in first")
            if action == "resume":
                self.resume(ext)
            return self.agent(ext).status
        return self._on_loop(run)

    def _on_loop(self, fn):
        return call_on(self.loop, fn, 10)

    def _publish_agent(self, agent: AgentState) -> None:
        user = self.core.users.get(agent.extension)
        self.core.events.bus.publish(AGENT_TOPIC, agent.extension, {
            "extension": agent.extension, "name": user.full_name if user else "", "status": agent.status,
            "reason": agent.reason, "since": agent.since, "calls": agent.calls,
            "queues": [q.name for q in self.queues_of(agent.extension)]}, retain=True)

    def _publish_queue(self, name: str) -> None:
        waiting = self.waiting.get(name, [])
        oldest = min((w.record.entered for w in waiting), default=None)
        self.core.events.bus.publish(QUEUE_TOPIC, name, {"queue": name, "waiting": len(waiting),
                                                         "oldest": oldest, **self._chat_figures(name)}, retain=True)

    def _chat_figures(self, name: str) -> dict:
        from .chat import desk
        chats = desk.existing(self)
        return chats.figures(name, time.time()) if chats is not None else {
            "chats_waiting": 0, "chat_longest_wait": 0.0, "chats_active": 0}

    def _publish_turn(self, waiter: Waiter, event: str, agent: str = "", outcome: str = "") -> None:
        if waiter.call:
            self.core.events.queue_turn(waiter.call, event, queue=waiter.queue, number=self.queue_number(waiter.queue),
                                        caller=waiter.caller, agent=agent, outcome=outcome,
                                        waiting=len(self.waiting.get(waiter.queue, [])))

    def _staffed(self, q: CallQueue) -> bool:
        return any(self.agent(m.agent).status in LOGGED_IN for m in q.members)

    def _check_staffed(self) -> None:
        """Callers on the line in a queue nobody is logged in to any more leave for its overflow."""
        for name, waiters in self.waiting.items():
            q = self.queue(name)
            if q is None or not self._staffed(q):
                for w in waiters:
                    if w.channel is not None and not w.serving:
                        w.overflow = "no_agents"
                        w.wake.set()

    # -- callers ------------------------------------------------------------------------------------
    def enter(self, q: CallQueue, channel, priority: int) -> tuple[Waiter, str]:
        """The caller's turn, and "" or why they cannot wait (full, no_agents)."""
        self._ids += 1
        call = channel.call
        record = QueueCall(q.name, call.caller, priority, time.time())
        waiter = Waiter(self._ids, q.name, channel, call.caller, call.caller_name, call.authority, record)
        waiters = self.waiting.setdefault(q.name, [])
        if len(waiters) >= q.max_length:
            return waiter, "full"
        if not self._staffed(q):
            return waiter, "no_agents"
        waiters.append(waiter)
        self._publish_queue(q.name)
        waiter.call = call.id
        self._publish_turn(waiter, "queued")
        self.dispatch()
        return waiter, ""

    def position(self, waiter: Waiter) -> int:
        """1 for the caller served next (priority, then time waited)."""
        ahead = [w for w in self.waiting.get(waiter.queue, []) if w is not waiter and (
            w.record.priority > waiter.record.priority
            or (w.record.priority == waiter.record.priority and w.since < waiter.since))]
        return len(ahead) + 1

    def estimated_wait(self, waiter: Waiter) -> float:
        """Seconds: the callers ahead times the recent average handling time, shared by the logged-in agents."""
        q = self.queue(waiter.queue)
        if q is None:
            return 0.0
        agents = sum(1 for m in q.members if self.agent(m.agent).status in LOGGED_IN) or 1
        talks = [e for t, name, e, _ in list(self.recent)[-50:] if name == waiter.queue and e > 0]
        handling = sum(talks) / len(talks) if talks else 120.0
        return self.position(waiter) * handling / agents

    def leave(self, waiter: Waiter, outcome: str) -> None:
        """The turn is over (the caller left, overflowed, or their call ended): written once."""
        waiters = self.waiting.get(waiter.queue, [])
        if waiter in waiters:
            waiters.remove(waiter)
            self._publish_queue(waiter.queue)
        if waiter.finished:
            return
        waiter.finished = True
        rec = waiter.record
        rec.outcome = outcome
        if rec.answered is None:
            self._publish_turn(waiter, "left", outcome=outcome)
        rec.ended = rec.ended or time.time()
        q = self.queue(waiter.queue)
        rec.on_time = rec.answered is not None and q is not None and rec.answered - rec.entered <= q.service_level
        talk = rec.ended - rec.answered if rec.answered else 0.0
        self.recent.append((rec.ended, rec.queue, talk if outcome in ("answered", "callback") else 0.0,
                            outcome == "abandoned"))
        self.store.queue_call(rec)

    def ask_callback(self, waiter: Waiter) -> None:
        """The caller hangs up and keeps their place: the box calls them back when an agent is free."""
        waiter.channel = None
        waiter.record.callback = True
        self.later(CALLBACK_KEEP, self._callback_expired, waiter)

    def web_callback(self, queue: str, number: str, name: str = "", subject: str = "") -> dict:
        """A visitor's call-back request from the public page (thread-safe): see callback.py."""
        from . import callback
        return self._on_loop(lambda: callback.request(self, queue, number, name, subject))

    def supervise(self, supervisor: str, agent: str, mode: str) -> str:
        """From the wallboard (thread-safe): ring `supervisor`'s phone to join `agent`'s call in `mode`
        (monitor.py ring_supervisor). "" once ringing, else why not: mode, not_allowed, no_call,
        supervised, no_phone."""
        from . import monitor

        def run() -> str:
            why = monitor.refusal(self.core, supervisor, agent, mode)
            if not why and monitor.ringing_for(agent):
                why = "supervised"  # a supervisor's phone is ringing for this call already
            if not why and not self.core.targets_for(supervisor):
                why = "no_phone"
            if not why:
                self.spawn(monitor.ring_supervisor(self.core, supervisor, agent, mode))
            return why
        return self._on_loop(run)

    def _callback_expired(self, waiter: Waiter) -> None:
        if not waiter.finished and not waiter.serving:
            self.leave(waiter, "callback_failed")

    # -- the decision -------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Soon (once per loop turn however often asked): serve what can be served."""
        if not self._dispatch_soon:
            self._dispatch_soon = True
            self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_soon = False
        for q in self.core.cfg.queues:
            while (choice := self.decide_next(q)) is not None:
                waiter, exts = choice
                waiter.serving = True  # before the next decision: this caller and these agents are taken
                for ext in exts:
                    waiter.tried.add(ext)
                    self.set_state(ext, "ringing")
                self.spawn(self.serve(q, waiter, exts))
        from .chat import desk
        chats = desk.existing(self)
        if chats is not None:
            chats.offer()  # an agent's state changed: the chats follow

    def decide_next(self, q: CallQueue) -> tuple[Waiter, list[str]] | None:
        """The next caller of `q` and the agents to ring for them (decide.py on the live state), or None."""
        waiters = [w for w in self.waiting.get(q.name, []) if not w.serving and not w.overflow]
        if not waiters:
            return None
        callers = [decide.Caller(str(w.id), w.record.priority, w.since) for w in waiters]
        choice = decide.decide(q.strategy, callers, self.free_agents(q), self.last_order.get(q.name, -1))
        self.decisions += 1
        if choice is None:
            return None
        caller, agents = choice
        waiter = next(w for w in waiters if str(w.id) == caller.key)
        untried = [a for a in agents if a.extension not in waiter.tried]
        if not untried:  # every free agent was tried for this caller: start again
            waiter.tried.clear()
            untried = agents
        if q.strategy != "ring_all":
            untried = untried[:1]
            self.last_order[q.name] = untried[0].order
        return waiter, [a.extension for a in untried]

    def free_agents(self, q: CallQueue) -> list[decide.Agent]:
        return [decide.Agent(m.agent, self.agent(m.agent).idle_since, self.agent(m.agent).calls, m.skill, i)
                for i, m in enumerate(q.members)
                if self.agent(m.agent).status == "available" and m.agent in self.core.users]

    # -- serving a caller ---------------------------------------------------------------------------
    async def serve(self, q: CallQueue, waiter: Waiter, exts: list[str]) -> None:
        """Ring the agents _dispatch chose for the caller (marked ringing there); connect the first to answer."""
        try:
            leg, ext = await self._ring(q, waiter, exts)
        except Exception:
            log.exception("queue %s: ringing agents failed", q.name)
            leg, ext = None, None
        if leg is None:
            waiter.serving = False
            if waiter.channel is None and not waiter.finished:
                self.later(1.0, self.dispatch)  # a call-back: the next free agent
            self.dispatch()
            return
        if waiter.finished or (waiter.channel is not None and waiter.channel.gone):
            waiter.serving = False
            leg.call.media_down("caller_left")
            self._after_call(q, ext)
            return
        await self._connect(q, waiter, leg, ext)  # the caller stays "serving": no other agent is rung for them

    async def _ring(self, q: CallQueue, waiter: Waiter, exts: list[str]):
        """Ring the agents (all at once for ring_all): the first answered leg and its agent, or (None, None)."""
        rings = {ext: self._originate(ext, waiter, q.agent_timeout) for ext in exts}
        pending = {task: ext for ext, (_call, task) in rings.items()}
        won = (None, None)
        gone = asyncio.ensure_future(self._gone(waiter))
        try:
            while pending and won[0] is None:
                done, _ = await asyncio.wait([*pending, gone], return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    break
                for task in done:
                    ext = pending.pop(task)
                    leg = task.result() if not task.cancelled() and task.exception() is None else None
                    if leg is not None and won[0] is None:
                        won = (leg, ext)
                    elif leg is not None:
                        leg.call.media_down("answered_elsewhere")
                    else:
                        self._missed(q, ext)
        finally:
            gone.cancel()
            for task, ext in pending.items():  # the others stop ringing (or hang up if they answered meanwhile)
                rings[ext][0].cancel_ringing()
                task.add_done_callback(lambda t: t.result() and t.result().call.media_down("answered_elsewhere"))
                self._after_call(q, ext, missed=False)
        if won[0] is None:
            for ext in exts:
                if self.agent(ext).status == "ringing":
                    self._after_call(q, ext, missed=False)
        return won

    async def _gone(self, waiter: Waiter) -> None:
        while not waiter.finished and not (waiter.channel is not None and waiter.channel.gone) \
                and not waiter.overflow:
            await asyncio.sleep(0.2)

    def _originate(self, ext: str, waiter: Waiter, timeout: float) -> tuple[Call, asyncio.Task]:
        """Ring an agent for the box (as PbxCore.originate, keeping the call to cancel its ringing)."""
        core = self.core
        call = Call(core, None, None, caller=waiter.caller, caller_name=waiter.caller_name, dialled=ext,
                    authority="internal", direction="internal")
        core.calls[call.id] = call
        core.counters["calls"] += 1
        give_up = self.loop.call_later(timeout, call.cancel_ringing)
        task = self.loop.create_task(call.originate())
        task.add_done_callback(lambda _t: give_up.cancel())
        return call, task

    def _missed(self, q: CallQueue, ext: str) -> None:
        agent = self.agent(ext)
        agent.missed += 1
        if q.auto_pause_after and agent.missed >= q.auto_pause_after:
            self.set_state(ext, "paused", "missed calls")
        elif agent.status == "ringing":
            self.set_state(ext, "available")

    def _after_call(self, q: CallQueue, ext: str, missed: bool = False, wrap_up: float = 0.0) -> None:
        """An agent's ringing or call is over: wrap-up, a pause asked meanwhile, or available."""
        agent = self.agent(ext)
        if agent.status == "logged_out":
            return
        if agent.status == "paused":
            return
        if agent.reason and agent.status in ("ringing", "on_call"):
            self.set_state(ext, "paused", agent.reason)
        elif wrap_up > 0:
            self.set_state(ext, "wrap_up")
            agent.wrap_up = self.loop.call_later(wrap_up, self._wrapped_up, ext)
        else:
            self.set_state(ext, "available")

    def _wrapped_up(self, ext: str) -> None:
        agent = self.agent(ext)
        agent.wrap_up = None
        if agent.status == "wrap_up":
            self.set_state(ext, "available")

    async def _connect(self, q: CallQueue, waiter: Waiter, leg, ext: str) -> None:
        agent = self.agent(ext)
        agent.calls += 1
        agent.missed = 0
        self.set_state(ext, "on_call", agent.reason)
        rec = waiter.record
        rec.agent = ext
        if waiter.channel is not None:
            rec.answered = time.time()
            waiter.handed = self.loop.create_future()
            waiter.leg = leg  # the caller's coroutine stops its music and hands the caller over
            waiter.wake.set()
            if not await waiter.handed:  # the caller left, or the agent's leg went first
                waiter.leg, waiter.handed, rec.answered, waiter.serving = None, None, None, False
                if not leg.ended and leg.call.state != "ended":
                    leg.call.media_down("caller_left")
                self._after_call(q, ext)
                return
            self.answered_recent.append((rec.answered, q.name, rec.answered - rec.entered <= q.service_level))
            self._publish_turn(waiter, "answered", agent=ext)
            outcome = "answered"
        else:
            outcome = await self._call_back(waiter, leg)
        waiters = self.waiting.get(q.name, [])
        if waiter in waiters:
            waiters.remove(waiter)
            self._publish_queue(q.name)
        agent.talk = {"queue": q.name, "caller": waiter.caller, "caller_name": waiter.caller_name,
                      "since": rec.answered or time.time(), "leg": leg}
        try:
            await self._until_over(leg)
        finally:
            agent.talk = None
        self.leave(waiter, outcome)
        self._after_call(q, ext, wrap_up=q.wrap_up)

    async def _call_back(self, waiter: Waiter, leg) -> str:
        """The agent answered a call-back: the box calls the customer and joins them."""
        customer = await self.core.originate(waiter.caller, caller=self.queue_number(waiter.queue),
                                             caller_name=waiter.caller_name, authority=waiter.authority, timeout=30)
        if customer is None or leg.ended or leg.call.state != "connected":
            if customer is not None:
                customer.call.media_down("callback_failed")
            leg.call.media_down("callback_failed")
            return "callback_failed"
        waiter.record.answered = time.time()
        self.answered_recent.append((waiter.record.answered, waiter.queue, False))
        self.core.bridge(leg, customer)
        return "callback"

    def queue_number(self, name: str) -> str:
        q = self.queue(name)
        return q.number if q else "queue"

    @staticmethod
    async def _until_over(leg) -> None:
        """Until the agent's leg leaves its call (hang-up, or a transfer)."""
        while not leg.ended and leg in leg.call.legs and leg.call.state != "ended":
            try:
                await asyncio.wait_for(leg.call.done.wait(), 1.0)
            except TimeoutError:
                continue

    # -- helpers ------------------------------------------------------------------------------------
    def spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def later(self, seconds: float, fn, *args) -> None:
        self.loop.call_later(seconds, fn, *args)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for agent in self.agents.values():
            if agent.wrap_up is not None:
                agent.wrap_up.cancel()

    # -- figures for the web admin (any thread) -----------------------------------------------------
    def snapshot(self, day_start: float) -> dict:
        now, mono = time.time(), time.monotonic()
        agents = {ext: a for ext, a in list(self.agents.items())}
        answered = [(t, name, on_time) for t, name, on_time in list(self.answered_recent) if t >= day_start]
        recent = [(t, name, abandoned) for t, name, _talk, abandoned in list(self.recent) if t >= day_start]
        queues = []
        for q in list(self.core.cfg.queues):
            waiting = list(self.waiting.get(q.name, []))
            members = [m.agent for m in q.members]
            states = collections.Counter(agents[m].status if m in agents else "logged_out" for m in members)
            done = sum(1 for _t, name, _on in answered if name == q.name)
            abandoned = sum(1 for _t, name, ab in recent if name == q.name and ab)
            on_time = sum(1 for _t, name, on in answered if name == q.name and on)
            concluded = done + abandoned
            queues.append({
                "name": q.name, "number": q.number, "title": q.title or q.name,
                "waiting": sum(1 for w in waiting if w.channel is not None),
                "callbacks_waiting": sum(1 for w in waiting if w.channel is None),
                "longest_wait": round(max((mono - w.since for w in waiting), default=0.0), 1),
                "agents": {s: states.get(s, 0) for s in STATES},
                "answered": done, "abandoned": abandoned,
                "service_level": round(100.0 * on_time / concluded, 1) if concluded else None,
                "service_level_seconds": q.service_level, "chat": q.chat, **self._chat_figures(q.name)})
        users = self.core.users
        return {"time": now, "queues": queues, "decisions": self.decisions, "calls": self._live_calls(agents),
                "agents": [{"extension": ext, "name": users[ext].full_name if ext in users else "",
                            "status": a.status, "reason": a.reason, "since": a.since, "calls": a.calls,
                            "queues": [q.name for q in self.queues_of(ext)]}
                           for ext, a in sorted(agents.items()) if self.queues_of(ext)]}

    def _live_calls(self, agents: dict[str, AgentState]) -> list[dict]:
        """The queue calls agents are on now (the wallboard's rows a supervisor may join)."""
        from .monitor import watched
        users, out = self.core.users, []
        for ext, a in sorted(agents.items()):
            talk = a.talk
            if talk is None:
                continue
            out.append({"agent": ext, "agent_name": users[ext].full_name if ext in users else "",
                        "queue": talk["queue"], "caller": talk["caller"], "caller_name": talk["caller_name"],
                        "since": talk["since"], "supervised": watched(talk["leg"].call.id)})
        return out

    def agent_view(self, ext: str) -> dict:
        a = self.agents.get(ext)
        return {"extension": ext, "status": a.status if a else "logged_out", "reason": a.reason if a else "",
                "since": a.since if a else None, "calls": a.calls if a else 0,
                "queues": [q.name for q in self.queues_of(ext)]}

    def seed(self) -> None:
        """Today's finished turns from the store (a PBX restart keeps the wallboard's figures): in a thread."""
        since = time.time() - 36 * 3600
        for row in self.store.calls(since, time.time() + 1):
            talk = (row["ended"] - row["answered"]) if row["answered"] and row["ended"] else 0.0
            self.recent.append((row["ended"] or row["entered"], row["queue"], talk, row["outcome"] == "abandoned"))
            if row["answered"]:
                self.answered_recent.append((row["answered"], row["queue"], bool(row["on_time"])))


for_core: PerCore[Acd] = PerCore(Acd)
existing = for_core.existing


def _register() -> None:
    from .. import apps
    from . import agents, monitor, queue  # import this package: registered once it is complete
    apps.register("queue", queue.run)
    for name, app in {**agents.APPS, **monitor.APPS}.items():
        apps.register(name, app)


_register()
