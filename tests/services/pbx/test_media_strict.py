"""Strict RTP source against an attacker: a namespace sprays the PBX's whole RTP range during and after the
set-up of a call between two baresip phones (each in its own namespace). The attacker receives nothing
and injects nothing: every datagram reaching the phones is watched with a packet socket."""
import socket
import struct
import threading
import time
from contextlib import ExitStack

import pytest

from tests.netns import Lab, move_thread, needs_netns

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config

pytestmark = [pytest.mark.slow, pytest.mark.netns, needs_netns,
              pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
BOX = "192.0.2.1"
MARK = b"ATTACKER" * 20  # the payload of every sprayed packet


class Sniffer:
    """Every UDP datagram arriving in `host`'s namespace, seen by an AF_PACKET socket (source, payload)."""

    def __init__(self, host) -> None:
        self.packets: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host.name,), daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self, netns: str) -> None:
        move_thread(netns)
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as s:
            s.settimeout(0.2)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    data, addr = s.recvfrom(65535)
                except TimeoutError:
                    continue
                if addr[2] == socket.PACKET_OUTGOING or data[9] != 17:
                    continue
                header = (data[0] & 15) * 4
                self.packets.append((socket.inet_ntoa(data[12:16]), data[header + 8:]))

    def stop(self) -> list[tuple[str, bytes]]:
        self._stop.set()
        self._thread.join(5)
        return self.packets


class Sprayer:
    """From the attacker's namespace: RTP to every port of the range every 40 ms; counts what comes back."""

    def __init__(self, host, ports: range) -> None:
        self.ports = ports
        self.sent = 0
        self.received: list[tuple[bytes, tuple]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host.name,), daemon=True)
        self._thread.start()

    def _run(self, netns: str) -> None:
        move_thread(netns)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            seq = 0
            while not self._stop.is_set():
                seq += 1
                packet = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x0BADBAD0) + MARK
                for port in self.ports:
                    try:
                        s.sendto(packet, (BOX, port))
                        self.sent += 1
                    except OSError:
                        pass  # ICMP unreachable of an earlier round
                while True:
                    try:
                        self.received.append(s.recvfrom(2048))
                    except BlockingIOError:
                        break
                    except OSError:
                        continue
                time.sleep(0.04)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_attacker_spraying_the_rtp_range_gets_nothing_and_injects_nothing(tmp_path):
    with Lab() as lab, ExitStack() as stack:
        box, home_a, home_b, attacker = lab.host("box"), lab.host("alice"), lab.host("bob"), lab.host("evil")
        lab.link(box, f"{BOX}/24", home_a, "192.0.2.10/24")
        lab.link(box, "10.20.0.1/24", home_b, "10.20.0.2/24")
        lab.link(box, "10.66.0.1/24", attacker, "10.66.0.66/24")
        home_b.run("ip", "route", "add", "default", "via", "10.20.0.1")
        attacker.run("ip", "route", "add", "default", "via", "10.66.0.1")
        cfg = config([ALICE, BOB])
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", cfg, host=BOX, netns=box))
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=pbx.registrar, host=home_a, addr="192.0.2.10"))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar,
                                          host=home_b, addr="10.20.0.2"))
        alice.register()
        bob.register()
        sniffers = {name: Sniffer(host) for name, host in (("alice", home_a), ("bob", home_b), ("evil", attacker))}
        spray = Sprayer(attacker, range(cfg.pbx.lab_rtp_port_min, cfg.pbx.lab_rtp_port_max + 1))
        try:
            time.sleep(0.3)  # the range is under fire before the call exists
            alice.dial("202")
            bob.answer()
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(tx=100, rx=100)  # ... and for 2 s of audio after
            bob.wait_rtp(tx=100, rx=100)
            [call] = pbx.svc.active_calls()
        finally:
            spray.stop()
            seen = {name: sniffer.stop() for name, sniffer in sniffers.items()}
        assert spray.sent > 5000
        assert spray.received == [] and [src for src, _ in seen["evil"] if src == BOX] == []
        for name in ("alice", "bob"):
            from_box = [payload for src, payload in seen[name] if src == BOX]
            assert len(from_box) >= 100  # the sniffer sees the phone's audio
            assert [p for p in from_box if MARK in p] == [], f"attacker media reached {name}"
        assert call["relay"]["201"]["rejected"] + call["relay"]["202"]["rejected"] > 50  # it did reach the relay
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
