"""Access-log statistics: parsing, incremental reading, partial lines, a new log file, bad lines."""
from __future__ import annotations

import os

import pytest

from services.proxy.stats import UsageStats, parse_line

T = 1_790_000_000.0  # an hour boundary + 800 s


def line(t: float, client: str, code: str, size: int, method: str, url: str) -> str:
    return f"{t:.3f}    12 {client} {code} {size} {method} {url} - HIER_DIRECT/198.51.100.1 text/html\n"


@pytest.fixture
def stats(tmp_path):
    s = UsageStats(tmp_path / "usage.db", tmp_path / "access.log")
    yield s
    s.close()


def test_parse_line_kinds_and_domains():
    assert parse_line(line(T, "10.0.0.1", "TCP_MISS/200", 100, "GET", "http://WWW.Example.com/a?b")) == (
        int(T // 3600 * 3600), "10.0.0.1", "www.example.com", 100, "miss")
    assert parse_line(line(T, "10.0.0.1", "TCP_MEM_HIT/200", 5, "GET", "http://a.test/"))[4] == "hit"
    assert parse_line(line(T, "10.0.0.1", "TCP_REFRESH_UNMODIFIED/200", 5, "GET", "http://a.test/"))[4] == "hit"
    assert parse_line(line(T, "10.0.0.1", "TCP_DENIED/403", 5, "GET", "http://a.test/"))[4] == "denied"
    assert parse_line(line(T, "10.0.0.1", "TCP_TUNNEL/200", 9, "CONNECT", "secure.test:443"))[2] == "secure.test"
    for bad in ("", "garbage", "x y z a b c d", "1.0 1 c TCP_MISS/200 notanumber GET http://a/"):
        assert parse_line(bad) is None
    for odd, host in (("http://[bad/", "bad"), ("no-scheme", "-"), ("http://u:p@h.test:8080/x", "h.test"),
                      ("http://[2001:db8::1]:80/", "2001:db8::1"), ("ftp://f.test/x", "f.test")):
        assert parse_line(f"1.0 1 c TCP_MISS/200 1 GET {odd}")[2] == host


def test_incremental_reading_counts_each_line_once(stats, tmp_path):
    log = tmp_path / "access.log"
    with open(log, "w") as f:
        f.write(line(T, "10.0.0.1", "TCP_MISS/200", 1000, "GET", "http://a.test/1"))
        f.write(line(T + 1, "10.0.0.2", "TCP_MEM_HIT/200", 1000, "GET", "http://a.test/1"))
        f.write(line(T + 3600, "10.0.0.1", "TCP_DENIED/403", 300, "GET", "http://b.test/"))
        f.write("not a log line at all\n")
        f.write(line(T + 3601, "10.0.0.2", "TCP_MISS/200", 50, "GET", "http://c.test/")[:30])  # being written
    assert stats.collect() == 3
    assert stats.skipped == 1
    assert stats.collect() == 0
    with open(log, "a") as f:
        f.write(line(T + 3601, "10.0.0.2", "TCP_MISS/200", 50, "GET", "http://c.test/")[30:])
    assert stats.collect() == 1
    sites = {r["domain"]: r for r in stats.top_sites(0)}
    assert sites["a.test"] == {"domain": "a.test", "requests": 2, "bytes": 2000, "denied": 0}
    assert sites["b.test"]["denied"] == 1
    clients = [r["client"] for r in stats.top_clients(0)]
    assert clients == ["10.0.0.1", "10.0.0.2"]  # by bytes: 1300 vs 1050
    hours = stats.per_hour(0)
    assert [h["requests"] for h in hours] == [2, 2]
    cache = stats.cache(0)
    assert (cache["hits"], cache["misses"], cache["denied"]) == (1, 2, 1)
    assert cache["hit_ratio"] == pytest.approx(1 / 3)
    assert stats.top_sites(T + 3600)[0]["domain"] in ("b.test", "c.test")  # `since` filters by hour


def test_a_new_log_file_is_read_from_its_start(stats, tmp_path):
    log = tmp_path / "access.log"
    log.write_text(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://a.test/") * 3)
    assert stats.collect() == 3
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://a.test/"))
    assert stats.collect() == 1
    assert stats.top_sites(0)[0]["requests"] == 4


def test_rotation_reads_the_old_tail_then_the_new_file(stats, tmp_path):
    log = tmp_path / "access.log"
    log.write_text(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://a.test/"))
    assert stats.collect() == 1
    with open(log, "a") as f:  # written after the last collect, before the rotation
        f.write(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://tail.test/"))
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://new.test/"))
    assert stats.collect(tmp_path / "access.log.1") == 1
    assert stats.collect() == 1
    assert stats.collect(tmp_path / "access.log.1") == 0  # finished with: never read again
    assert {r["domain"] for r in stats.top_sites(0)} == {"a.test", "tail.test", "new.test"}


def test_offsets_survive_a_restart(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(line(T, "10.0.0.1", "TCP_MISS/200", 10, "GET", "http://a.test/"))
    first = UsageStats(tmp_path / "usage.db", log)
    assert first.collect() == 1
    first.close()
    again = UsageStats(tmp_path / "usage.db", log)
    assert again.collect() == 0
    again.prune(keep_days=1)  # T is in the past: pruned
    assert again.top_sites(0) == []
    again.close()


def test_missing_log_is_not_an_error(stats):
    assert stats.collect() == 0
    assert stats.cache(0)["hit_ratio"] == 0.0


def test_signed_in_logins_are_counted_and_pruned(stats, tmp_path):
    signed = line(T, "10.0.0.1", "TCP_MISS/200", 100, "GET", "http://a.test/").replace(" - HIER", " Ann HIER")
    denied = line(T, "10.0.0.2", "TCP_DENIED/403", 10, "GET", "http://b.test/").replace(" - HIER", " bob HIER")
    (tmp_path / "access.log").write_text(signed * 2 + denied + line(T, "10.0.0.3", "TCP_MISS/200", 7, "GET", "http://c/"))
    assert stats.collect() == 4
    assert stats.top_users(T - 3600) == [{"login": "ann", "requests": 2, "bytes": 200, "denied": 0},
                                         {"login": "bob", "requests": 1, "bytes": 10, "denied": 1}]
    assert [c["client"] for c in stats.top_clients(T - 3600)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    stats.prune(keep_days=1)  # T is in the past: everything goes
    assert stats.top_users(0) == [] and stats.top_clients(0) == []
