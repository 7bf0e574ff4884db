"""100 Trying only where RFC 3261 17.2.1 asks for it: an INVITE answered at once (the 407 challenge) gets
its answer alone, one whose callee is slow still gets a 100 (so the caller stops retransmitting)."""
from services.pbx.sip.message import Response

from .conftest import ALICE, BOB, run
from .rawphone import next_request, sdp
from .sipclient import SipClient


def test_an_immediate_answer_comes_alone_and_a_slow_callee_still_means_a_100(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as bob, SipClient(("127.0.0.1", pbx.port)) as alice:
            assert (await bob.register(BOB["extension"], BOB["sip_secret"])).status == 200
            req = alice.request("INVITE", "sip:202@127.0.0.1", "201", body=sdp(40000))
            alice.send(req)
            first = await alice.recv()
            assert isinstance(first, Response) and first.status == 407  # no 100 before the challenge
            queued = alice.queue.qsize()
            alice.answer_challenge(req, first, ALICE["extension"], ALICE["sip_secret"])
            await next_request(bob, "INVITE")  # bob says nothing: the PBX has no answer to give
            trying = await alice.recv(2)
            assert queued == 0 and isinstance(trying, Response) and trying.status == 100
            assert trying.call_id == req.call_id and trying.cseq == req.cseq
    run(main())

