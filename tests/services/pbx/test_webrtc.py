"""The WebRTC gateway against the running PBX, with a scripted browser over WSS and a scripted desk phone:
the SDP is rewritten both ways (the desk phone sees plain RTP at the gateway, the browser an ICE-lite
DTLS-SRTP answer), unauthenticated STUN gets no answer, a browser that never completes ICE, or completes ICE but never
DTLS, loses its session after the set-up timeout, counted by reason; a browser offering Opus alone is
transcoded to G.711 both ways (scripted DTLS-SRTP peers of bench/bench_webrtc.py, real libopus)."""
from __future__ import annotations

import asyncio
import math
import os
import re
import secrets
import signal
import socket
import struct

from bench.bench_webrtc import connect, disconnect
from services.pbx.media.dsp import Codec
from services.pbx.sip.message import Request, Response
from services.pbx.webrtc import sdp as wsdp
from services.pbx.webrtc import stun
from services.pbx.webrtc.gateway import WebRtcGateway
from services.pbx.webrtc.opus import Opus

from .conftest import ALICE, BOB, run
from .sipclient import SipClient
from .test_apps import _goertzel
from .test_ws import WsPhone

BROWSER_UFRAG, BROWSER_PWD = "brws", "browserpassword0123456789"
FINGERPRINT = ":".join(["AB"] * 32)
OFFER = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "a=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n"
         "a=rtcp:9 IN IP4 0.0.0.0\r\n"
         f"a=ice-ufrag:{BROWSER_UFRAG}\r\na=ice-pwd:{BROWSER_PWD}\r\na=ice-options:trickle\r\n"
         f"a=fingerprint:sha-256 {FINGERPRINT}\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
         "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n"
         "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n"
         "a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n").encode()


def _reply(incoming: Request, status: int, body: bytes = b"", tag: str = "desk") -> Response:
    resp = Response(status)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in incoming.get_all(name):
            resp.add(name, value + (f";tag={tag}" if name == "To" and ";tag=" not in value else ""))
    if body:
        resp.add("Contact", "<sip:202@127.0.0.1>")
        resp.add("Content-Type", "application/sdp")
        resp.body = body
    return resp


async def _call_from_browser(pbx, browser: WsPhone, desk: SipClient) -> tuple[Request, Response]:
    """The browser calls 202 with a WebRTC offer; the desk phone answers: (what it got, what the browser got)."""
    invite = browser.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "201", body=OFFER)
    browser.send(invite)
    resp = await browser.final(10)
    assert resp.status == 407
    browser.answer_challenge(invite, resp, "201", ALICE["sip_secret"])
    got = None
    for _ in range(20):
        msg = await desk.recv(10)
        if isinstance(msg, Request) and msg.method == "INVITE":
            got = msg
            break
    assert got is not None
    answer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              b"m=audio 4002 RTP/AVP 0 126\r\na=rtpmap:126 telephone-event/8000\r\n")
    desk.send(_reply(got, 200, answer).to_bytes())
    return got, await browser.final(10)


