"""Run the real PBX service in its own process for the benchmark (so it gets its own CPU core).

    python -m bench.pbx_server <data_dir> <config.json>

Prints one JSON line {"port": <sip port>} once listening, then serves until stdin closes. Each line
"status" on stdin is answered with one JSON line: the service's status figures; "relay" with the RTP
packets its relay received and forwarded for the active calls. BENCH_PBX_PROFILE=<file> profiles it.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from appliance import gcpolicy, schema
from appliance.context import Context
from services.pbx import SERVICE


def relay_totals(calls: list[dict]) -> dict:
    """RTP packets the relay received from the parties and forwarded, summed over the active calls."""
    totals = {"calls": len(calls), "received": 0, "forwarded": 0}
    for call in calls:
        for stats in (call.get("relay") or {}).values():
            totals["received"] += stats.get("packets", 0)
            totals["forwarded"] += stats.get("forwarded", 0)
    return totals


async def serve(data_dir: str, config_path: str) -> None:
    config = schema.parse(json.loads(Path(config_path).read_text()))
    svc = SERVICE(Context(Path(data_dir), lab=True))
    await svc.start(config)
    gcpolicy.tune_for_serving()  # as `officebox run` does
    print(json.dumps({"port": svc.sip_port}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if line.strip() == "status":
                status = svc.status()
                print(json.dumps({"health": status.health, "figures": status.figures}, default=str), flush=True)
            elif line.strip() == "relay":
                print(json.dumps(relay_totals(svc.active_calls())), flush=True)
    finally:
        await svc.stop()


def main() -> None:
    """With BENCH_PBX_PROFILE=<file>, the event loop thread is profiled (cProfile stats written there)."""
    profile_to = os.environ.get("BENCH_PBX_PROFILE")
    if not profile_to:
        asyncio.run(serve(sys.argv[1], sys.argv[2]))
        return
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(serve(sys.argv[1], sys.argv[2]))
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


if __name__ == "__main__":
    main()
