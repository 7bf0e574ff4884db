"""Pickup, park and paging between phones that share no codec, with real baresip phones: a G.711-only
(PCMU) phone and a G.722-only one, each sending its own tone (aufile) and recording what it hears
(sndfile). The media engine transcodes between them (services/pbx/media/transcode.py): each phone hears
the other's frequency (Goertzel powers on its recording), in the codec it asked for."""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx.features import park
from services.pbx.media import dsp
from services.pbx.prompts import PromptLibrary
from services.pbx.sip.message import response_to

from . import test_channel as ch
from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config, user
from .rawphone import answer, next_request
from .sipclient import SipClient
from .test_conference_mixer import spectrum_peaks
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif("G722" not in dsp.codecs(), reason="libspandsp (G.722) is not installed")]
LOW, HIGH = 520.0, 1020.0  # the PCMU phone's tone and the G.722 phone's
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")
HEARD = 0.1  # relative power of the other phone's tone in what a phone heard


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return ch.tone_files(tmp_path_factory.mktemp("tones"), [LOW, HIGH])


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    data = tmp_path_factory.mktemp("voice")
    PromptLibrary(data, "en").ensure()
    return data / "cache"


def _box(tmp_path, prompts=None, users=(), **pbx) -> PbxRunner:
    if prompts is not None:
        import shutil
        shutil.copytree(prompts, tmp_path / "pbx" / "cache")
    return PbxRunner(tmp_path / "pbx", config([ALICE, BOB, CAROL, *users], codecs=["PCMU", "PCMA", "G722"], **pbx))


def _phone(stack, pbx, who: dict, source: Path | None, codecs, auto_answer: bool = False):
    kw = {"user": who["extension"], "password": who["sip_secret"], "registrar": pbx.registrar,
          "codecs": codecs, "auto_answer": auto_answer}
    ua = ch.AudioBaresip(who["login"], source, **kw) if source is not None else Baresip(who["login"], **kw)
    ua = stack.enter_context(ua)
    ua.register()
    return ua


def _heard(ua, seconds: float = 2.0) -> dict[float, float]:
    """Powers of both tones in the last `seconds` of the phone's recording so far (the dump's header is
    written at its end: the samples follow the data chunk's tag)."""
    path = max(ua.dir.glob("dump-*-dec.wav"), key=lambda p: (p.name, p.stat().st_size))
    raw = path.read_bytes()
    start = raw.find(b"data") + 8
    count = (len(raw) - start) // 2
    samples = list(memoryview(raw[start:start + 2 * count]).cast("h"))
    fmt = raw.find(b"fmt ")
    rate, channels = struct.unpack_from("<I", raw, fmt + 12)[0], struct.unpack_from("<H", raw, fmt + 10)[0]
    samples = samples[::channels]  # the decoder's rate: 16 kHz for G.722
    return spectrum_peaks(samples[-int(seconds * rate):], rate, [LOW, HIGH])


def _codec(ua) -> str:
    return ua.rtp_stats().get("codec", "").upper()


def _assert_hear_each_other(narrow, wide) -> None:
    assert "PCMU" in _codec(narrow) and "G722" in _codec(wide), (narrow.rtp_stats(), wide.rtp_stats())
    time.sleep(3.0)
    low, high = _heard(narrow), _heard(wide)
    assert low[HIGH] > HEARD, f"the PCMU phone does not hear the G.722 one: {low}"
    assert high[LOW] > HEARD, f"the G.722 phone does not hear the PCMU one: {high}"


def test_a_g722_phone_picks_up_a_pcmu_call(tmp_path, tones):
    with _box(tmp_path, groups=[{"number": "600", "members": ["202", "203"]}]) as pbx, ExitStack() as stack:
        alice = _phone(stack, pbx, ALICE, tones[0], ("pcmu",))
        bob = _phone(stack, pbx, BOB, None, ("pcmu", "g722"))
        carol = _phone(stack, pbx, CAROL, tones[1], ("g722",))
        alice.dial("202")
        bob.wait_for("CALL_INCOMING")
        carol.dial("*8")
        carol.wait_for("CALL_ESTABLISHED")
        alice.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_CLOSED")
        _assert_hear_each_other(alice, carol)
        carol.hangup()
        alice.wait_for("CALL_CLOSED")
    row = next(r for r in pbx.svc.cdr_query() if r["end_reason"] == "picked_up")
    assert (row["caller"], row["callee"]) == ("201", "203")


