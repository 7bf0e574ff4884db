"""Paging and intercom with real phones. Alice pages group 650: bob's phone (baresip set to auto-answer)
answers and hears her, carol's (manual) just rings, erin's scripted phone sees the auto-answer headers
of the common vendors and receives alice's RTP on the port it answered with. Alice hangs up: bob and
erin get BYE, carol's ringing stops. Intercom (*80 + extension): a two-way call with the same headers."""
import asyncio
import socket
import time
from contextlib import ExitStack

import pytest

from services.pbx.sip.message import response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config, user
from .rawphone import answer, next_request, sdp
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")
SECRETS = {u["extension"]: u["sip_secret"] for u in (ALICE, BOB, CAROL, ERIN)}


@pytest.fixture
def pbx(tmp_path):
    cfg = config([ALICE, BOB, CAROL, ERIN], paging_groups=[{"number": "650", "name": "Shop floor",
                                                            "members": ["201", "202", "203", "205"]}])
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


def rtp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def count_packets(s: socket.socket, seconds: float) -> int:
    n = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            s.recv(2048)
            n += 1
        except BlockingIOError:
            await asyncio.sleep(0.01)
    return n


async def erin_answers(pbx, caller: Baresip, number: str, media: socket.socket, answer_sdp: bytes,
                       listen: float, during=None):
    """Erin's scripted phone: registered, answers with `answer_sdp` the INVITE that `caller` dialling
    `number` makes; the packets on `media` for `listen` seconds; `during()` (in a thread) before the
    caller hangs up; then erin's BYE answered. (INVITE, packets)."""
    async with SipClient(("127.0.0.1", pbx.port)) as erin:
        assert (await erin.register("205", SECRETS["205"])).status == 200
        await asyncio.to_thread(caller.dial, number)
        inv = await next_request(erin, "INVITE", timeout=10)
        answer(erin, inv, 200, "erintag", answer_sdp)
        await asyncio.to_thread(caller.wait_for, "CALL_ESTABLISHED")
        received = await count_packets(media, listen)
        if during is not None:
            await asyncio.to_thread(during)
        await asyncio.to_thread(caller.hangup)
        bye = await next_request(erin, "BYE", timeout=10)
        erin.send(response_to(bye, 200))
        return inv, received


def assert_auto_answer(inv) -> None:
    assert "answer-after=0" in (inv.get("Call-Info") or "")
    alert = inv.get("Alert-Info") or ""
    assert "info=alert-autoanswer" in alert and "Auto Answer" in alert


def test_page_reaches_auto_answering_phones_and_ends_with_the_pager(pbx):
    with ExitStack() as stack:
        alice = stack.enter_context(Baresip("alice", user="201", password=SECRETS["201"], registrar=pbx.registrar))
        bob = stack.enter_context(Baresip("bob", user="202", password=SECRETS["202"], registrar=pbx.registrar,
                                          auto_answer=True))
        carol = stack.enter_context(Baresip("carol", user="203", password=SECRETS["203"], registrar=pbx.registrar))
        for ua in (alice, bob, carol):
            ua.register()
        media = stack.enter_context(rtp_socket())

        def others():
            bob.wait_for("CALL_ESTABLISHED")
            bob.wait_rtp(rx=bob.rtp_stats()["rx"] + 25)  # bob hears alice
            carol.wait_for("CALL_INCOMING")  # no auto-answer: it rings
        inv, received = run(erin_answers(pbx, alice, "650", media,
                                         sdp(media.getsockname()[1], "a=recvonly\r\n"), 2.0, others))
        assert_auto_answer(inv)
        assert b"a=sendonly" in inv.body  # a one-way announcement
        assert received >= 50  # ~100 packets of alice's voice in 2 s, forwarded to erin's answer address
        bob.wait_for("CALL_CLOSED")
        carol.wait_for("CALL_CLOSED")
        assert carol.call_state() == "CALL_CLOSED"
    deadline = time.monotonic() + 5
    while pbx.svc.active_calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pbx.svc.active_calls() == []


def test_intercom_is_a_two_way_call_asking_to_auto_answer(pbx):
    with ExitStack() as stack:
        alice = stack.enter_context(Baresip("alice", user="201", password=SECRETS["201"], registrar=pbx.registrar))
        alice.register()
        media = stack.enter_context(rtp_socket())

        inv, received = run(erin_answers(pbx, alice, "*80205", media,
                                         sdp(media.getsockname()[1]), 1.5))
        assert_auto_answer(inv)
        assert b"a=sendonly" not in inv.body and inv.to.uri.user == "205"
        assert received >= 30
