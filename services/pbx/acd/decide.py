"""The ACD's one decision point, pure (no I/O, no clock of its own): which waiting caller goes to which
free agent(s) of a queue. The media code (queue.py) asks it whenever a caller arrives or an agent frees.

Callers: the highest priority first, then the one waiting longest (smallest `since`). Agents by strategy:
  ring_all      every free agent at once (the first to answer takes the call)
  longest_idle  the agent idle the longest (smallest `idle_since`)
  fewest_calls  the agent who took the fewest calls since the PBX started, then the longest idle
  round_robin   the next agent after the last one offered a call, in membership order
  skills        the highest skill level for this queue, then the longest idle

Chats are offered by the same rules (offer(): the agents not yet offered this chat first, so an offer
that was not taken passes on).
"""
from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("ring_all", "longest_idle", "fewest_calls", "round_robin", "skills")


@dataclass(frozen=True)
class Caller:
    key: str
    priority: int
    since: float


@dataclass(frozen=True)
class Agent:
    extension: str
    idle_since: float
    calls: int = 0
    skill: int = 1
    order: int = 0  # position in the queue's member list


def next_caller(waiting: list[Caller]) -> Caller | None:
    """The highest-priority caller, the longest waiting among equals (ties: the earlier in the list)."""
    best = None
    for caller in waiting:
        if best is None or caller.priority > best.priority or (
                caller.priority == best.priority and caller.since < best.since):
            best = caller
    return best


def pick_agents(strategy: str, free: list[Agent], last_order: int = -1) -> list[Agent]:
    """The agent(s) to ring for the next caller; `last_order`: the member position offered last
    (round robin). Empty when nobody is free."""
    if not free:
        return []
    if strategy == "ring_all":
        return sorted(free, key=lambda a: a.order)
    if strategy == "fewest_calls":
        return [min(free, key=lambda a: (a.calls, a.idle_since, a.order))]
    if strategy == "round_robin":
        after = [a for a in free if a.order > last_order]
        return [min(after or free, key=lambda a: a.order)]
    if strategy == "skills":
        return [min(free, key=lambda a: (-a.skill, a.idle_since, a.order))]
    if strategy == "longest_idle":
        return [min(free, key=lambda a: (a.idle_since, a.order))]
    raise ValueError(f"unknown strategy {strategy!r}")


def decide(strategy: str, waiting: list[Caller], free: list[Agent],
           last_order: int = -1) -> tuple[Caller, list[Agent]] | None:
    """(the caller to serve, the agents to ring for them), or None when no caller or no free agent."""
    if not waiting or not free:
        return None
    caller = next_caller(waiting)
    return caller, pick_agents(strategy, free, last_order)


def offer(strategy: str, waiting: list[Caller], free: list[Agent], tried: dict[str, set[str]],
          last_order: int = -1) -> tuple[Caller, list[Agent], bool] | None:
    """As decide(), choosing among the free agents not yet offered the chosen one (`tried`: key -> the
    extensions offered it already): (caller, agents, again); `again` is True when every free agent was
    offered it already and the round starts over. One agent for every strategy but ring_all."""
    if not waiting or not free:
        return None
    caller = next_caller(waiting)
    seen = tried.get(caller.key, set())
    untried = [a for a in free if a.extension not in seen]
    agents = pick_agents(strategy, untried or free, last_order)
    return caller, agents if strategy == "ring_all" else agents[:1], not untried
