"""Garbage collector settings for the long-running appliance process."""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # container allocations between young collections (Python's default: 700)


def tune_for_serving() -> None:
    """Call once everything long-lived exists (services started). Those objects are moved out of the
    collector's sight (gc.freeze) and young collections run every YOUNG_THRESHOLD allocations: with the
    defaults, signalling traffic spends about a fifth of the PBX's CPU in collections that find next to
    nothing (bench_pbx: 410 -> 505 call setups/s). Cycles are still collected, only less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 50, 100)
