"""The call centre's records and reports (services/pbx/acd/store.py): one row per turn, figures per queue,
agent, hour and day, in the box's time zone."""
import datetime as dt
import os

from services.pbx.acd.store import AcdStore, QueueCall, report

DAY = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC).timestamp()


def _calls() -> list[QueueCall]:
    return [QueueCall("sales", "210", 0, DAY, DAY + 10, DAY + 70, "201", "answered", True),
            QueueCall("sales", "211", 0, DAY + 60, DAY + 90, DAY + 210, "202", "answered", False),
            QueueCall("sales", "212", 9, DAY + 3600, None, DAY + 3640, "", "abandoned"),
            QueueCall("support", "213", 0, DAY + 7200, None, DAY + 7500, "", "timeout"),
            QueueCall("support", "214", 0, DAY + 7300, DAY + 7400, DAY + 7460, "201", "callback", False, True)]


def test_rows_are_written_off_the_caller_thread_and_read_back(tmp_path):
    store = AcdStore(tmp_path / "acd.sqlite")
    for c in _calls():
        store.queue_call(c)
    store.agent_state(DAY, "201", "paused", "lunch")
    rows = store.calls(DAY, DAY + 86400)
    assert len(rows) == 5 and oct(os.stat(store.path).st_mode & 0o777) == "0o600"
    assert store.calls(DAY, DAY + 86400, "support")[0]["caller"] == "213"
    assert store.agent_log(0) == [{"time": DAY, "agent": "201", "state": "paused", "reason": "lunch"}]


def test_report_figures(tmp_path):
    store = AcdStore(tmp_path / "acd.sqlite")
    for c in _calls():
        store.queue_call(c)
    rows = store.calls(0, DAY + 86400)
    by_queue = {r["key"]: r for r in report(rows, "queue")}
    sales = by_queue["sales"]
    assert (sales["offered"], sales["answered"], sales["abandoned"], sales["abandoned_wait"]) == (3, 2, 1, 40.0)
    assert (sales["asa"], sales["aht"], sales["longest_wait"], sales["service_level"]) == (20.0, 90.0, 40.0, 33.3)
    support = by_queue["support"]
    assert (support["overflowed"], support["callbacks"], support["answered"]) == (1, 1, 1)
    assert [(r["key"], r["offered"]) for r in report(rows, "agent")] == [("", 2), ("201", 2), ("202", 1)]
    assert [(r["key"], r["offered"]) for r in report(rows, "hour", "Europe/Paris")] == [
        ("2026-12-01 10:00", 2), ("2026-12-01 11:00", 1), ("2026-12-01 12:00", 2)]
    assert [(r["key"], r["offered"]) for r in report(rows, "day", "Asia/Taipei")] == [("2026-12-01", 5)]
    assert sum(r["offered"] for r in report(rows, "day")) == len(rows)  # never counted twice
