"""The control socket to the helper processes (services/pbx/control.py), against the real media engine
where one is needed: batches of one loop turn, requests answered inside a batch, the helper's end closing."""
from __future__ import annotations

import asyncio
import json
import socket

import pytest

from services.pbx import control
from services.pbx.relay import ENGINE


def test_one_turn_goes_as_one_array_and_arrays_are_read_back() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.setblocking(False)
        events: list[dict] = []
        closed = asyncio.Event()
        channel = control.ControlChannel(ours, "the helper", events.append, closed.set, batch=True)
        for n in range(3):
            channel.send({"op": "watch", "side": n, "seconds": 0})
        answer = asyncio.ensure_future(channel.request({"op": "ping"}, 5))
        await asyncio.sleep(0.05)
        datagrams = []
        while True:
            try:
                datagrams.append(json.loads(theirs.recv(1 << 16)))
            except BlockingIOError:
                break
        # one loop turn, one datagram; the request's task sent alone in a later turn: a plain object
        assert datagrams == [[{"op": "watch", "side": n, "seconds": 0} for n in range(3)],
                             {"op": "ping", "id": datagrams[1]["id"]}], datagrams
        # the helper's answer inside an array, with an event before it
        theirs.send(json.dumps([{"ev": "dtmf", "side": 1, "key": "5"}, {"re": datagrams[1]["id"], "pid": 7}]).encode())
        assert (await asyncio.wait_for(answer, 5))["pid"] == 7
        assert events == [{"ev": "dtmf", "side": 1, "key": "5"}]
        # a request open when the helper's end closes fails at once, and on_closed runs
        waiting = asyncio.ensure_future(channel.request({"op": "ping"}, 30))
        await asyncio.sleep(0.05)
        theirs.close()
        await asyncio.wait_for(closed.wait(), 5)
        with pytest.raises(OSError, match="the helper stopped"):
            await asyncio.wait_for(waiting, 5)
        assert not channel.open
        channel.send({"op": "ignored"})  # no helper: nothing to do, no error
    asyncio.run(main())


def test_a_large_turn_is_split_below_the_datagram_limit() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.setblocking(False)
        channel = control.ControlChannel(ours, "the helper", lambda msg: None, lambda: None, batch=True)
        for n in range(3000):
            channel.send({"op": "watch", "side": n, "seconds": 0})
        got: list[dict] = []
        for _ in range(200):
            await asyncio.sleep(0.01)
            try:
                while True:
                    data = theirs.recv(1 << 20)
                    assert len(data) <= control.MAX_DATAGRAM
                    got += json.loads(data)
            except BlockingIOError:
                pass
            if len(got) == 3000:
                break
        assert [m["side"] for m in got] == list(range(3000))
        channel.close()
        theirs.close()
    asyncio.run(main())


def test_a_message_that_cannot_be_encoded_is_left_out_of_its_turn() -> None:
    """A turn's messages are encoded together when they leave: one that JSON cannot carry (a programming
    error) is logged and dropped there, the others of its turn still reach the helper, in order."""
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.setblocking(False)
        channel = control.ControlChannel(ours, "the helper", lambda msg: None, lambda: None, batch=True)
        channel.send({"op": "watch", "side": 1, "seconds": 0})
        channel.send({"op": "watch", "side": 2, "seconds": object()})
        channel.send({"op": "watch", "side": 3, "seconds": 0})
        await asyncio.sleep(0.05)
        assert json.loads(theirs.recv(1 << 16)) == [{"op": "watch", "side": 1, "seconds": 0},
                                                    {"op": "watch", "side": 3, "seconds": 0}]
        with pytest.raises(BlockingIOError):
            theirs.recv(1 << 16)
        channel.send({"op": "watch", "side": 4, "seconds": {1, 2}})  # alone in its turn
        channel.send({"op": "watch", "side": 5, "seconds": 0}, now=True)
        assert json.loads(theirs.recv(1 << 16)) == [{"op": "watch", "side": 5, "seconds": 0}]
        channel.close()
        theirs.close()
    asyncio.run(main())


def test_the_media_engine_runs_a_batch_in_order_and_batches_its_answers() -> None:
    async def main() -> None:
        proc, sock = await control.spawn(ENGINE)
        events: list[dict] = []
        channel = control.ControlChannel(sock, "the media engine", events.append, lambda: None, batch=True)
        try:
            channel.send({"op": "config", "host": "127.0.0.1", "min": 41000, "max": 41099, "batch": True})
            opened = [asyncio.ensure_future(channel.request({"op": "open", "count": 1}, 5)) for _ in range(3)]
            channel.send({"op": "nonsense", "side": 0})  # no such side: ignored as before
            ping = asyncio.ensure_future(channel.request({"op": "ping"}, 5))
            sides = [(await fut)["sides"][0] for fut in opened]
            assert len({port for _, port in sides}) == 3
            assert all(41000 <= port <= 41099 for _, port in sides)
            assert (await ping)["sides"] == 3  # after the three opens of the same batch
            for sid, _ in sides:
                channel.send({"op": "close", "side": sid})
            assert (await channel.request({"op": "ping"}, 5))["sides"] == 0
            channel.send({"op": "bogus"})  # a request it cannot read: an error event, the batch goes on
            assert (await channel.request({"op": "ping"}, 5))["sides"] == 0
            assert any(ev.get("ev") == "error" for ev in events), events
        finally:
            channel.close()
            await asyncio.wait_for(proc.wait(), 5)
    asyncio.run(main())
