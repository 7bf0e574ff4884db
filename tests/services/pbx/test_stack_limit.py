"""A bound on concurrent server transactions: past it, a new request gets 503 with Retry-After (sent
statelessly, no transaction kept) instead of growing the table without end (fails before the fix)."""
import asyncio
import socket

from services.pbx.sip.message import parse
from services.pbx.sip.stack import SipStack

from .conftest import run


class HoldingTu:
    """Answers nothing: every INVITE's transaction stays open (a flood of unanswered calls)."""

    def __init__(self) -> None:
        self.requests = []

    def on_request(self, tx, req):
        self.requests.append(req)

    def on_ack(self, req):
        pass

    def on_cancel(self, tx):
        pass

    def on_stray_response(self, resp):
        pass

    def allow(self, source, req):
        return True


def invite(n: int, port: int) -> bytes:
    return (f"INVITE sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcap{n}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=f{n}\r\nTo: <sip:201@127.0.0.1>\r\n"
            f"Call-ID: cap{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


async def stack_and_peer(tu, **limits) -> tuple[SipStack, socket.socket, int]:
    """A UDP stack on loopback with these limits, and a non-blocking peer socket (and its port)."""
    stack = SipStack(tu)
    for name, value in limits.items():
        setattr(stack, name, value)
    await stack.start("127.0.0.1", 0, tcp=False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    return stack, peer, peer.getsockname()[1]


def test_server_transactions_past_the_bound_get_503():
    async def main():
        tu = HoldingTu()
        stack, peer, port = await stack_and_peer(tu, max_server_txs=3)
        loop = asyncio.get_running_loop()
        answers = {}
        for n in range(5):
            peer.sendto(invite(n, port), ("127.0.0.1", stack.port))
            resp = parse(await asyncio.wait_for(loop.sock_recv(peer, 65535), 2))
            answers[n] = resp
        peer.close()
        await stack.close()
        return tu, stack, answers
    tu, stack, answers = run(main())
    assert [answers[n].status for n in range(5)] == [100, 100, 100, 503, 503]
    assert answers[3].get("Retry-After") == "5" and answers[3].get("Call-ID") == "cap3@127.0.0.1"
    assert len(tu.requests) == 3 and stack.counters["overloaded"] == 2


class AnsweringTu(HoldingTu):
    """Answers every request at once: its transactions only linger to absorb retransmissions."""

    def on_request(self, tx, req):
        self.requests.append(req)
        tx.reply(486, to_tag="t")


def test_answered_transactions_do_not_count_toward_the_bound_and_are_themselves_bounded():
    async def main():
        tu = AnsweringTu()
        stack, peer, port = await stack_and_peer(tu, max_server_txs=3, max_answered_txs=4)
        loop = asyncio.get_running_loop()
        statuses = []
        for n in range(8):
            peer.sendto(invite(n, port), ("127.0.0.1", stack.port))
            statuses.append(parse(await asyncio.wait_for(loop.sock_recv(peer, 65535), 2)).status)
        kept = len(stack.server_txs)
        peer.sendto(invite(7, port), ("127.0.0.1", stack.port))  # a retransmission: the kept answer again
        again = parse(await asyncio.wait_for(loop.sock_recv(peer, 65535), 2)).status
        peer.close()
        await stack.close()
        return tu, stack, statuses, kept, again
    tu, stack, statuses, kept, again = run(main())
    assert statuses == [486] * 8 and len(tu.requests) == 8 and "overloaded" not in stack.counters
    assert kept == 4 and again == 486 and stack.open_server_txs == 0
