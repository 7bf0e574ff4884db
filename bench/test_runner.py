"""The benchmark runner: discovery, failures reported as rows, table and result files."""
from __future__ import annotations

import json
import math
import sys
import types

from bench import __main__ as runner


def _fake(monkeypatch, name: str, run) -> None:
    module = types.ModuleType(f"bench.{name}")
    module.run = run
    monkeypatch.setitem(sys.modules, f"bench.{name}", module)


def test_rows_failures_and_files(monkeypatch, tmp_path):
    _fake(monkeypatch, "bench_good", lambda: [
        {"area": "demo", "metric": "speed", "value": 12.5, "unit": "1/s", "note": "a|b"},
        {"area": "demo", "metric": "odd", "value": "fast", "unit": "", "note": ""},
        "not a row"])
    _fake(monkeypatch, "bench_boom", lambda: 1 / 0)
    _fake(monkeypatch, "bench_notlist", lambda: {"value": 1})
    good, _ = runner.run_module("bench_good")
    boom, _ = runner.run_module("bench_boom")
    notlist, _ = runner.run_module("bench_notlist")
    assert good[0]["value"] == 12.5 and math.isnan(good[1]["value"]) and "non-numeric" in good[1]["note"]
    assert good[2]["metric"] == "bad row"
    assert boom[0]["metric"] == "run() failed" and "ZeroDivisionError" in boom[0]["note"]
    assert boom[0]["area"] == "boom" and "not a list" in notlist[0]["note"]

    rows = good + boom
    text = runner.render_text(rows)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["area", "metric", "value", "unit"] and "FAILED" in text
    assert len({line.index("1/s") for line in lines if "1/s" in line}) == 1

    path = runner.write_results(rows, {"good": 1.0}, results=tmp_path)
    doc = json.loads(path.read_text())
    assert [r["value"] for r in doc["rows"]][:2] == [12.5, None]
    latest = (tmp_path / "latest.md").read_text()
    assert "| demo | speed | 12.5 | 1/s | a\\|b |" in latest


def test_discovery_finds_bench_modules():
    names = runner.discover()
    assert "bench_pbx" in names and all(n.startswith("bench_") for n in names)
    assert runner.discover(["pbx"]) == ["bench_pbx"]
