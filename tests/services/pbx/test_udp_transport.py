"""The UDP side of the transports: bursts are read whole and in order, sends queue while the buffer is full."""
import asyncio
import socket

from services.pbx.sip.transport import Transports

from .conftest import run


def test_a_burst_is_delivered_whole_and_in_order():
    async def main():
        got: list[tuple[bytes, tuple]] = []
        transports = Transports(lambda data, source: got.append((data, source)))
        port = await transports.start("127.0.0.1", 0, tcp=False)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        count = 3 * transports.udp.DRAIN + 5  # more than one wake-up reads
        for i in range(count):
            peer.sendto(b"message %d" % i, ("127.0.0.1", port))
        for _ in range(200):
            if len(got) == count:
                break
            await asyncio.sleep(0.01)
        assert [data for data, _ in got] == [b"message %d" % i for i in range(count)]
        assert {source for _, source in got} == {("udp", "127.0.0.1", peer.getsockname()[1])}
        transports.send(b"answer", ("udp", "127.0.0.1", peer.getsockname()[1]))
        peer.settimeout(2)
        assert peer.recv(100) == b"answer"
        await transports.close()
        transports.send(b"after close", ("udp", "127.0.0.1", peer.getsockname()[1]))  # ignored, no error
        peer.close()
    run(main())


class _FullOnce:
    """The real socket, whose send buffer is full for the first `full` sends (not reproducible on loopback)."""

    def __init__(self, sock: socket.socket, full: int) -> None:
        self.sock, self.full = sock, full

    def sendto(self, data, addr):
        if self.full:
            self.full -= 1
            raise BlockingIOError
        return self.sock.sendto(data, addr)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_sends_wait_in_order_while_the_buffer_is_full():
    async def main():
        transports = Transports(lambda data, source: None)
        await transports.start("127.0.0.1", 0, tcp=False)
        udp = transports.udp
        udp.sock = _FullOnce(udp.sock, 2)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        dest = ("udp", "127.0.0.1", peer.getsockname()[1])
        for i in range(4):
            transports.send(b"m%d" % i, dest)  # the first fails: it and all after it wait their turn
        assert len(udp._unsent) == 4
        received = [await asyncio.wait_for(loop.sock_recv(peer, 100), 2) for _ in range(4)]
        assert received == [b"m0", b"m1", b"m2", b"m3"] and not udp._unsent
        transports.send(b"direct", dest)
        assert await asyncio.wait_for(loop.sock_recv(peer, 100), 2) == b"direct"
        peer.close()
        udp.sock = udp.sock.sock
        await transports.close()
    run(main())