def test_a_pcmu_phone_retrieves_a_parked_g722_call(tmp_path, tones, prompts):
    with _box(tmp_path, prompts) as pbx, ExitStack() as stack:
        alice = _phone(stack, pbx, ALICE, tones[1], ("g722",))
        bob = _phone(stack, pbx, BOB, None, ("g722", "pcmu"))
        carol = _phone(stack, pbx, CAROL, tones[0], ("pcmu",))
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        bob.wait_rtp(rx=10)
        bob.transfer("*70")
        wait(lambda: pbx.sync(lambda: bool(park.lot(pbx.svc.core))), timeout=20, what="the call parked")
        bob.wait_for("CALL_CLOSED")
        carol.dial("701")
        carol.wait_for("CALL_ESTABLISHED")
        wait(lambda: not pbx.sync(lambda: dict(park.lot(pbx.svc.core))), timeout=10, what="the call retrieved")
        _assert_hear_each_other(carol, alice)
        carol.hangup()
        alice.wait_for("CALL_CLOSED")


async def _erin_hears(pbx, pager, media: socket.socket, seconds: float, during) -> tuple[list[bytes], object]:
    """Erin's scripted phone (G.722 only) answers the page; the RTP packets it receives for `seconds`
    and what `during()` (in a thread, before the pager hangs up) returned."""
    async with SipClient(("127.0.0.1", pbx.port)) as erin:
        assert (await erin.register("205", ERIN["sip_secret"])).status == 200
        await asyncio.to_thread(pager.dial, "650")
        inv = await next_request(erin, "INVITE", timeout=10)
        port = media.getsockname()[1]
        body = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\na=recvonly\r\n").encode()
        answer(erin, inv, 200, "erintag", body)
        packets = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                packets.append(media.recv(2048))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        seen = await asyncio.to_thread(during)
        await asyncio.to_thread(pager.hangup)
        bye = await next_request(erin, "BYE", timeout=10)
        erin.send(response_to(bye, 200))
        return packets, seen


def test_a_page_reaches_g722_phones_and_a_pcmu_phone(tmp_path, tones):
    """baresip 1.0 records nothing of a receive-only call (its decoder dump stays empty), so the baresip
    phones' receiving is counted and erin's scripted G.722 phone decodes and analyses what it gets."""
    groups = [{"number": "650", "name": "Shop floor", "members": ["202", "203", "205"]}]
    with _box(tmp_path, paging_groups=groups, users=[ERIN]) as pbx, ExitStack() as stack:
        alice = _phone(stack, pbx, ALICE, tones[0], ("pcmu",))
        bob = _phone(stack, pbx, BOB, None, ("g722",), auto_answer=True)
        carol = _phone(stack, pbx, CAROL, None, ("pcmu",), auto_answer=True)
        media = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        packets, (wide, narrow) = run(_erin_hears(pbx, alice, media, 3.0, lambda: (bob.rtp_stats(), carol.rtp_stats())))
        assert "G722" in wide.get("codec", "").upper() and "PCMU" in narrow.get("codec", "").upper(), (wide, narrow)
        assert wide["rx"] >= 100 and narrow["rx"] >= 100, (wide, narrow)
        bob.wait_for("CALL_CLOSED")
        carol.wait_for("CALL_CLOSED")
    audio = [p for p in packets if p[1] & 0x7F == 9]
    assert len(audio) >= 100 and len(audio) == len(packets), f"{len(audio)} G.722 packets of {len(packets)}"
    decoder = dsp.Codec("G722")
    pcm = b"".join(decoder.decode(p[12:]) for p in audio[-75:])
    powers = spectrum_peaks(list(memoryview(pcm).cast("h")), 16000, [LOW, HIGH])
    assert powers[LOW] > HEARD and powers[HIGH] < 0.01, powers
