"""The WebRTC gateway process: for each browser call leg, one UDP port facing the browser (ICE-lite, DTLS-SRTP,
RFC 7983 demultiplexing, rtcp-mux) and one plain RTP port facing the PBX's relay. Media passes through:
SRTP is unprotected toward the relay and RTP protected toward the browser, payloads untouched when the
browser leg speaks G.711/G.722 (every browser implements them), transcoded Opus <-> G.711 for a browser
that offers Opus alone (libopus; services/pbx/webrtc).

Run by the PBX as `python -I engine.py <fd>`; driven over that SOCK_SEQPACKET socket with JSON:
  {"op": "open", "id", "session", "host", "min", "max", "plain_host", "timeout"} -> {"re", "port", "plain_port",
      "ufrag", "pwd", "fingerprint"}
  {"op": "remote", "session", "ufrag", "pwd", "fingerprint"}   the browser's ICE and DTLS parameters
  {"op": "plain_peer", "session", "ip", "port"}                where the relay side receives
  {"op": "transcode", "session", "opus_pt", "plain_pt", "codec"}  a browser that offered Opus but no G.711
  {"op": "close", "session"};  {"op": "ping", "id"} -> {"re"}
Events: {"ev": "up", "session", "setup_ms"}; {"ev": "failed", "session", "reason"}: ice_timeout,
dtls_timeout, dtls_error, fingerprint (the browser's certificate is not the one its SDP named), dtls_closed;
{"ev": "stats", "sessions": [[session, from browser, to browser, dropped, RTCP to the relay side, RTCP to the
browser]]} every second.
RTCP: the browser's (SRTCP, muxed) goes unprotected to the relay side's port + 1, from our plain port + 1; the
far side's comes back protected: each end's sender and receiver reports reach the other, which they describe
(SSRCs, sequence numbers and timestamps pass through untouched). Not while transcoding (Opus): the gateway then
renumbers the packets, so those reports would lie; it sends the browser its own instead every RTCP_EVERY
(rtcp.py: a sender report for the Opus it sends, a report block for the browser's stream), and the far side
goes without the browser's.
A session whose ICE or DTLS does not complete within SETUP_TIMEOUT is closed and reported.
"""
from __future__ import annotations

import datetime
import json
import os
import random
import secrets
import selectors
import socket
import struct
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

try:
    from ..media.dsp import Codec
    from . import stun
    from .opus import FRAME_SAMPLES, RTP_CLOCK, Opus, OpusError
    from .rtcp import Reports
    from .srtp import KEY_LEN, SALT_LEN, Srtp, SrtpError
except ImportError:  # run as a script: its directory is not on the path
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "media")]
    import stun
    from dsp import Codec
    from opus import FRAME_SAMPLES, RTP_CLOCK, Opus, OpusError
    from rtcp import Reports
    from srtp import KEY_LEN, SALT_LEN, Srtp, SrtpError

SETUP_TIMEOUT = 20.0  # seconds for ICE and DTLS to complete
TICK = 0.1
STATS_EVERY = 1.0
RTCP_EVERY = 1.0  # the gateway's own reports to a browser it transcodes for (rtcp.py)
MTU = 1200
_random = random.SystemRandom()


