"""The baresip driver against real baresip peers (peer-to-peer on loopback, no PBX)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import socket
import threading

import pytest

from tests.netns import Lab, needs_netns
from tests.services.pbx.baresip import Baresip, BaresipError, have_baresip

pytestmark = pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")


def _established(a: Baresip, b: Baresip) -> None:
    a.dial(b.uri)
    b.answer()
    a.wait_for("CALL_ESTABLISHED")
    b.wait_for("CALL_ESTABLISHED")


def test_call_audio_dtmf_hold_hangup():
    with Baresip("a") as a, Baresip("b") as b:
        a.dial(b.uri)
        assert a.wait_for("CALL_RINGING")["peeruri"].startswith(f"sip:b@127.0.0.1:{b.sip_port}")
        incoming = b.answer()
        assert incoming["peeruri"].startswith("sip:a@127.0.0.1")
        assert a.wait_for("CALL_ESTABLISHED")["id"] == incoming["id"]
        b.wait_for("CALL_ESTABLISHED")
        assert a.call_state() == b.call_state() == "CALL_ESTABLISHED"
        assert any("ESTABLISHED" in line for line in a.calls())

        sa = a.wait_rtp(tx=50, rx=50)
        sb = b.wait_rtp(tx=50, rx=50)
        assert sa["codec"].startswith("PCMU") and sa["dir"] == "sendrecv"
        assert sa["remote"].startswith("127.0.0.1:") and sb["remote"].startswith("127.0.0.1:")

        a.send_dtmf("12#")
        b.send_dtmf("9")
        b.wait_for("CALL_DTMF_START", param="#")
        a.wait_for("CALL_DTMF_START", param="9")
        assert b.dtmf_received == "12#" and a.dtmf_received == "9"

        assert "hold" in a.hold()
        _wait_dir(a, "sendonly")
        _wait_dir(b, "recvonly")
        a.resume()
        _wait_dir(a, "sendrecv")
        _wait_dir(b, "sendrecv")
        before = b.rtp_stats()["rx"]
        b.wait_rtp(rx=before + 25)

        a.hangup()
        assert a.wait_for("CALL_CLOSED")["id"] == incoming["id"]
        b.wait_for("CALL_CLOSED")
        assert a.rtp_stats() == {} and a.calls() == []
        proc, conf_dir = a.proc, a.dir
    assert proc.poll() is not None and a.proc is None and not conf_dir.exists()


def _wait_dir(ua: Baresip, direction: str) -> None:
    for _ in range(50):
        if ua.rtp_stats().get("dir") == direction:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"{ua.name}: media direction {ua.rtp_stats()} != {direction}")


def test_reject_and_cancel():
    with Baresip("a") as a, Baresip("b") as b:
        a.dial(b.uri)
        b.wait_for("CALL_INCOMING")
        b.reject()
        assert a.wait_for("CALL_CLOSED")["param"]    # reason text, e.g. "486 Busy Here"
        b.wait_for("CALL_CLOSED")
        a.dial(b.uri)
        b.wait_for("CALL_INCOMING")
        a.wait_for("CALL_RINGING")
        a.hangup()                                    # CANCEL before answer
        b.wait_for("CALL_CLOSED")
        assert b.call_state() == "CALL_CLOSED"


def test_blind_transfer_and_tcp():
    with Baresip("a", transport="tcp") as a, Baresip("b", transport="tcp") as b, \
            Baresip("c", transport="tcp", auto_answer=True) as c:
        _established(a, b)
        b.transfer(c.uri)
        assert a.wait_for("TRANSFER")["param"].startswith(f"sip:c@127.0.0.1:{c.sip_port}")
        c.wait_for("CALL_ESTABLISHED")
        a.wait_for("CALL_ESTABLISHED")
        b.wait_for("CALL_CLOSED")
        c.wait_rtp(tx=20, rx=20)
        c.hangup()
        a.wait_for("CALL_CLOSED")


def test_g722_call():
    with Baresip("a", codecs=("g722",)) as a, Baresip("b", codecs=("g722", "pcmu"), auto_answer=True) as b:
        a.dial(b.uri)
        a.wait_for("CALL_ESTABLISHED")
        stats = a.wait_rtp(tx=10, rx=10)
        assert stats["codec"].startswith("G722")
        a.hangup()
        b.wait_for("CALL_CLOSED")


def test_wait_for_is_bounded_and_errors_are_clear():
    with Baresip("a", timeout=1) as a:
        with pytest.raises(BaresipError, match="timed out waiting for CALL_INCOMING"):
            a.answer(timeout=0.5)
        with pytest.raises(BaresipError, match="no registrar"):
            a.register()
        with pytest.raises(BaresipError):
            a.command("no-such-command")


class _Registrar:
    """A minimal digest (MD5) registrar on loopback: just enough to exercise baresip's REGISTER."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.registered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                continue
            text = data.decode(errors="replace")
            if not text.startswith("REGISTER "):
                continue
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            hdrs = [h for h in head[1:] if re.match(r"(?i)(via|from|to|call-id|cseq):", h)]
            user = re.search(r"(?im)^to:.*?sip:([^@>;]+)@", text).group(1)
            auth = re.search(r'(?im)^authorization: digest ([^\r\n]*)', text)
            if auth and self._valid(auth.group(1), user):
                self.registered.add(user)
                contact = re.search(r"(?im)^contact: ([^\r\n]*)", text).group(1)
                reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(hdrs) + f"\r\nContact: {contact};expires=60"
            else:
                reply = "SIP/2.0 401 Unauthorized\r\n" + "\r\n".join(hdrs) + (
                    f'\r\nWWW-Authenticate: Digest realm="lab", nonce="{secrets.token_hex(8)}", '
                    'algorithm=MD5, qop="auth"')
            self.sock.sendto((reply + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)

    def _valid(self, params: str, user: str) -> bool:
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', params))
        if user not in self.users or p.get("username") != user:
            return False
        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()
        ha1 = md5(f"{user}:{p['realm']}:{self.users[user]}")
        ha2 = md5(f"REGISTER:{p['uri']}")
        expect = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        return p.get("response") == expect


def test_register_with_digest():
    reg = _Registrar({"100": "right-secret"})
    try:
        with Baresip("ok", user="100", password="right-secret", registrar=f"127.0.0.1:{reg.port}") as ok:
            ev = ok.register()
            assert ev["accountaor"] == "sip:100@127.0.0.1"
            assert reg.registered == {"100"}
            conf = (ok.dir / "accounts")
            assert oct(os.stat(conf).st_mode & 0o777) == "0o600"
        with Baresip("bad", user="100", password="wrong", registrar=f"127.0.0.1:{reg.port}") as bad, \
                pytest.raises(BaresipError, match="registration failed"):
            bad.register()
    finally:
        reg.close()


@pytest.mark.slow
@needs_netns
def test_call_between_namespaces():
    with Lab() as lab:
        h1, h2 = lab.host("ua1"), lab.host("ua2")
        lab.link(h1, "10.77.0.1/24", h2, "10.77.0.2/24")
        with Baresip("n1", host=h1, addr="10.77.0.1") as a, Baresip("n2", host=h2, addr="10.77.0.2") as b:
            _established(a, b)
            sa = a.wait_rtp(tx=25, rx=25)
            assert sa["remote"].startswith("10.77.0.2:")
            b.wait_rtp(tx=25, rx=25)
            b.hangup()
            a.wait_for("CALL_CLOSED")


def test_async_wrappers_do_not_block_the_loop():
    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        task = asyncio.create_task(ticker())
        with Baresip("a") as a, Baresip("b", auto_answer=True) as b:
            await a.aio.dial(b.uri)
            await a.aio.wait_for("CALL_ESTABLISHED")
            stats = await b.aio.wait_rtp(tx=10, rx=10)
            await b.aio.hangup()
            await a.aio.wait_for("CALL_CLOSED")
        task.cancel()
        return ticks, stats
    ticks, stats = asyncio.run(scenario())
    assert ticks > 10 and stats["rx"] >= 10


def test_start_retries_when_a_port_was_taken(monkeypatch):
    """If baresip cannot take its control port (another process got it first), start() tries once more."""
    import tests.services.pbx.baresip as driver
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)   # not baresip: connecting works, but no answer to "uanew" ever comes
    calls, spawns = [], []
    real_port, real_spawn = driver._free_port, Baresip._spawn

    def free_port(addr):
        calls.append(addr)
        return taken.getsockname()[1] if len(calls) == 2 else real_port(addr)   # 2nd: the control port

    def spawn(self):
        spawns.append(1)
        real_spawn(self)
    monkeypatch.setattr(driver, "_free_port", free_port)
    monkeypatch.setattr(Baresip, "_spawn", spawn)
    try:
        with Baresip("r", timeout=2) as ua:
            assert ua.calls() == [] and ua.ctrl_port != taken.getsockname()[1]
        assert len(spawns) == 2
    finally:
        taken.close()