def _free_udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def test_sdp_is_rewritten_both_ways_and_a_browser_without_ice_is_dropped(pbx, caplog):
    ws = pbx.svc.core.stack.transports.ws
    ws.gateway.setup_timeout = 1.5

    async def main():
        async with WsPhone(pbx) as browser, SipClient(("127.0.0.1", pbx.port)) as desk:
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            assert (await desk.register("202", BOB["sip_secret"])).status == 200
            at_desk, at_browser = await _call_from_browser(pbx, browser, desk)
            # the desk phone is offered plain RTP: the browser's G.722, PCMU, PCMA and telephone-event/8000
            plain = wsdp.parse(at_desk.body)
            assert plain.proto == "RTP/AVP" and plain.formats == [9, 0, 8, 126]
            assert b"fingerprint" not in at_desk.body and b"ice-" not in at_desk.body
            # the browser gets an ICE-lite DTLS-SRTP answer on the gateway's port, with our certificate
            assert at_browser.status == 200
            answer = wsdp.parse(at_browser.body)
            assert answer.proto == "UDP/TLS/RTP/SAVPF" and answer.setup == "passive" and answer.mid == "0"
            assert b"a=ice-lite" in at_browser.body and b"a=rtcp-mux" in at_browser.body
            assert re.fullmatch(r"sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}", answer.fingerprint)
            assert answer.formats == [0, 126]
            port = int(re.search(rb"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", at_browser.body)[1])
            assert pbx.cfg.pbx.lab_webrtc_port_min <= port <= pbx.cfg.pbx.lab_webrtc_port_max
            await asyncio.sleep(2.5)  # no connectivity check ever comes
            assert ws.gateway.counters["ice_timeout"] == 1 and not ws.gateway.legs
    run(main())
    assert any("dropped: ice_timeout" in r.getMessage() for r in caplog.records)


def test_stun_checks_are_authenticated_and_dtls_that_never_comes_is_dropped(pbx):
    gateway = pbx.svc.core.stack.transports.ws.gateway
    gateway.setup_timeout = 2.0

    async def main():
        async with WsPhone(pbx) as browser, SipClient(("127.0.0.1", pbx.port)) as desk:
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            assert (await desk.register("202", BOB["sip_secret"])).status == 200
            _, at_browser = await _call_from_browser(pbx, browser, desk)
            answer = wsdp.parse(at_browser.body)
            port = int(re.search(rb"127\.0\.0\.1 (\d+) typ host", at_browser.body)[1])
            peer = _free_udp()
            try:
                wrong = stun.request(secrets.token_bytes(12), f"{answer.ufrag}:{BROWSER_UFRAG}", "not-the-pwd")
                peer.sendto(wrong, ("127.0.0.1", port))
                tid = secrets.token_bytes(12)
                peer.sendto(stun.request(tid, f"{answer.ufrag}:{BROWSER_UFRAG}", answer.pwd), ("127.0.0.1", port))
                reply = await asyncio.to_thread(peer.recv, 2048)
                assert reply[:2] == b"\x01\x01" and reply[8:20] == tid  # only the signed check is answered
                peer.sendto(b"\x80\x00 not srtp", ("127.0.0.1", port))
                await asyncio.sleep(3)  # ICE done, but no DTLS handshake
            finally:
                peer.close()
            assert gateway.counters["dtls_timeout"] == 1 and gateway.counters["ice_timeout"] == 0
    run(main())


OPUS_ONLY = re.sub(rb"m=audio 9 UDP/TLS/RTP/SAVPF [0-9 ]+", b"m=audio 9 UDP/TLS/RTP/SAVPF 111 110", OFFER)


def test_a_browser_offering_opus_alone_is_offered_g711_and_answered_opus(pbx):
    gateway = pbx.svc.core.stack.transports.ws.gateway

    async def main():
        async with WsPhone(pbx) as browser, SipClient(("127.0.0.1", pbx.port)) as desk:
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            assert (await desk.register("202", BOB["sip_secret"])).status == 200
            invite = browser.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "201", body=OPUS_ONLY)
            browser.send(invite)
            resp = await browser.final(10)
            browser.answer_challenge(invite, resp, "201", ALICE["sip_secret"])
            got = None
            while got is None:
                msg = await desk.recv(10)
                got = msg if isinstance(msg, Request) and msg.method == "INVITE" else None
            assert wsdp.parse(got.body).formats == [0, 8]  # the gateway transcodes: the desk phone gets G.711
            answer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                      b"m=audio 4002 RTP/AVP 8\r\n")
            desk.send(_reply(got, 200, answer).to_bytes())
            at_browser = await browser.final(10)
            assert wsdp.parse(at_browser.body).formats == [111]
            assert b"a=rtpmap:111 opus/48000/2" in at_browser.body
            assert gateway.legs[invite.call_id].transcoding
    run(main())


