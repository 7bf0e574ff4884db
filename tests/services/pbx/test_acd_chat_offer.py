"""Chats follow the queue's strategy on a running PBX (services/pbx/acd/chat.py offer(), decide.py): longest
idle offers a chat to one agent, and when it is not taken within the queue's agent_timeout it passes on to the
next; an agent it passed from can no longer accept it; round robin offers successive chats in turn; skills
offer the most skilled free agent, and an agent who logs out with a chat offered passes it on at once."""
from __future__ import annotations

import time

from tests.isolated import until

from .conftest import ALICE, BOB, CAROL
from .pbxrunner import PbxRunner, config

TIMEOUT = 3  # the queue's agent_timeout (its minimum)


def _cfg(strategy: str):
    members = [{"agent": "201", "skill": 1}, {"agent": "202", "skill": 5}, {"agent": "203", "skill": 9}]
    return config([ALICE, BOB, CAROL], queues=[{"number": "600", "name": "sales", "members": members, "chat": True,
                                                "strategy": strategy, "agent_timeout": TIMEOUT}])


def _offered(svc) -> dict[str, list[int]]:
    return {ext: [c["id"] for c in svc.acd_chat_agent(ext)["offered"]] for ext in ("201", "202", "203")}


def test_chats_are_offered_by_the_queue_strategy_and_pass_on(tmp_path):
    with PbxRunner(tmp_path / "box", _cfg("longest_idle")) as pbx:
        svc = pbx.svc
        for ext in ("201", "202", "203"):
            assert svc.acd_agent_action(ext, "login")["status"] == "available"
            time.sleep(0.05)  # 201 idle the longest, then 202
        first = svc.acd_chat_start("sales", "Ann", "", "hello")["id"]
        assert _offered(svc) == {"201": [first], "202": [], "203": []}
        started = time.monotonic()
        assert until(lambda: _offered(svc)["202"] == [first], TIMEOUT + 3)
        assert time.monotonic() - started >= TIMEOUT - 0.5  # the agent's ring timeout first
        assert _offered(svc) == {"201": [], "202": [first], "203": []}
        assert svc.acd_chat_act("201", "accept", first)["reason"] == "passed"
        assert svc.acd_chat_act("202", "accept", first)["status"] == "open"
        second = svc.acd_chat_start("sales", "Bea", "", "hi")["id"]
        assert _offered(svc) == {"201": [second], "202": [], "203": []}  # 202's idle time starts again
        assert svc.acd_chat_act("201", "accept", second)["status"] == "open"

        pbx.reload(_cfg("round_robin"))
        turns = []
        for n in range(3):
            chat_id = svc.acd_chat_start("sales", f"V{n}", "", "hi")["id"]
            [ext] = [ext for ext, ids in _offered(svc).items() if ids == [chat_id]]
            assert svc.acd_chat_act(ext, "accept", chat_id)["status"] == "open"
            turns.append(ext)
        assert turns == ["202", "203", "201"]  # each in turn after 201, the last one offered a chat

        pbx.reload(_cfg("skills"))
        skilled = svc.acd_chat_start("sales", "Vip", "", "hi")["id"]
        assert _offered(svc) == {"201": [], "202": [], "203": [skilled]}  # 203 is the most skilled
        assert svc.acd_agent_action("203", "logout")["status"] == "logged_out"
        assert _offered(svc) == {"201": [], "202": [skilled], "203": []}  # passed on at once
        assert svc.acd_chat_act("202", "accept", skilled)["status"] == "open"
