"""Run every bench/bench_*.py module's run() -> rows, print a table, write bench/results/.

    python -m bench                 # all modules
    python -m bench pbx dhcp        # only bench_pbx.py and bench_dhcp.py
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import pkgutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COLUMNS = ("area", "metric", "value", "unit", "note")


def discover(only: list[str] | None = None) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if only:
        names = [n for n in names if n.removeprefix("bench_") in only or n in only]
    return names


def _row(area: str, metric: str, value, unit: str = "", note: str = "") -> dict:
    return {"area": area, "metric": metric, "value": value, "unit": unit, "note": note}


def _clean(raw, area: str) -> dict:
    """Validate one row from a module; a broken row becomes an error row instead of a crash."""
    if not isinstance(raw, dict):
        return _row(area, "bad row", math.nan, "", f"not a dict: {raw!r}"[:200])
    row = {k: raw.get(k, "") for k in COLUMNS}
    row["area"] = str(row["area"] or area)
    try:
        row["value"] = float(row["value"])
    except (TypeError, ValueError):
        row["note"] = f"non-numeric value {row['value']!r}; {row['note']}"
        row["value"] = math.nan
    row["metric"], row["unit"], row["note"] = str(row["metric"]), str(row["unit"]), str(row["note"])
    return row


def run_module(name: str) -> tuple[list[dict], float]:
    area = name.removeprefix("bench_")
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        raw = module.run()
        rows = [_clean(r, area) for r in raw] if isinstance(raw, list) else [
            _row(area, "run() failed", math.nan, "", f"run() returned {type(raw).__name__}, not a list")]
    except BaseException as exc:   # a failing benchmark is reported, never aborts the others
        if isinstance(exc, KeyboardInterrupt):
            raise
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        rows = [_row(area, "run() failed", math.nan, "", last[:300])]
        traceback.print_exc(file=sys.stderr)
    return rows, time.monotonic() - started


def fmt_value(value: float) -> str:
    if math.isnan(value):
        return "FAILED"
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[dict]) -> list[list[str]]:
    return [[r["area"], r["metric"], fmt_value(r["value"]), r["unit"], r["note"]] for r in rows]


def render_text(rows: list[dict]) -> str:
    cells = [list(COLUMNS)] + table(rows)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    lines = []
    for c in cells:
        left = "  ".join(c[i].rjust(widths[i]) if i == 2 else c[i].ljust(widths[i]) for i in range(4))
        lines.append(f"{left}  {c[4]}".rstrip())
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def render_markdown(rows: list[dict], stamp: str, durations: dict[str, float]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")
    out = [f"# Benchmark results {stamp}", "",
           f"Host: {_host()}. Modules: " + ", ".join(f"{k} ({v:.0f} s)" for k, v in durations.items()), "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in table(rows)]
    return "\n".join(out) + "\n"


def _host() -> str:
    import os
    import platform
    return f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_results(rows: list[dict], durations: dict[str, float], results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path = results / f"{stamp}.json"
    doc = {"timestamp": now.isoformat(timespec="seconds"), "host": _host(), "durations_s": durations,
           "rows": [{**r, "value": None if math.isnan(r["value"]) else r["value"]} for r in rows]}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    (results / "latest.md").write_text(render_markdown(rows, stamp, durations))
    return path


def main(argv: list[str] | None = None) -> int:
    only = (sys.argv[1:] if argv is None else argv) or None
    names = discover(only)
    if not names:
        print("no benchmark modules found", file=sys.stderr)
        return 2
    rows: list[dict] = []
    durations: dict[str, float] = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        mod_rows, took = run_module(name)
        rows += mod_rows
        durations[name.removeprefix("bench_")] = round(took, 1)
    print(render_text(rows))
    path = write_results(rows, durations)
    print(f"\nwritten: {path.relative_to(HERE.parent)} and bench/results/latest.md")
    return 1 if any(math.isnan(r["value"]) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