def _certificate() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]:
    """A fresh self-signed ECDSA certificate for DTLS (what browsers do too) and its SHA-256 fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "officebox-webrtc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    return cert, key, fingerprint


def _context(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> SSL.Context:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    # the browser's certificate is self-signed: it is checked against its SDP fingerprint once connected
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    ctx.set_options(SSL.OP_NO_QUERY_MTU)
    return ctx


class Transcoder:
    """Opus on the browser's side, G.711 on the relay's: each packet decoded and coded again, with its own
    sequence numbers and timestamps on each side (Opus' RTP clock is 48 kHz)."""

    def __init__(self, opus_pt: int, plain_pt: int, codec: str) -> None:
        self.opus_pt, self.plain_pt = opus_pt, plain_pt
        self.opus = Opus()
        self.g711 = Codec(codec)
        self.seq = {True: 0, False: 0}
        self.ts = {True: 0, False: 0}

    def _packet(self, to_browser: bool, header: bytes, payload: bytes) -> bytes:
        self.seq[to_browser] = (self.seq[to_browser] + 1) & 0xFFFF
        step = FRAME_SAMPLES * (RTP_CLOCK // 8000) if to_browser else FRAME_SAMPLES
        self.ts[to_browser] = (self.ts[to_browser] + step) & 0xFFFFFFFF
        pt = self.opus_pt if to_browser else self.plain_pt
        return struct.pack("!BBHII", 0x80, (header[1] & 0x80) | pt, self.seq[to_browser], self.ts[to_browser],
                           struct.unpack_from("!I", header, 8)[0]) + payload

    def to_plain(self, rtp: bytes) -> bytes | None:
        header, payload = _split(rtp)
        if payload is None or header[1] & 0x7F != self.opus_pt:
            return None  # telephone-event and comfort noise are not carried across codecs
        pcm = self.opus.decode(payload)
        return self._packet(False, header, self.g711.encode(pcm[:2 * FRAME_SAMPLES]))

    def to_browser(self, rtp: bytes) -> bytes | None:
        header, payload = _split(rtp)
        if payload is None or header[1] & 0x7F != self.plain_pt:
            return None
        return self._packet(True, header, self.opus.encode(self.g711.decode(payload)))

    def close(self) -> None:
        self.opus.close()
        self.g711.close()


def _split(rtp: bytes) -> tuple[bytes, bytes | None]:
    """RTP header and payload (CSRCs and a header extension skipped); payload None when malformed."""
    if len(rtp) < 12:
        return rtp, None
    length = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10 and len(rtp) >= length + 4:
        length += 4 + 4 * struct.unpack_from("!H", rtp, length + 2)[0]
    end = len(rtp) - (rtp[-1] if rtp[0] & 0x20 and rtp[-1] else 0)  # padding
    return (rtp[:12], rtp[length:end]) if length <= end else (rtp, None)


class Session:
    def __init__(self, engine: "Engine", sid: int, host: str, lo: int, hi: int, plain_host: str,
                 timeout: float = SETUP_TIMEOUT) -> None:
        self.engine = engine
        self.timeout = timeout
        self.id = sid
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.remote_fingerprint: str | None = None  # from the browser's SDP
        self.peer_fingerprint: str | None = None  # of the certificate its DTLS handshake showed
        self.browser: tuple[str, int] | None = None
        self.plain_peer: tuple[str, int] | None = None
        self.started = time.monotonic()
        self.checked = False  # a valid connectivity check arrived
        self.up = False
        self.closed = False
        self.sent = self.received = self.dropped = 0
        self.rtcp_out = self.rtcp_in = 0  # RTCP passed to the relay side / to the browser
        self.outbound: Srtp | None = None
        self.inbound: Srtp | None = None
        self.transcoder: Transcoder | None = None
        self.reports: Reports | None = None  # while transcoding
        self.reported = 0.0
        self.dtls = SSL.Connection(engine.ssl, None)
        self.dtls.set_accept_state()
        self.dtls.set_ciphertext_mtu(MTU)
        self.sock = _bind_in_range(host, lo, hi)
        try:
            self.plain, self.plain_rtcp = _bind_pair(plain_host)
        except OSError:
            self.sock.close()
            raise
        for s in (self.sock, self.plain, self.plain_rtcp):
            s.setblocking(False)
        engine.sel.register(self.sock, selectors.EVENT_READ, (self, "browser"))
        engine.sel.register(self.plain, selectors.EVENT_READ, (self, "plain"))
        engine.sel.register(self.plain_rtcp, selectors.EVENT_READ, (self, "plain_rtcp"))

    # -- from the browser -----------------------------------------------------------------------------
    def from_browser(self, data: bytes, addr: tuple[str, int]) -> None:
        first = data[0] if data else 0
        if first < 4:
            checked = stun.check_request(data, self.ufrag, self.pwd) if stun.is_stun(data) else None
            if checked is None:
                self.dropped += 1
                return
            tid, nominated = checked
            self.sock.sendto(stun.success(tid, addr, self.pwd), addr)
            if nominated or self.browser is None:
                self.browser = addr
            self.checked = True
        elif addr != self.browser:
            self.dropped += 1  # media and DTLS only from the address the checks nominated
        elif 20 <= first <= 63:
            self._dtls_in(data)
        elif 128 <= first <= 191 and self.inbound is not None:
            self._media_in(data)
        else:
            self.dropped += 1

    def _dtls_in(self, data: bytes) -> None:
        try:
            self.dtls.bio_write(data)
            if self.peer_fingerprint is None:
                self.dtls.do_handshake()
                self._connected()
            else:
                self.dtls.recv(2048)
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self.fail("dtls_closed")
            return
        except SSL.Error:
            self.fail("dtls_error")
            return
        self._flush_dtls()

    def _connected(self) -> None:
        peer = self.dtls.get_peer_certificate()
        self.peer_fingerprint = peer.to_cryptography().fingerprint(hashes.SHA256()).hex(":").upper() if peer else ""
        self.verify()

    def verify(self) -> None:
        """Media flows once the browser's certificate is the one its SDP names. A browser answering our offer
        may finish DTLS before its answer (with the fingerprint) has reached the PBX: then this waits."""
        if self.up or self.peer_fingerprint is None or self.remote_fingerprint is None:
            return
        if self.peer_fingerprint != self.remote_fingerprint:
            self.fail("fingerprint")
            return
        material = self.dtls.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (KEY_LEN + SALT_LEN))
        client_key, server_key = material[:KEY_LEN], material[KEY_LEN:2 * KEY_LEN]
        salts = material[2 * KEY_LEN:]
        client_salt, server_salt = salts[:SALT_LEN], salts[SALT_LEN:]
        self.outbound = Srtp(server_key, server_salt, outbound=True)  # we are the DTLS server (setup:passive)
        self.inbound = Srtp(client_key, client_salt, outbound=False)
        self.up = True
        self.engine.emit({"ev": "up", "session": self.id, "setup_ms": round(1000 * (time.monotonic() - self.started))})

    def _flush_dtls(self) -> None:
        while self.browser is not None:
            try:
                out = self.dtls.bio_read(4096)
            except SSL.WantReadError:
                return
            try:
                self.sock.sendto(out, self.browser)
            except OSError:
                return

    def _media_in(self, data: bytes) -> None:
        if len(data) > 1 and 192 <= data[1] <= 223:  # SRTCP on the muxed port
            try:
                rtcp = self.inbound.unprotect_rtcp(data)
            except SrtpError:
                self.dropped += 1
                return
            if self.reports is not None:
                self.reports.browser_report(rtcp, time.monotonic())
            elif self.plain_peer is not None:
                try:
                    self.plain_rtcp.sendto(rtcp, (self.plain_peer[0], self.plain_peer[1] + 1))
                    self.rtcp_out += 1
                except OSError:
                    self.dropped += 1
            return
        try:
            rtp = self.inbound.unprotect(data)
        except SrtpError:
            self.dropped += 1
            return
        self.received += 1
        if self.transcoder is not None:
            if len(rtp) >= 12:
                self.reports.arrived(rtp, time.monotonic())
            try:
                rtp = self.transcoder.to_plain(rtp)
            except OpusError:
                rtp = None
            if rtp is None:
                self.dropped += 1
                return
        if self.plain_peer is not None:
            try:
                self.plain.sendto(rtp, self.plain_peer)
            except OSError:
                self.dropped += 1

    # -- from the relay -------------------------------------------------------------------------------
    def from_plain(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.up or self.browser is None or len(data) < 12 or data[0] >> 6 != 2:
            self.dropped += 1
            return
        if self.plain_peer is not None and addr[0] != self.plain_peer[0]:
            self.dropped += 1
            return
        if self.transcoder is not None:
            try:
                data = self.transcoder.to_browser(data)
            except OpusError:
                data = None
            if data is None:
                self.dropped += 1
                return
            self.reports.sent(data, time.monotonic())
        try:
            self.sock.sendto(self.outbound.protect(data), self.browser)
            self.sent += 1
        except (SrtpError, OSError):
            self.dropped += 1

    def from_plain_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        """The far side's RTCP (its relay side's port + 1), protected toward the browser. Not while
        transcoding: the sequence numbers and timestamps its reports speak of are not the browser's."""
        if not self.up or self.browser is None or self.transcoder is not None or len(data) < 8 \
                or data[0] >> 6 != 2 or not 200 <= data[1] <= 206 \
                or self.plain_peer is None or addr[0] != self.plain_peer[0]:
            self.dropped += 1
            return
        try:
            self.sock.sendto(self.outbound.protect_rtcp(data), self.browser)
            self.rtcp_in += 1
        except (SrtpError, OSError):
            self.dropped += 1

    # -- timers and the end ---------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self.up:
            if self.reports is not None and now - self.reported >= RTCP_EVERY:
                self.reported = now
                self._report(now)
            return
        if self.closed:
            return
        if now - self.started > self.timeout:
            self.fail("dtls_timeout" if self.checked else "ice_timeout")
            return
        try:
            self.dtls.DTLSv1_handle_timeout()
        except SSL.Error:
            pass
        self._flush_dtls()

    def _report(self, now: float) -> None:
        packet = self.reports.compound(now)
        if packet is None or self.browser is None:
            return
        try:
            self.sock.sendto(self.outbound.protect_rtcp(packet), self.browser)
            self.rtcp_in += 1
        except (SrtpError, OSError):
            self.dropped += 1

    def fail(self, reason: str) -> None:
        if not self.closed:
            self.engine.emit({"ev": "failed", "session": self.id, "reason": reason})
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.sessions.pop(self.id, None)
        for s in (self.sock, self.plain, self.plain_rtcp):
            self.engine.sel.unregister(s)
            s.close()
        for srtp in (self.outbound, self.inbound):
            if srtp is not None:
                srtp.close()
        if self.transcoder is not None:
            self.transcoder.close()


def _bind_in_range(host: str, lo: int, hi: int) -> socket.socket:
    ports = list(range(lo, hi + 1))
    _random.shuffle(ports)
    for port in ports[:200]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
            return sock
        except OSError:
            sock.close()
    raise OSError(f"no free WebRTC port in {lo}-{hi}")


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on ports p (even) and p + 1 (RTP and its RTCP, as the relay sends it: RFC 3550)."""
    for _ in range(64):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((host, 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if port % 2 == 0:
                rtcp.bind((host, port + 1))
                return rtp, rtcp
        except OSError:
            pass
        rtp.close()
        rtcp.close()
    raise OSError("no free RTP/RTCP port pair for the relay side")


class Engine:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.sessions: dict[int, Session] = {}
        cert, key, self.fingerprint = _certificate()
        self.ssl = _context(cert, key)
        control.setblocking(False)
        self.sel.register(control, selectors.EVENT_READ, None)

    def emit(self, msg: dict) -> None:
        try:
            self.control.send(json.dumps(msg, separators=(",", ":")).encode())
        except BlockingIOError:
            pass  # the PBX is not reading: an event is lost, never the media
        except OSError:
            raise SystemExit(0) from None

    def command(self, msg: dict) -> None:
        op, sid = msg.get("op"), msg.get("session")
        if op == "ping":
            self.emit({"re": msg["id"]})
        elif op == "open":
            try:
                s = Session(self, sid, msg["host"], msg["min"], msg["max"], msg["plain_host"],
                            float(msg.get("timeout", SETUP_TIMEOUT)))
            except OSError as exc:
                self.emit({"re": msg["id"], "error": str(exc)})
                return
            self.sessions[sid] = s
            self.emit({"re": msg["id"], "port": s.sock.getsockname()[1], "plain_port": s.plain.getsockname()[1],
                       "ufrag": s.ufrag, "pwd": s.pwd, "fingerprint": self.fingerprint})
        elif (s := self.sessions.get(sid)) is None:
            return
        elif op == "remote":
            s.remote_fingerprint = (msg.get("fingerprint") or "").upper()
            s.verify()
        elif op == "plain_peer":
            s.plain_peer = (msg["ip"], int(msg["port"]))
        elif op == "transcode" and s.transcoder is None:
            s.transcoder = Transcoder(int(msg["opus_pt"]), int(msg["plain_pt"]), msg["codec"])
            s.reports = Reports(RTP_CLOCK)
        elif op == "close":
            s.close()

    def run(self) -> None:
        last_stats = last_tick = time.monotonic()
        while True:
            for key, _ in self.sel.select(TICK):
                if key.data is None:
                    try:
                        data = self.control.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        return  # the PBX closed the control socket: exit
                    self.command(json.loads(data))
                    continue
                session, side = key.data
                for _ in range(64):
                    try:
                        data, addr = key.fileobj.recvfrom(4096)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if session.closed:
                        break
                    if side == "browser":
                        session.from_browser(data, addr)
                    elif side == "plain":
                        session.from_plain(data, addr)
                    else:
                        session.from_plain_rtcp(data, addr)
            now = time.monotonic()
            if now - last_tick >= TICK:
                last_tick = now
                for s in list(self.sessions.values()):
                    s.tick(now)
            if now - last_stats >= STATS_EVERY and self.sessions:
                last_stats = now
                self.emit({"ev": "stats", "sessions": [[s.id, s.received, s.sent, s.dropped, s.rtcp_out, s.rtcp_in]
                                                       for s in self.sessions.values()]})


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    signal_safe = Engine(control)
    try:
        signal_safe.run()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
