"""The media engine process driven through RtpRelay in a namespace of its own (relay, phones and attacker on
addresses of its lo): random ports, strict source with latching and re-latching, the silence report
behind the RTP timeout, and a restart after the engine dies."""
import asyncio
import itertools
import os
import signal
import socket
import struct

import pytest

from services.pbx.relay import RtpRelay
from tests.netns import Lab, needs_netns

from .conftest import run

pytestmark = needs_netns
RANGE = (41000, 41199)
RELAY, ALICE, BOB, ATTACKER = "192.0.2.1", "192.0.2.10", "192.0.2.20", "192.0.2.66"


@pytest.fixture(autouse=True)
def netns():
    """The test (and the engine it forks) runs in a namespace where all four addresses are local."""
    with Lab() as lab:
        host = lab.host("media")
        host.run("ip", "addr", "add", f"{RELAY}/24", "dev", "lo")
        for addr in (ALICE, BOB, ATTACKER):
            host.run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
        with host.enter():
            yield


def rtp(seq: int, ssrc: int, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def udp(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


def drain(sock: socket.socket) -> list[tuple[bytes, tuple]]:
    got = []
    while True:
        try:
            got.append(sock.recvfrom(2048))
        except BlockingIOError:
            return got


async def until(predicate, timeout: float = 5.0, what: str = "condition"):
    for _ in range(int(timeout / 0.02)):
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Relay:
    """An RtpRelay with its engine, recording what it reports down."""

    def __init__(self) -> None:
        self.down: list[tuple[list, str]] = []
        self.relay = RtpRelay(RELAY, *RANGE, on_down=lambda sides, why: self.down.append((sides, why)))

    async def __aenter__(self) -> RtpRelay:
        await self.relay.start()
        return self.relay

    async def __aexit__(self, *exc) -> None:
        await self.relay.close()


def test_ports_are_random_even_and_released():
    async def main():
        async with Relay() as relay:
            sides = await relay.open(40)
            ports = [s.port for s in sides]
            assert all(p % 2 == 0 and RANGE[0] <= p < RANGE[1] for p in ports) and len(set(ports)) == 40
            steps = {b - a for a, b in itertools.pairwise(ports)}
            assert steps != {2} and len(steps) > 5  # not handed out in sequence: the next one is not guessable
            for side in sides:
                side.close()
            assert relay.in_use == set()
            again = await relay.open(99)  # 100 slots in the range: all of them can be had again
            assert len({s.port for s in again}) == 99
            with pytest.raises(OSError):
                await relay.open(2)
    run(main())


def test_strict_source_latches_only_the_party_and_relatches_on_its_reinvite():
    async def main():
        async with Relay() as relay:
            alice, bob, attacker = udp(ALICE), udp(BOB), udp(ATTACKER)
            a, b = await relay.pair()
            a.set_peer(ALICE, alice.getsockname()[1], source=ALICE)
            b.set_peer(BOB, bob.getsockname()[1], source=BOB)
            await relay.ping()  # the requests above are handled in order before this answer
            for seq in range(5):  # the attacker is first, on both ports (RTP and RTCP)
                for port in (a.port, a.port + 1, b.port, b.port + 1):
                    attacker.sendto(rtp(seq, 0xBAD), (RELAY, port))
            await asyncio.sleep(0.1)
            for seq in range(5):
                alice.sendto(rtp(seq, 0xA), (RELAY, a.port))
                bob.sendto(rtp(seq, 0xB), (RELAY, b.port))
                attacker.sendto(rtp(seq, 0xBAD), (RELAY, a.port))
            await until(lambda: a.stats.forwarded >= 5 and b.stats.forwarded >= 5, what="relayed packets")
            to_bob, to_alice = drain(bob), drain(alice)
            assert [struct.unpack_from("!I", d, 8)[0] for d, _ in to_bob] == [0xA] * 5
            assert [struct.unpack_from("!I", d, 8)[0] for d, _ in to_alice] == [0xB] * 5
            assert drain(attacker) == []
            assert a.stats.rejected == 15 and b.stats.rejected == 10  # 5 RTCP each among them

            moved = udp(ALICE)  # alice's phone moves to another port: refused until its own re-INVITE
            moved.sendto(rtp(9, 0xA), (RELAY, a.port))
            await until(lambda: a.stats.rejected == 16, what="the moved source rejected")
            a.set_peer(ALICE, moved.getsockname()[1], source=ALICE, relatch=True)
            await relay.ping()
            moved.sendto(rtp(10, 0xA), (RELAY, a.port))
            bob.sendto(rtp(10, 0xB), (RELAY, b.port))
            await until(lambda: a.stats.forwarded == 6 and b.stats.forwarded == 6, what="media after re-latch")
            assert len(drain(moved)) == 1 and drain(alice) == []
            for s in (alice, bob, attacker, moved):
                s.close()
    run(main())


def test_a_transfer_target_behind_the_leaving_partys_address_is_latched_not_the_leaving_party():
    """Phones behind one NAT (or on one host) share an address: after a transfer, a last packet of the
    party that left must not latch the side that now serves the new party (its media was then refused)."""
    async def main():
        async with Relay() as relay:
            alice, bob, carol = udp(ALICE), udp(BOB), udp(BOB)  # carol behind bob's address, another port
            a, b = await relay.pair()
            a.set_peer(ALICE, alice.getsockname()[1], source=ALICE)
            b.set_peer(BOB, bob.getsockname()[1], source=BOB)
            await relay.ping()
            bob.sendto(rtp(0, 0xB), (RELAY, b.port))
            bob.sendto(rtp(0, 0xB), (RELAY, b.port + 1))
            await until(lambda: b.stats.forwarded == 1, what="bob latched")
            b.set_peer(BOB, carol.getsockname()[1], source=BOB, new_party=True)  # carol takes bob's place
            await relay.ping()
            bob.sendto(rtp(1, 0xB), (RELAY, b.port))  # bob has not had the BYE yet
            bob.sendto(rtp(1, 0xB), (RELAY, b.port + 1))
            await until(lambda: b.stats.rejected == 2, what="the leaving party refused")
            for seq in range(2, 5):
                carol.sendto(rtp(seq, 0xC), (RELAY, b.port))
                alice.sendto(rtp(seq, 0xA), (RELAY, a.port))
            await until(lambda: b.stats.forwarded == 4 and a.stats.forwarded == 3, what="carol relayed")
            assert [struct.unpack_from("!I", d, 8)[0] for d, _ in drain(alice)] == [0xB, 0xC, 0xC, 0xC]
            assert len(drain(carol)) == 3 and len(drain(bob)) == 0  # alice's media reaches carol, not bob
            for s in (alice, bob, carol):
                s.close()
    run(main())


def test_silent_side_is_reported_once_and_watching_stops():
    async def main():
        seen = Relay()
        async with seen as relay:
            talker = udp(ALICE)
            a, b = await relay.pair()
            a.set_peer(ALICE, talker.getsockname()[1], source=ALICE)
            a.watch(0.6)
            b.watch(0.6)
            for seq in range(60):  # a keeps talking for 1.2 s, b's party never sends
                talker.sendto(rtp(seq, 0xA), (RELAY, a.port))
                await asyncio.sleep(0.02)
            assert seen.down == [([b], "rtp_timeout")]
            a.watch(0)  # a falls silent now, unwatched (a call on hold)
            await asyncio.sleep(1.0)
            assert len(seen.down) == 1
            await until(lambda: a.stats.packets == 60, what="the talker's packets counted")
            talker.close()
    run(main())


def test_engine_death_is_reported_and_a_new_engine_serves():
    async def main():
        seen = Relay()
        async with seen as relay:
            a, b = await relay.pair()
            old = relay.pid
            os.kill(old, signal.SIGKILL)
            await until(lambda: seen.down, what="the lost sides reported")
            [(sides, why)] = seen.down
            assert set(sides) == {a, b} and why == "media_engine_restart" and a.closed and b.closed
            await until(lambda: relay.pid != old and relay.restarts == 1, what="a new engine")
            c, d = await relay.pair()
            assert (await relay.ping())["pid"] == relay.pid != old and relay.in_use == {c.port, d.port}
    run(main())


def test_stuck_engine_is_killed_and_replaced():
    async def main():
        seen = Relay()
        async with seen as relay:
            relay.watchdog = 0.5
            a, b = await relay.pair()
            old = relay.pid
            os.kill(old, signal.SIGSTOP)  # alive, but answers nothing any more
            await until(lambda: seen.down, timeout=10, what="the stuck engine noticed")
            assert seen.down == [([a, b], "media_engine_restart")] or seen.down == [([b, a], "media_engine_restart")]
            await until(lambda: relay.pid != old and relay.restarts == 1, what="a new engine")
            assert (await relay.ping())["pid"] == relay.pid
            with pytest.raises(ProcessLookupError):
                os.kill(old, 0)  # killed and reaped
    run(main())
