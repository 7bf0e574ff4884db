"""RFC 3261 conformance of calls through the B2BUA, checked on the wire by scripted phones: Max-Forwards
(483, decremented onto the outgoing leg, present in our ACK), To tags on CANCEL's 200, the Reason of the
CANCEL a losing fork gets, in-dialog INFO and MESSAGE passed on, offers over 16 KB."""
import asyncio
import secrets
from contextlib import AsyncExitStack, asynccontextmanager

from services.pbx.sip.message import Request

from .conftest import ALICE, BOB, run
from .rawphone import answer, in_dialog, invite, next_request, next_response, sdp
from .sipclient import SipClient


@asynccontextmanager
async def _registered(pbx, *exts: str):
    """Scripted phones registered as `exts` (alice 201, bob 202)."""
    secrets_of = {"201": ALICE["sip_secret"], "202": BOB["sip_secret"]}
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(SipClient(("127.0.0.1", pbx.port))) for _ in exts]
        for client, ext in zip(clients, exts, strict=True):
            assert (await client.register(ext, secrets_of[ext])).status == 200
        yield clients


async def _answered_call(alice: SipClient, bob: SipClient, req: Request):
    """alice's INVITE `req` answered by bob; returns (alice's INVITE, bob's, the 200 alice got)."""
    req = await invite(alice, req, "201", ALICE["sip_secret"])
    incoming = await next_request(bob, "INVITE")
    answer(bob, incoming, 200, "bobtag", sdp(4002))
    ok = await next_response(alice, 200)
    alice.send(in_dialog(alice, "ACK", ok, req.call_id))
    return req, incoming, ok


async def _hang_up(alice: SipClient, bob: SipClient, ok, req: Request) -> None:
    alice.send(in_dialog(alice, "BYE", ok, req.call_id))
    answer(bob, await next_request(bob, "BYE"), 200, "bobtag")
    assert (await alice.final()).status == 200


def _invite(alice: SipClient, body: bytes | None = None, max_forwards: str = "70") -> Request:
    req = alice.request("INVITE", "sip:202@127.0.0.1", "201", body=body or sdp(4000))
    req.set("Max-Forwards", max_forwards)
    return req


def test_max_forwards_zero_is_a_loop_and_hops_are_counted_down(pbx):
    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            alice.send(_invite(alice, max_forwards="0"))
            assert (await alice.final()).status == 483  # not challenged, not routed
            req, incoming, ok = await _answered_call(alice, bob, _invite(alice, max_forwards="10"))
            assert incoming.get("Max-Forwards") == "9"  # not reset to 70 on the outgoing leg
            assert b"officebox" not in incoming.body.lower()  # no product name in our SDP either
            ack = await next_request(bob, "ACK")
            assert ack.get("Max-Forwards") == "70"  # mandatory in every request, our own ACK too
            await _hang_up(alice, bob, ok, req)
    run(main())


def test_cancel_answers_carry_the_invite_to_tag(pbx):
    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            req = await invite(alice, _invite(alice), "201", ALICE["sip_secret"])
            incoming = await next_request(bob, "INVITE")
            answer(bob, incoming, 180, "bobtag")
            ringing = await next_response(alice, 180)
            assert ringing.to_tag
            cancel = Request("CANCEL", req.uri)
            for name in ("Via", "From", "To", "Call-ID", "Max-Forwards"):
                cancel.add(name, req.get(name))
            cancel.add("CSeq", f"{req.cseq[0]} CANCEL")
            alice.send(cancel)
            ok = await next_response(alice, 200)
            assert ok.cseq[1] == "CANCEL" and ok.to_tag == ringing.to_tag  # RFC 3261 9.2
            bob_cancel = await next_request(bob, "CANCEL")
            answer(bob, bob_cancel, 200, "bobtag")
            answer(bob, incoming, 487, "bobtag")
            assert (await next_response(alice, 487)).to_tag == ringing.to_tag
            stray = Request("CANCEL", req.uri)  # nothing to cancel: 481, with a tag too
            for name in ("From", "To", "Max-Forwards"):
                stray.add(name, req.get(name))
            stray.add("Via", f"SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bKnothing;rport")
            stray.add("Call-ID", "nothing-" + secrets.token_hex(4))
            stray.add("CSeq", "1 CANCEL")
            alice.send(stray)
            assert (await next_response(alice, 481)).to_tag
    run(main())


def test_losing_fork_is_cancelled_with_call_completed_elsewhere(pbx):
    async def main():
        async with _registered(pbx, "201", "202", "202") as (alice, desk, mobile):
            req = await invite(alice, _invite(alice), "201", ALICE["sip_secret"])
            desk_invite, mobile_invite = await next_request(desk, "INVITE"), await next_request(mobile, "INVITE")
            answer(desk, desk_invite, 180, "desk")
            answer(mobile, mobile_invite, 180, "mobile")
            answer(desk, desk_invite, 200, "desk", sdp(4002))
            cancel = await next_request(mobile, "CANCEL")
            assert cancel.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"'  # RFC 3326
            answer(mobile, cancel, 200, "mobile")
            answer(mobile, mobile_invite, 487, "mobile")
            ok = await next_response(alice, 200)
            alice.send(in_dialog(alice, "ACK", ok, req.call_id))
            alice.send(in_dialog(alice, "BYE", ok, req.call_id))
            answer(desk, await next_request(desk, "BYE"), 200, "desk")
    run(main())


def test_in_dialog_info_and_message_reach_the_other_party(pbx):
    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            req, incoming, ok = await _answered_call(alice, bob, _invite(alice))
            for method, ctype, body, status in (
                    ("INFO", "application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", 200),
                    ("INFO", "application/dtmf", b"7", 200),
                    ("MESSAGE", "text/plain;charset=utf-8", "on my way, Zoë".encode(), 202),
                    ("INFO", "application/x-unknown", b"?", 415)):
                alice.send(in_dialog(alice, method, ok, req.call_id, body, ctype))
                got = await next_request(bob, method)
                assert got.call_id == incoming.call_id and got.to_tag == "bobtag"  # bob's dialog with the PBX
                assert (got.get("Content-Type"), got.body) == (ctype, body)
                assert got.get("Max-Forwards") == "69"
                answer(bob, got, status, "bobtag")
                assert (await alice.final()).status == status  # bob's answer, not the PBX's guess
            await _hang_up(alice, bob, ok, req)
    run(main())


def test_offer_over_16_kb_is_relayed(pbx):
    """A WebRTC-style offer: hundreds of ICE candidates (dropped by the relay) make it 20 KB."""
    candidates = "".join(f"a=candidate:{i} 1 udp 2122260223 192.0.2.{i % 250 + 1} {40000 + i} typ host "
                         f"generation 0 network-id 1 network-cost 10\r\n" for i in range(260))
    big = sdp(4000, candidates)
    assert len(big) > 16384

    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            await invite(alice, _invite(alice, big), "201", ALICE["sip_secret"])
            incoming = await asyncio.wait_for(next_request(bob, "INVITE"), 5)
            assert b"m=audio" in incoming.body and b"a=candidate" not in incoming.body
            answer(bob, incoming, 486, "bobtag")
            assert (await alice.final()).status == 486
    run(main())