def _tone(freq: float, frames: int, rate: int = 8000) -> list[bytes]:
    """`frames` 20 ms frames of a continuous tone."""
    return [struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * freq * (f * 160 + n) / rate)) for n in range(160)))
            for f in range(frames)]


def _peak(pcm: bytes, rate: int = 8000) -> int:
    samples = list(struct.unpack(f"<{len(pcm) // 2}h", pcm))
    return max(range(200, 3400, 10), key=lambda f: _goertzel(samples, f, rate))


def test_opus_and_g711_are_transcoded_both_ways_with_the_audio_kept():
    """A scripted browser speaks Opus (a 1 kHz tone), the relay's side PCMU (440 Hz): each hears the other's."""
    coder, pcmu = Opus(), Codec("PCMU")  # the frames are made before the loop runs
    to_send = [(coder.encode(a), pcmu.encode(c)) for a, c in zip(_tone(1000, 60), _tone(440, 60), strict=True)]

    async def main():
        gateway = WebRtcGateway(lambda ip: "127.0.0.1", "127.0.0.1", 47000, 47999)
        await gateway.start()
        browsers = await connect(gateway, 1, opus_pt=111, keep=True)
        try:
            b = browsers[0]
            assert b.out is not None
            for opus_frame, pcmu_frame in to_send:
                b.send_frame(opus_frame, pcmu_frame)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            assert len(b.plain_heard) >= 55 and len(b.heard) >= 55
            return b.plain_heard, b.heard
        finally:
            disconnect(browsers)
            await gateway.close()
    plain_heard, browser_got = run(main())
    assert abs(_peak(b"".join(pcmu.decode(p) for p in plain_heard[10:50])) - 1000) <= 20
    assert abs(_peak(b"".join(coder.decode(p) for p in browser_got[10:50])) - 440) <= 20
    coder.close()



def test_an_unauthenticated_offer_opens_no_gateway_port(pbx):
    gateway = pbx.svc.core.stack.transports.ws.gateway

    async def main():
        async with WsPhone(pbx) as stranger:
            for _ in range(5):
                stranger.send(stranger.request("INVITE", f"sip:202@127.0.0.1:{pbx.port}", "201", body=OFFER))
                assert (await stranger.final(10)).status == 407
    run(main())
    assert gateway.counters["sessions"] == 0 and not gateway.legs


def test_the_watchdog_restarts_a_killed_gateway_with_backoff_and_refuses_calls_meanwhile():
    async def main():
        loop = asyncio.get_running_loop()
        gateway = WebRtcGateway(lambda ip: "127.0.0.1", "127.0.0.1", 47000, 47999)
        lost: list[int] = []
        gateway.watchdog.on_lost = lambda: lost.append(1) or 0
        await gateway.ensure_running()
        delays = []
        try:
            for n in (1, 2):
                pid = gateway._proc.pid
                os.kill(pid, signal.SIGKILL)
                for _ in range(100):
                    if gateway.watchdog.backing_off:
                        break
                    await asyncio.sleep(0.02)
                delays.append(round(gateway.watchdog.restart_at - loop.time()))
                try:
                    await gateway._leg("during-backoff", ("wss", "127.0.0.1", 40000))
                    raise AssertionError("a browser call was opened while the gateway was down")
                except OSError as exc:
                    assert "starts again" in str(exc)
                for _ in range(200):
                    if gateway.watchdog.restarts == n:
                        break
                    await asyncio.sleep(0.02)
                assert gateway.running and gateway._proc.pid != pid
            leg = await gateway._leg("after", ("wss", "127.0.0.1", 40001))  # the new process opens sessions
            assert leg.info["port"] and leg.info["plain_port"] % 2 == 0
        finally:
            await gateway.close()
        await asyncio.sleep(0.1)
        return delays, len(lost), gateway
    delays, lost, gateway = run(main())
    assert delays == [1, 2] and lost == 2  # the backoff doubles; each death ended its calls
    status = gateway.status()
    assert status["deaths"] == 2 and status["restarts"] == 2 and status["last_exit"] == -signal.SIGKILL
    assert not status["running"] and not status["backing_off"]  # closed by the PBX: not restarted


