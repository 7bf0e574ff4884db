"""The ACD's decision module (services/pbx/acd/decide.py), pure: every strategy, priorities, ties."""
import pytest

from services.pbx.acd.decide import STRATEGIES, Agent, Caller, decide, next_caller, pick_agents

AGENTS = [Agent("201", idle_since=30.0, calls=4, skill=3, order=0),
          Agent("202", idle_since=10.0, calls=7, skill=8, order=1),
          Agent("203", idle_since=20.0, calls=2, skill=5, order=2)]


def test_the_highest_priority_then_the_longest_waiting_caller_is_next():
    waiting = [Caller("a", 0, 5.0), Caller("b", 3, 9.0), Caller("c", 3, 7.0), Caller("d", 1, 1.0)]
    assert next_caller(waiting).key == "c"
    assert next_caller([Caller("a", 0, 5.0), Caller("d", 0, 1.0)]).key == "d"
    assert next_caller([]) is None


@pytest.mark.parametrize(("strategy", "chosen"), [("longest_idle", ["202"]), ("fewest_calls", ["203"]),
                                                  ("skills", ["202"]), ("ring_all", ["201", "202", "203"]),
                                                  ("round_robin", ["201"])])
def test_each_strategy_picks_its_agent(strategy, chosen):
    assert [a.extension for a in pick_agents(strategy, AGENTS)] == chosen


def test_round_robin_goes_on_after_the_last_one_offered_and_wraps():
    assert [a.extension for a in pick_agents("round_robin", AGENTS, last_order=0)] == ["202"]
    assert [a.extension for a in pick_agents("round_robin", AGENTS, last_order=2)] == ["201"]
    assert [a.extension for a in pick_agents("round_robin", AGENTS[:1] + AGENTS[2:], last_order=0)] == ["203"]


def test_ties_fall_back_to_longest_idle_then_member_order():
    same = [Agent("201", 5.0, 1, 5, 0), Agent("202", 4.0, 1, 5, 1), Agent("203", 4.0, 1, 5, 2)]
    assert [pick_agents(s, same)[0].extension for s in ("skills", "fewest_calls", "longest_idle")] == ["202"] * 3


def test_no_decision_without_a_caller_or_a_free_agent():
    assert decide("skills", [], AGENTS) is None
    assert decide("skills", [Caller("a", 0, 1.0)], []) is None
    caller, agents = decide("skills", [Caller("a", 0, 1.0), Caller("v", 9, 2.0)], AGENTS)
    assert (caller.key, [a.extension for a in agents]) == ("v", ["202"])
    with pytest.raises(ValueError):
        pick_agents("random", AGENTS)
    assert set(STRATEGIES) == {"ring_all", "longest_idle", "fewest_calls", "round_robin", "skills"}


def test_a_chat_offer_passes_on_to_the_agents_not_offered_it_yet_then_starts_over():
    from services.pbx.acd.decide import offer
    chats = [Caller("c1", 0, 5.0), Caller("c2", 0, 3.0)]
    caller, agents, again = offer("longest_idle", chats, AGENTS, {})
    assert (caller.key, [a.extension for a in agents], again) == ("c2", ["202"], False)
    _, agents, again = offer("longest_idle", chats, AGENTS, {"c2": {"202"}})
    assert ([a.extension for a in agents], again) == (["203"], False)  # the next longest idle
    _, agents, again = offer("skills", chats, AGENTS, {"c2": {"202", "203"}})
    assert ([a.extension for a in agents], again) == (["201"], False)
    _, agents, again = offer("skills", chats, AGENTS, {"c2": {"201", "202", "203"}})
    assert ([a.extension for a in agents], again) == (["202"], True)  # everybody was offered it: again
    _, agents, _ = offer("ring_all", chats, AGENTS, {"c2": {"201"}})
    assert [a.extension for a in agents] == ["202", "203"]
    _, agents, _ = offer("round_robin", chats, AGENTS, {}, last_order=1)
    assert [a.extension for a in agents] == ["203"]
    _, agents, _ = offer("fewest_calls", [Caller("v", 9, 9.0), *chats], AGENTS, {"v": {"203"}})
    assert [a.extension for a in agents] == ["201"]
    assert offer("skills", [], AGENTS, {}) is None and offer("skills", chats, [], {}) is None
