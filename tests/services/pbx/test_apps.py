"""Application destinations (apps.py): app:echo answered by the box and sent back through the media
engine (a scripted phone measures its own tone coming back; a baresip phone hears RTP it did not get
from anyone else), an unknown application refused with 404 and a CDR reason."""
import asyncio
import math
import socket
import struct

import pytest

from services.pbx import apps

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE, run
from .pbxrunner import PbxRunner, config
from .rawphone import in_dialog, invite, next_response, sdp
from .sipclient import SipClient
from .test_trunks import wait


@pytest.fixture
def apbx(tmp_path):
    cfg = config([ALICE, BOB, CAROL, DAVE], application_numbers={"*43": "app:echo", "*44": "app:nothing"})
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 132
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _linear(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 7, byte & 0x0F
    sample = (((mantissa << 3) + 132) << exponent) - 132
    return -sample if sign else sample


def _goertzel(samples: list[int], freq: float, rate: int = 8000) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_echo_returns_the_callers_audio(apbx):
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    port = rtp.getsockname()[1]

    async def main():
        async with SipClient(("127.0.0.1", apbx.port)) as x:
            req = x.request("INVITE", f"sip:*43@127.0.0.1:{apbx.port}", "201", body=sdp(port))
            await invite(x, req, "201", ALICE["sip_secret"])
            ok = await next_response(x, 200)
            x.send(in_dialog(x, "ACK", ok, ok.call_id))
            m = ok.body.decode().split("m=audio ")[1]
            relay = int(m.split()[0])
            tone = [int(8000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(160)]
            payload = bytes(_ulaw(s) for s in tone)
            back: list[int] = []
            loop = asyncio.get_running_loop()
            for seq in range(100):  # 2 s of a 1 kHz tone
                rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + payload, ("127.0.0.1", relay))
                await asyncio.sleep(0.02)
                while True:
                    try:
                        data = await asyncio.wait_for(loop.sock_recv(rtp, 2048), 0.001)
                    except TimeoutError:
                        break
                    back += [_linear(b) for b in data[12:]]
            x.send(in_dialog(x, "BYE", ok, ok.call_id))
            await next_response(x, 200)
            return back
    back = run(main())
    assert len(back) >= 160 * 50, f"only {len(back)} samples came back"
    window = back[-1600:]
    energy_1k, energy_400 = _goertzel(window, 1000), _goertzel(window, 400)
    assert energy_1k > 1000 * energy_400  # our own 1 kHz tone, not noise
    rows = wait(lambda: apbx.svc.cdr_query(), what="the call record")
    assert [(r["caller"], r["callee"], r["disposition"]) for r in rows] == [("201", "app:echo", "answered")]


def test_unknown_application_gets_404_and_a_cdr_reason(apbx):
    async def main():
        async with SipClient(("127.0.0.1", apbx.port)) as x:
            req = x.request("INVITE", f"sip:*44@127.0.0.1:{apbx.port}", "201", body=sdp(4000))
            await invite(x, req, "201", ALICE["sip_secret"])
            return await x.final()
    assert run(main()).status == 404
    [row] = wait(lambda: apbx.svc.cdr_query(), what="the call record")
    assert (row["callee"], row["disposition"], row["end_reason"]) == ("", "failed", "unknown_application")


def test_registry_kinds_and_destinations():
    async def app(channel):
        pass
    voicemail = apps.lookup("voicemail:201")  # the real one (services/pbx/voicemail), put back after
    apps.register("voicemail", app)
    try:
        assert apps.lookup("voicemail:201") is app
        assert apps.lookup("app:echo") is apps.echo
        assert apps.lookup("app:unknown") is None
        apps.unregister("voicemail")
        assert apps.lookup("voicemail:201") is None  # a kind nobody registered
    finally:
        apps.register("voicemail", voicemail)
    with pytest.raises(ValueError):
        apps.register("nonsense", app)


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_baresip_hears_itself_through_echo(apbx):
    with Baresip("bob", user="202", password=BOB["sip_secret"], registrar=apbx.registrar) as bob:
        bob.register()
        bob.dial(f"sip:*43@{apbx.registrar}")
        bob.wait_for("CALL_ESTABLISHED")
        stats = bob.wait_rtp(tx=50, rx=50)  # nobody but the echo sends bob anything
        assert stats["rx"] >= 50
        [call] = apbx.svc.active_calls()
        assert call["callee"] == "app:echo" and call["state"] == "connected"
        bob.hangup()
        bob.wait_for("CALL_CLOSED")


def test_forwarding_to_an_application_and_bad_destinations(tmp_path):
    cfg = config([ALICE, BOB, CAROL, DAVE], extensions={"203": {"forward_always": "app:echo"}})
    with PbxRunner(tmp_path / "pbx", cfg) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                req = x.request("INVITE", f"sip:203@127.0.0.1:{pbx.port}", "201", body=sdp(4000))
                await invite(x, req, "201", ALICE["sip_secret"])
                ok = await next_response(x, 200)
                x.send(in_dialog(x, "ACK", ok, ok.call_id))
                x.send(in_dialog(x, "BYE", ok, ok.call_id))
                return ok
        assert run(main()).status == 200
        [row] = wait(lambda: pbx.svc.cdr_query(), what="the call record")
        assert (row["dialled"], row["callee"]) == ("203", "app:echo")
    for bad in ({"application_numbers": {"*43": "echo"}}, {"application_numbers": {"4 3": "app:echo"}},
                {"extensions": {"203": {"forward_always": "app:"}}}, {"max_call_duration": {"national": -1}}):
        with pytest.raises(ValueError):
            config([ALICE, BOB, CAROL, DAVE], **bad)
