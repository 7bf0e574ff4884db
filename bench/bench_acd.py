"""Call centre: ACD decision latency with 200 callers waiting and 25 agents (issue 15).

- `decide`: services/pbx/acd/decide.py alone, per strategy (callers of mixed priorities, 5 agents free);
- `live state`: Acd.decide_next on a real Acd object (its waiting callers and agent states, as a PBX
  holds them) for the same numbers: building the candidates from the live state plus the decision.
The full path with SIPp callers (signalling, music, announcements) is not measured here."""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from types import SimpleNamespace

from services.pbx.acd import Acd, Waiter, decide
from services.pbx.acd.store import QueueCall
from services.pbx.config import CallQueue

CALLERS, AGENTS, FREE, ROUNDS = 200, 25, 5, 2000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1e6, cuts[94] * 1e6


def _decide_only(strategy: str, rng: random.Random) -> tuple[float, float]:
    callers = [decide.Caller(str(i), rng.randrange(10), rng.random() * 600) for i in range(CALLERS)]
    agents = [decide.Agent(str(300 + i), rng.random() * 600, rng.randrange(40), rng.randrange(1, 11), i)
              for i in range(AGENTS)]
    samples = []
    for _ in range(ROUNDS):
        free = rng.sample(agents, FREE)
        started = time.perf_counter()
        decide.decide(strategy, callers, free, rng.randrange(AGENTS))
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


async def _live(strategy: str, rng: random.Random, folder: Path) -> tuple[float, float]:
    members = [{"agent": str(300 + i), "skill": rng.randrange(1, 11)} for i in range(AGENTS)]
    q = CallQueue(number="600", name="sales", strategy=strategy, members=members, max_length=1000)
    bus = SimpleNamespace(publish=lambda *a, **k: None)
    core = SimpleNamespace(cfg=SimpleNamespace(queues=[q]), users={m["agent"]: None for m in members},
                           bindings_path=folder / "registrations.sqlite", events=SimpleNamespace(bus=bus))
    acd = Acd(core)
    acd.waiting["sales"] = [Waiter(i, "sales", None, str(i), "", "internal",
                                   QueueCall("sales", str(i), rng.randrange(10), time.time()))
                            for i in range(CALLERS)]
    samples = []
    for _ in range(ROUNDS):
        free = set(rng.sample([m["agent"] for m in members], FREE))
        for m in members:
            acd.agent(m["agent"]).status = "available" if m["agent"] in free else "on_call"
        started = time.perf_counter()
        acd.decide_next(q)
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def run() -> list[dict]:
    rng = random.Random(15)
    rows = []
    for strategy in decide.STRATEGIES:
        p50, p95 = _decide_only(strategy, rng)
        note = f"{CALLERS} callers waiting, {AGENTS} agents ({FREE} free), {ROUNDS} decisions"
        rows += [{"metric": f"decide {strategy} p50", "value": round(p50, 1), "unit": "µs", "note": note},
                 {"metric": f"decide {strategy} p95", "value": round(p95, 1), "unit": "µs", "note": note}]
    with TemporaryDirectory() as tmp:
        for strategy in ("longest_idle", "skills"):
            p50, p95 = asyncio.run(_live(strategy, rng, Path(tmp)))
            note = f"Acd.decide_next on live state: {CALLERS} callers, {AGENTS} agents ({FREE} free)"
            rows += [{"metric": f"live state {strategy} p50", "value": round(p50, 1), "unit": "µs", "note": note},
                     {"metric": f"live state {strategy} p95", "value": round(p95, 1), "unit": "µs", "note": note}]
    return rows


if __name__ == "__main__":
    from bench.__main__ import main
    raise SystemExit(main(["acd"]))
