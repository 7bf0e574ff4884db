"""Text chat through the PBX service's methods on a running PBX: a chat queue with no agent logged in refuses
a chat (the page offers the call-back); a logged-in agent is offered it, accepts, and both sides write; a
second agent can no longer take it; the agent takes at most MAX_PER_AGENT chats at once; texts are bounded;
a visitor's flood is slowed; the transcript is written at close and listed for the agent; a chat nobody
takes closes itself, and so do idle ones."""
from __future__ import annotations

import sqlite3
import time

from services.pbx import acd as acd_pkg
from services.pbx.acd import chat

from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config


def _cfg():
    queues = [{"number": "600", "name": "sales", "members": [{"agent": "201"}, {"agent": "202"}], "chat": True,
               "strategy": "ring_all"},
              {"number": "601", "name": "phone", "members": [{"agent": "202"}]}]
    return config([ALICE, BOB], queues=queues)


def test_chat_offer_accept_exchange_limits_and_transcript(tmp_path, monkeypatch):
    with PbxRunner(tmp_path / "box", _cfg()) as pbx:
        svc = pbx.svc
        assert svc.acd_chat_start("phone", "Ann", "", "hello")["reason"] == "queue"
        assert svc.acd_chat_start("sales", "Ann", "", "hello")["reason"] == "no_agent"  # nobody logged in
        assert svc.acd_agent_action("202", "login")["status"] == "available"
        assert svc.acd_chat_start("sales", "Ann", "ann", "hello")["reason"] == "email"
        assert svc.acd_chat_start("sales", "Ann", "", " \n ")["reason"] == "text"
        started = svc.acd_chat_start("sales", "Ann\x00<b>", "ann@example.org", "Hello <script>")
        token, cid = started["token"], started["id"]
        assert len(token) >= 32
        offered = svc.acd_chat_agent("202")["offered"]
        assert [(c["id"], c["name"], c["messages"][0]["text"]) for c in offered] == [(cid, "Ann <b>",
                                                                                     "Hello <script>")]
        assert svc.acd_chat_agent("201")["offered"] == []  # logged out: not offered
        assert svc.acd_chat_act("202", "reply", cid, "x")["reason"] == "gone"  # accept first
        assert svc.acd_chat_act("202", "accept", cid)["status"] == "open"
        assert svc.acd_agent_action("201", "login")["status"] == "available"
        assert svc.acd_chat_act("201", "accept", cid)["reason"] == "taken"
        assert svc.acd_chat_act("202", "reply", cid, "y" * 5000)["status"] == "open"
        view = svc.acd_chat_visitor(token, 1)
        assert view["state"] == "open" and view["agent_name"] == "Bob Durand"
        assert [(m["who"], len(m["text"])) for m in view["messages"]] == [("agent", chat.TEXT_MAX)]
        assert svc.acd_chat_visitor("not-a-token")["reason"] == "gone"
        said = [svc.acd_chat_say(token, f"m{n}") for n in range(chat.BURST + 1)]
        assert "count" in said[0] and said[-1]["reason"] == "too_fast"  # the first message counts in the burst
        others = [svc.acd_chat_start("sales", "V", "", "hi")["id"] for _ in range(chat.MAX_PER_AGENT)]
        for other in others[:2]:  # ring all: each offered to both agents once the one before is taken
            assert {c["id"] for c in svc.acd_chat_agent("201")["offered"]} == {other}
            assert svc.acd_chat_act("202", "accept", other)["status"] == "open"
        assert svc.acd_chat_act("202", "accept", others[2])["reason"] == "limit"  # 3 open already
        assert [c["id"] for c in svc.acd_chat_agent("202")["offered"]] == []
        assert svc.acd_chat_act("202", "close", cid)["status"] == "closed"
        assert svc.acd_chat_say(token, "still there?")["reason"] == "closed"
        assert svc.acd_chat_visitor(token)["closed_by"] == "agent"
        rows = sqlite3.connect(pbx.svc.core.bindings_path.with_name("chat.sqlite")).execute(
            "SELECT name, email, agent, messages FROM transcript").fetchall()
        assert len(rows) == 1 and rows[0][:3] == ("Ann <b>", "ann@example.org", "202")
        assert "Hello <script>" in rows[0][3] and "m0" in rows[0][3]
        monkeypatch.setattr(chat, "WAIT_MAX", 0.0)
        desk = pbx.sync(lambda: chat.desk(acd_pkg.existing(pbx.svc.core)))
        assert svc.acd_chat_agent("201")["offered"] == []  # the one nobody took closed itself
        assert desk.chats[others[2]].closed_by == "unanswered"
        monkeypatch.setattr(chat, "IDLE_MAX", 0.0)
        assert svc.acd_chat_agent("202")["open"] == []  # nobody wrote: closed
        assert [desk.chats[n].closed_by for n in others[:2]] == ["idle", "idle"]
        assert [t["closed_by"] for t in svc.acd_chat_transcripts("202")] == ["idle", "idle", "agent"]
        svc.acd_chat_agent("202")
        assert desk.chats == {}  # closed chats forgotten after the idle time too


def test_a_transcript_file_from_before_gets_the_answer_time_column(tmp_path):
    path, now = tmp_path / "chat.sqlite", time.time()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE transcript (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, agent TEXT, name TEXT,"
                   " email TEXT, started REAL, ended REAL, closed_by TEXT, messages TEXT)")
        db.execute("INSERT INTO transcript (queue, agent, started, ended, closed_by, messages) VALUES"
                   " ('sales', '202', ?, ?, 'agent', '[]')", (now, now + 10))
    store = chat.TranscriptStore(path)
    later = chat.Chat(2, "t", "sales", "Ann", "", state="open", agent="201", started=now + 20, answered=now + 22)
    later.closed_by = "visitor"
    store.write(later)
    rows = store.rows(now, now + 100)
    assert [(r["agent"], r["answered"]) for r in rows] == [("202", None), ("201", now + 22)]
    from services.pbx.acd.store import chat_report
    [sales] = chat_report(rows, "queue")
    assert (sales["offered"], sales["answered"], sales["abandoned"], sales["wait"]) == (2, 2, 0, 2.0)
