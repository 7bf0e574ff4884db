"""Web text chat routed by the ACD: a visitor of the public page (webadmin/blueprints/public.py) starts a chat
in a queue that takes chats (CallQueue.chat); it is offered by the queue's strategy as calls are (decide.py
offer(): ring all, longest idle, fewest, round robin, skills; the highest priority, then the longest
waiting chat first) to the queue's agents who are logged in, not paused, have fewer than MAX_PER_AGENT chats
open and no other chat offered to them now (the "chat skill" is being an agent of such a queue). An offer
not accepted within the queue's agent_timeout passes on to the next agent (the agents not offered it yet
first); for ring_all the first who accepts gets it. For chats, "idle" is since the agent's last chat was
taken or closed, and "fewest" counts the chats taken since the PBX started; a chat offer let pass never
pauses an agent. Either side may close it; a chat nobody accepts within WAIT_MAX seconds, or with no
message for IDLE_MAX seconds, is closed by the box.

The visitor knows their chat by an unguessable token only; the agent by its number, checked against the
agent who holds it. Texts are plain text (the pages escape them), at most TEXT_MAX characters and
MESSAGES_MAX per chat; a visitor sends at most BURST messages per BURST_WINDOW seconds. Closed chats are
written to chat.sqlite (beside acd.sqlite), kept KEEP_DAYS days and at most KEEP_ROWS transcripts.

A visitor who gave an e-mail address and asked for it gets the transcript mailed at close, submitted over
SMTP to the box's mail service as voicemail mails are (voicemail/mailer.py: its target, its submit), only
for a chat an agent took (a visitor alone cannot make the box mail a text of theirs to anybody), once, with
MAIL_TRIES tries a few seconds apart (held in memory: a PBX restart meanwhile drops it; the transcript
stays in chat.sqlite).

Everything here runs on the PBX's loop (Acd._on_loop from other threads).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..percore import PerCore
from . import decide

log = logging.getLogger("officebox.pbx.acd")

MAX_PER_AGENT = 3
TEXT_MAX, NAME_MAX, EMAIL_MAX = 1000, 40, 120
MESSAGES_MAX = 200
CHATS_MAX = 200  # chats open at once in the box; more are refused
WAIT_MAX, IDLE_MAX = 120.0, 900.0  # seconds
BURST, BURST_WINDOW = 5, 5.0
KEEP_DAYS, KEEP_ROWS = 90, 20_000
ELIGIBLE = ("available", "ringing", "on_call", "wrap_up")  # logged in and not paused
EMAIL = re.compile(r"[^@\s<>\"',;()\[\]\\]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")
MAIL_TRIES, MAIL_RETRY = 3, 5.0
MAIL_TEXTS = {"en": ("Your chat with {title}", "The transcript of your chat with {title} on {day}:", "You"),
              "fr": ("Votre discussion avec {title}", "La transcription de votre discussion avec {title} le {day} :",
                     "Vous"),
              "zh": ("您與 {title} 的線上對話", "您於 {day} 與 {title} 線上對話的記錄：", "您")}


def clean(raw: str, limit: int) -> str:
    """Printable text (line breaks kept), at most `limit` characters, stripped."""
    text = "".join(c if c.isprintable() or c == "\n" else " " for c in (raw or "").replace("\r\n", "\n"))
    return text.strip()[:limit]


@dataclass
class Chat:
    id: int
    token: str
    queue: str
    name: str
    email: str
    state: str = "waiting"  # waiting (offered), open (an agent has it), closed
    agent: str = ""
    agent_name: str = ""
    closed_by: str = ""  # visitor, agent, idle, unanswered
    offered_to: set[str] = field(default_factory=set)  # the agents it is offered to now
    offered_at: float = 0.0  # monotonic
    tried: set[str] = field(default_factory=set)  # the agents offered it in this round
    answered: float | None = None  # when an agent accepted it (time.time())
    mail: bool = False  # the visitor asked for the transcript by e-mail
    language: str = "en"
    started: float = field(default_factory=time.time)
    active: float = field(default_factory=time.monotonic)
    messages: list[dict] = field(default_factory=list)
    sent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=BURST))

    def add(self, who: str, text: str) -> None:
        self.messages.append({"n": len(self.messages) + 1, "who": who, "text": text, "time": time.time()})
        self.active = time.monotonic()

    def view(self, after: int = 0) -> dict:
        return {"id": self.id, "queue": self.queue, "name": self.name, "email": self.email, "state": self.state,
                "agent_name": self.agent_name, "closed_by": self.closed_by, "started": self.started,
                "messages": [m for m in self.messages if m["n"] > after], "count": len(self.messages)}


class TranscriptStore:
    """Closed chats, one row each, with their messages as JSON; older than KEEP_DAYS or beyond KEEP_ROWS go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS transcript (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT,"
                       " agent TEXT, name TEXT, email TEXT, started REAL, ended REAL, closed_by TEXT,"
                       " messages TEXT, answered REAL)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(transcript)")}
            if "answered" not in columns:  # a file from before: when an agent accepted the chat (NULL: unknown)
                db.execute("ALTER TABLE transcript ADD COLUMN answered REAL")

    def _db(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=5)

    def write(self, chat: Chat) -> None:
        now = time.time()
        with self.lock, self._db() as db:
            db.execute("INSERT INTO transcript (queue, agent, name, email, started, ended, closed_by, messages,"
                       " answered) VALUES (?,?,?,?,?,?,?,?,?)",
                       (chat.queue, chat.agent, chat.name, chat.email, chat.started, now, chat.closed_by,
                        json.dumps(chat.messages), chat.answered))
            db.execute("DELETE FROM transcript WHERE ended < ?", (now - KEEP_DAYS * 86400,))
            db.execute("DELETE FROM transcript WHERE id <= (SELECT MAX(id) FROM transcript) - ?", (KEEP_ROWS,))

    def rows(self, since: float, until: float, queue: str = "") -> list[dict]:
        """The chats started in [since, until) (closed ones: a chat is written at its close), for the reports
        (store.py chat_report): queue, agent ("" if nobody took it), started, answered, ended, closed_by."""
        sql = ("SELECT queue, agent, started, answered, ended, closed_by FROM transcript"
               " WHERE started >= ? AND started < ?")
        args: tuple = (since, until)
        if queue:
            sql, args = sql + " AND queue = ?", (*args, queue)
        with self.lock, self._db() as db:
            rows = db.execute(sql + " ORDER BY started LIMIT 200000", args).fetchall()
        keys = ("queue", "agent", "started", "answered", "ended", "closed_by")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def recent(self, agent: str = "", limit: int = 20) -> list[dict]:
        sql = "SELECT queue, agent, name, email, started, ended, closed_by, messages FROM transcript"
        args: tuple = ()
        if agent:
            sql, args = sql + " WHERE agent = ?", (agent,)
        with self.lock, self._db() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("queue", "agent", "name", "email", "started", "ended", "closed_by")
        return [{**dict(zip(keys, row[:7], strict=True)), "messages": json.loads(row[7])} for row in rows]


