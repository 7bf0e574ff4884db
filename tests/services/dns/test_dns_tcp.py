"""DNS over TCP under a connection hog (issue 12): per-source caps and idle timeouts that shrink under
pressure, so idle connections from one LAN host never lock other TCP clients out."""
from __future__ import annotations

import select
import socket
import time

from tests.services.dns.digtool import dig


def hold(port: int, source: str, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        held.append(sock)
    return held


def still_open(held: list[socket.socket]) -> int:
    """How many of these the server has not closed (it never sends them anything: readable is EOF)."""
    readable, _, _ = select.select(held, [], [], 0)
    return len(held) - len(readable)


def test_one_host_with_64_idle_connections_locks_nobody_out(dns):
    svc, port, _, runner = dns
    held = hold(port, "127.0.0.1", 64)
    time.sleep(0.3)  # the server accepts them
    try:
        for source in ("127.0.0.2", "127.0.0.1"):  # another host, and the hog itself for a real query
            assert dig(port, "-b", source, "+tcp", "+short", "nas.office.test").split() == ["10.77.0.5"], source
        slots = runner.sync(lambda: {src: len(s) for src, s in svc.server.tcp_slots.by_source.items()})
        assert slots.get("127.0.0.1", 0) <= 8
    finally:
        for sock in held:
            sock.close()


def test_idle_connections_are_closed_sooner_when_the_table_fills(dns):
    svc, port, _, _ = dns
    held = [sock for i in range(5) for sock in hold(port, f"127.0.0.{10 + i}", 8)]  # 40 of 64 slots
    try:
        time.sleep(0.3)  # the server accepts them
        assert still_open(held) == 40
        time.sleep(3)  # idle well past the short timeout, far less than the normal 10 s
        assert still_open(held) < 32  # back under half the table
        assert dig(port, "-b", "127.0.0.20", "+tcp", "+short", "nas.office.test").split() == ["10.77.0.5"]
    finally:
        for sock in held:
            sock.close()