def _rtcp_packets(compound: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at + 4 <= len(compound):
        length = 4 * (struct.unpack_from("!H", compound, at + 2)[0] + 1)
        found[compound[at + 1]] = compound[at:at + length]
        at += length
    return found


def test_a_transcoded_browser_leg_gets_sender_and_receiver_reports_of_the_gateway():
    """While it transcodes, the gateway reports itself to the browser over SRTCP: a sender report for the Opus
    it sends (packet count as the browser counted them) with a report block for the browser's stream (its 5
    skipped packets lost, its highest sequence number, LSR of the browser's own sender report), and a CNAME."""
    coder, pcmu = Opus(), Codec("PCMU")
    frames = [(coder.encode(a), pcmu.encode(c)) for a, c in zip(_tone(1000, 100), _tone(440, 100), strict=True)]

    async def main():
        loop = asyncio.get_running_loop()
        gateway = WebRtcGateway(lambda ip: "127.0.0.1", "127.0.0.1", 47000, 47999)
        await gateway.start()
        browsers = await connect(gateway, 1, opus_pt=111)
        b, reports = browsers[0], []

        def readable():
            while True:
                try:
                    data = b.sock.recv(4096)
                except BlockingIOError:
                    return
                if len(data) > 1 and 192 <= data[1] <= 223:
                    reports.append((b.received, b.inb.unprotect_rtcp(data)))
                else:
                    b.inb.unprotect(data)
                    b.received += 1

        loop.remove_reader(b.sock.fileno())
        loop.add_reader(b.sock.fileno(), readable)
        try:
            sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, b.ssrc, 0x11223344, 0x55667788, 0, 0, 0)
            b.sock.sendto(b.out.protect_rtcp(sr), b.gateway_addr)  # the browser's own sender report
            for n, (opus_frame, pcmu_frame) in enumerate(frames):
                if 40 <= n < 45:
                    b.seq += 1  # five packets the browser "sent" that never arrive
                    b.plain.sendto(struct.pack("!BBHII", 0x80, 0, b.seq, b.seq * 160, b.ssrc) + pcmu_frame,
                                   ("127.0.0.1", b.info["plain_port"]))
                    continue
                b.send_frame(opus_frame, pcmu_frame)
                await asyncio.sleep(0.02)
            await asyncio.sleep(RTCP_WAIT)
            return b.seq, b.ssrc, reports
        finally:
            disconnect(browsers)
            await gateway.close()
    highest, ssrc, reports = run(main())
    coder.close()
    assert len(reports) >= 2, reports
    received, last = reports[-1]
    packets = _rtcp_packets(last)
    sender = packets[200]
    assert sender[0] & 0x1F == 1  # one report block
    their_ssrc, _msw, _lsw, _ts, count, octets = struct.unpack_from("!IIIIII", sender, 4)
    assert their_ssrc == ssrc  # the SSRC of the Opus stream the browser receives (the far side's)
    assert count == received and octets > 0
    block_ssrc, lost, ext_highest, _jitter, lsr, _dlsr = struct.unpack_from("!IIIIII", sender, 28)
    assert block_ssrc == ssrc and lost & 0xFFFFFF == 5 and ext_highest == highest
    assert lsr == 0x33445566  # the middle of the browser's NTP time: it can measure its round trip
    sdes = packets[202]
    assert sdes[8] == 1 and sdes[10:10 + sdes[9]].startswith(b"officebox-")  # CNAME


RTCP_WAIT = 1.5
