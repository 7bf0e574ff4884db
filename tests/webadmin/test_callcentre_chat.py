"""Chats on the wallboard and in the call-centre reports, through the Flask client on the runtime's real PBX:
chats started on the public page show as waiting (with their wait) and then open on the wallboard's page and
JSON; after one answered by each agent and one the visitor left before an answer, the reports per queue and
per agent count them (offered, answered, abandoned) with their average wait and handling time."""
from __future__ import annotations

import re
import time

import pytest

from tests.webadmin.test_callcentre import PEOPLE, _password
from tests.webadmin.test_chat import start
from tests.webadmin.test_pbx_pages import _LivePbx, _until, page
from webadmin.blueprints import public


@pytest.fixture
def chat_board(admin_client, runtime, monkeypatch):
    def mutate(doc):
        doc["users"] += [dict(p) for p in PEOPLE]
        _password(doc, "bob", "bob-password-1")
        doc.setdefault("pbx", {})["lab_sip_port"] = 0
        doc["pbx"]["queues"] = [{"number": "600", "name": "sales", "title": "Sales", "strategy": "ring_all",
                                 "members": [{"agent": "201"}, {"agent": "202"}], "chat": True}]
    runtime.engine.update("admin", "chat queue", mutate)
    monkeypatch.setattr(public, "chat_limits", public.RateLimit(3, 600, 100))
    monkeypatch.setattr(public, "MIN_AGE", 0.0)
    return admin_client


def _queue(client) -> dict:
    return client.get("/callcentre/wallboard.json").get_json()["queues"][0]


def _table(html: str, table: str) -> dict[str, list[str]]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", body, re.S)
    return {key: re.findall(r'<td class="num">([^<]*)</td>', cells) for key, cells in rows}


def test_chats_on_the_wallboard_and_in_the_reports(chat_board, runtime, app):
    visitor = app.test_client()
    with _LivePbx(runtime) as live:
        svc = live.svc
        for ext in ("201", "202"):
            assert svc.acd_agent_action(ext, "login")["status"] == "available"
        assert start(visitor, "first", address="192.0.2.1").status_code == 303
        assert _until(lambda: _queue(chat_board)["chats_waiting"] == 1)
        time.sleep(1.2)
        board = page(chat_board, "/callcentre/")  # shown without JavaScript too
        assert 'data-f="chats_waiting">1<' in board and 'data-f="chats_active">0<' in board
        assert _queue(chat_board)["chat_longest_wait"] >= 1.0
        [first] = svc.acd_chat_agent("202")["offered"]
        assert svc.acd_chat_act("202", "accept", first["id"])["status"] == "open"
        assert (_queue(chat_board)["chats_waiting"], _queue(chat_board)["chats_active"]) == (0, 1)
        time.sleep(0.5)
        assert svc.acd_chat_act("202", "close", first["id"])["status"] == "closed"

        left = start(visitor, "second", address="192.0.2.2")
        assert visitor.post(left.headers["Location"], data={"action": "close"}).status_code == 303  # no answer
        third = start(visitor, "third", address="192.0.2.3")
        [offer] = svc.acd_chat_agent("201")["offered"]
        assert svc.acd_chat_act("201", "accept", offer["id"])["status"] == "open"
        assert 'data-f="chats_active">1<' in page(chat_board, "/callcentre/")
        assert visitor.post(third.headers["Location"], data={"action": "close"}).status_code == 303
        assert _queue(chat_board)["chats_active"] == 0

        by_queue = _table(page(chat_board, "/callcentre/reports?by=queue"), "chat-report")
        offered, answered, abandoned, wait, handle = by_queue["sales"]
        assert (offered, answered, abandoned) == ("3", "2", "1")
        assert float(wait) >= 0.6  # the first waited 1.2 s, the third a moment
        assert float(handle) >= 0.2
        by_agent = _table(page(chat_board, "/callcentre/reports?by=agent"), "chat-report")
        assert {k: v[:3] for k, v in by_agent.items()} == {"—": ["1", "0", "1"], "201": ["1", "1", "0"],
                                                           "202": ["1", "1", "0"]}
        assert float(by_agent["202"][3]) >= 1.2 and float(by_agent["202"][4]) >= 0.5