class ChatDesk:
    def __init__(self, acd) -> None:
        self.acd = acd
        self.chats: dict[int, Chat] = {}
        self.by_token: dict[str, Chat] = {}
        self.ids = 0
        self.store = TranscriptStore(Path(acd.core.bindings_path).with_name("chat.sqlite"))
        self.mailed = 0
        self.last_order: dict[str, int] = {}  # queue -> member position offered last (round robin)
        self.taken: collections.Counter[str] = collections.Counter()  # agent -> chats accepted
        self.idle: dict[str, float] = {}  # agent -> monotonic time their last chat was taken or closed

    # -- who may take chats ------------------------------------------------------------------------
    def _load(self, ext: str) -> int:
        return sum(1 for c in self.chats.values() if c.state == "open" and c.agent == ext)

    def can_take(self, ext: str, queue: str) -> bool:
        q = self.acd.queue(queue)
        return (q is not None and q.chat and q.member(ext) and self.acd.agent(ext).status in ELIGIBLE
                and self._load(ext) < MAX_PER_AGENT)

    def _staffed(self, q) -> bool:
        return any(self.can_take(m.agent, q.name) for m in q.members)

    def figures(self, queue: str, now: float) -> dict:
        """The wallboard's chat tiles of a queue (any thread): chats waiting for an agent, the longest of their
        waits (seconds), chats an agent has open."""
        chats = [c for c in list(self.chats.values()) if c.queue == queue]
        waiting = [c.started for c in chats if c.state == "waiting"]
        longest = round(max((now - t for t in waiting), default=0.0), 1)
        return {"chats_waiting": len(waiting), "chat_longest_wait": longest,
                "chats_active": sum(1 for c in chats if c.state == "open")}

    def _changed(self, chat: Chat) -> None:
        self.acd._publish_queue(chat.queue)  # the wallboard's live update (pbx.queue)

    # -- offering (the queue's strategy) -----------------------------------------------------------
    def offer(self) -> None:
        """Offer the waiting chats nobody holds an offer of now, queue by queue, by the queue's strategy;
        an offer older than the queue's agent_timeout, or to an agent who cannot take it any more, ends."""
        now = time.monotonic()
        waiting = [c for c in self.chats.values() if c.state == "waiting"]
        for chat in waiting:
            q = self.acd.queue(chat.queue)
            chat.offered_to = {ext for ext in chat.offered_to if self.can_take(ext, chat.queue)}
            if q is None or (chat.offered_to and now - chat.offered_at >= q.agent_timeout):
                chat.offered_to = set()
        for q in self.acd.core.cfg.queues:
            if not q.chat:
                continue
            while True:
                pending = [c for c in waiting if c.queue == q.name and not c.offered_to]
                busy = {ext for c in waiting for ext in c.offered_to}
                free = [decide.Agent(m.agent, self.idle.get(m.agent, self.acd.agent(m.agent).idle_since),
                                     self.taken[m.agent], m.skill, i) for i, m in enumerate(q.members)
                        if m.agent not in busy and self.can_take(m.agent, q.name)]
                choice = decide.offer(q.strategy, [decide.Caller(str(c.id), q.priority, c.started) for c in pending],
                                      free, {str(c.id): c.tried for c in pending}, self.last_order.get(q.name, -1))
                if choice is None:
                    break
                caller, agents, again = choice
                chat = self.chats[int(caller.key)]
                if again:
                    chat.tried.clear()
                if q.strategy != "ring_all":
                    self.last_order[q.name] = agents[0].order
                chat.offered_to = {a.extension for a in agents}
                chat.tried |= chat.offered_to
                chat.offered_at = now
                self.acd.later(q.agent_timeout, self.offer)

    # -- the visitor -------------------------------------------------------------------------------
    def start(self, queue: str, name: str, email: str, text: str, mail: bool = False, language: str = "en") -> dict:
        """{"token", "id"} or {"error", "reason"}: queue, text, no_agent, full."""
        self.sweep()
        q = self.acd.queue(queue)
        if q is None or not q.chat:
            return {"error": "this queue takes no chats", "reason": "queue"}
        text, name, email = clean(text, TEXT_MAX), clean(name, NAME_MAX).replace("\n", " "), clean(email, EMAIL_MAX)
        if not text:
            return {"error": "write a message", "reason": "text"}
        if (email and not EMAIL.fullmatch(email)) or (mail and not email):
            return {"error": "this is not an e-mail address", "reason": "email"}
        if not self._staffed(q):
            return {"error": "no agent is available", "reason": "no_agent"}
        if sum(1 for c in self.chats.values() if c.state != "closed") >= CHATS_MAX:
            return {"error": "too many chats are open", "reason": "full"}
        self.ids += 1
        chat = Chat(self.ids, secrets.token_urlsafe(24), q.name, name or "Visitor", email, mail=bool(mail),
                    language=language[:2] if language[:2] in MAIL_TEXTS else "en")
        chat.add("visitor", text)
        chat.sent.append(time.monotonic())
        self.chats[chat.id], self.by_token[chat.token] = chat, chat
        self._changed(chat)
        self.offer()
        return {"token": chat.token, "id": chat.id}

    def visitor_view(self, token: str, after: int = 0) -> dict | None:
        self.sweep()
        chat = self.by_token.get(token)
        return chat.view(after) if chat else None

    def visitor_say(self, token: str, text: str, close: bool = False) -> dict:
        """{"count"} or {"error", "reason"}: gone, closed, text, too_many, too_fast."""
        self.sweep()
        chat = self.by_token.get(token)
        if chat is None:
            return {"error": "no such chat", "reason": "gone"}
        if chat.state == "closed":
            return {"error": "this chat is closed", "reason": "closed"}
        if close:
            self._close(chat, "visitor")
            return {"count": len(chat.messages)}
        return self._say(chat, "visitor", text)

    def _say(self, chat: Chat, who: str, raw: str) -> dict:
        text = clean(raw, TEXT_MAX)
        if not text:
            return {"error": "write a message", "reason": "text"}
        if len(chat.messages) >= MESSAGES_MAX:
            return {"error": "this chat has too many messages", "reason": "too_many"}
        if who == "visitor":
            now = time.monotonic()
            if len(chat.sent) == BURST and now - chat.sent[0] < BURST_WINDOW:
                return {"error": "too many messages at once", "reason": "too_fast"}
            chat.sent.append(now)
        chat.add(who, text)
        return {"count": len(chat.messages)}

    # -- the agent ---------------------------------------------------------------------------------
    def agent_view(self, ext: str) -> dict:
        """{"offered": chats waiting in queues the agent may take now, "open": the agent's chats}."""
        self.sweep()
        offered = [c.view() for c in self.chats.values() if c.state == "waiting" and ext in c.offered_to]
        mine = [c.view() for c in self.chats.values() if c.state == "open" and c.agent == ext]
        return {"offered": offered, "open": mine, "limit": MAX_PER_AGENT}

    def agent_act(self, ext: str, action: str, chat_id: int, text: str = "") -> dict:
        """accept, reply, close: {"status"} or {"error", "reason"}: gone, taken, limit, passed (offered to
        another agent now), text, too_many."""
        self.sweep()
        chat = self.chats.get(chat_id)
        if chat is None or chat.state == "closed":
            return {"error": "this chat is over", "reason": "gone"}
        if action == "accept":
            if chat.state != "waiting":
                return {"error": "another agent took this chat", "reason": "taken"}
            if not self.can_take(ext, chat.queue):
                return {"error": "you cannot take more chats now", "reason": "limit"}
            if ext not in chat.offered_to:
                return {"error": "this chat is offered to another agent", "reason": "passed"}
            user = self.acd.core.users.get(ext)
            chat.state, chat.agent, chat.agent_name = "open", ext, (user.full_name if user else "") or ext
            chat.active = self.idle[ext] = time.monotonic()
            chat.answered, chat.offered_to = time.time(), set()
            self.taken[ext] += 1
            self._changed(chat)
            self.offer()
            return {"status": "open"}
        if chat.state != "open" or chat.agent != ext:
            return {"error": "this chat is not yours", "reason": "gone"}
        if action == "reply":
            out = self._say(chat, "agent", text)
            return out if "error" in out else {"status": "open"}
        if action == "close":
            self._close(chat, "agent")
            return {"status": "closed"}
        raise ValueError(f"unknown chat action {action!r}")

    # -- ends --------------------------------------------------------------------------------------
    def _close(self, chat: Chat, by: str) -> None:
        took = chat.state == "open"
        chat.state, chat.closed_by, chat.offered_to = "closed", by, set()
        chat.active = time.monotonic()
        if took:
            self.idle[chat.agent] = chat.active
            self.offer()  # the agent may take another
        try:
            self.store.write(chat)
        except sqlite3.Error:
            log.exception("chat transcript not written")
        self._changed(chat)
        if took and chat.mail and chat.email:
            self.acd.spawn(self._mail(chat))

    async def _mail(self, chat: Chat) -> None:
        from ..voicemail import for_core
        from ..voicemail.mailer import _submit
        for attempt in range(MAIL_TRIES):
            target = for_core(self.acd.core).mailer.target
            if target is None or not target.enabled:
                outcome = "later: the box has no mail service"
            else:
                outcome = await asyncio.to_thread(_submit, target, self._compose(chat, target))
            if outcome is None:
                self.mailed += 1
                return
            if outcome.startswith("refused") or attempt == MAIL_TRIES - 1:
                break
            await asyncio.sleep(MAIL_RETRY * (attempt + 1))
        log.warning("chat %d transcript not mailed: %s", chat.id, outcome)

    def _compose(self, chat: Chat, target) -> EmailMessage:
        q = self.acd.queue(chat.queue)
        title = (q.title if q else "") or chat.queue
        subject, intro, you = MAIL_TEXTS[chat.language]
        try:
            zone = ZoneInfo(target.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        lines = [intro.format(title=title, day=datetime.fromtimestamp(chat.started, zone).strftime("%Y-%m-%d")), ""]
        for m in chat.messages:
            who = you if m["who"] == "visitor" else chat.agent_name
            lines.append(f"[{datetime.fromtimestamp(m['time'], zone).strftime('%H:%M')}] {who}: {m['text']}")
        mail = EmailMessage()
        mail["From"] = formataddr((title, f"chat@{target.domain}"))
        mail["To"] = formataddr((chat.name, chat.email))
        mail["Subject"] = subject.format(title=title)
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def sweep(self) -> None:
        """Close chats nobody took or nobody wrote in; forget closed ones after IDLE_MAX (their page says so)."""
        now = time.monotonic()
        for chat in list(self.chats.values()):
            if chat.state == "waiting" and now - chat.active > WAIT_MAX:
                self._close(chat, "unanswered")
            elif chat.state == "open" and now - chat.active > IDLE_MAX:
                self._close(chat, "idle")
            elif chat.state == "closed" and now - chat.active > IDLE_MAX:
                del self.chats[chat.id]
                self.by_token.pop(chat.token, None)
        self.offer()


desk: PerCore[ChatDesk] = PerCore(ChatDesk)
