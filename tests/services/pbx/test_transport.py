"""The running stack under malformed input (UDP and TCP), 400 answers, and RFC 3261 timer behaviour."""
import secrets
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.pbx.sip.message import Response, parse

from .test_message import INVITE

OPTIONS = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%s;rport\r\n"
           b"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")


def udp(pbx) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", pbx.port))
    s.settimeout(2)
    return s


@pytest.fixture
def pbx(tmp_path):
    """Loopback is trusted here: the fuzzing below would otherwise trip the flood guard."""
    from .conftest import ALICE
    from .pbxrunner import PbxRunner, config
    with PbxRunner(tmp_path / "pbx", config([ALICE], abuse={"trusted": ["127.0.0.1"]})) as runner:
        yield runner


def alive(pbx) -> None:
    with udp(pbx) as s:
        token = secrets.token_hex(6).encode()
        s.send(OPTIONS % (token, token))
        resp = parse(s.recv(65535))
        assert isinstance(resp, Response) and resp.status == 200


def test_malformed_request_gets_400_with_reason(pbx):
    with udp(pbx) as s:
        s.send(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
        resp = parse(s.recv(65535))
        assert resp.status == 400 and "CSeq" in resp.get("Warning")
        s.send(b"\x00garbage without any structure\r\n\r\n")
        s.settimeout(0.3)
        try:
            s.recv(65535)
            raise AssertionError("garbage without a Via must be dropped silently")
        except TimeoutError:
            pass
    alive(pbx)
    assert pbx.svc.status().figures["malformed_messages"] == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(INVITE) - 1), st.binary(max_size=3)), min_size=1, max_size=5),
       st.binary(max_size=200))
def test_mutated_datagrams_never_break_the_server(pbx, edits, noise):
    data = bytearray(INVITE)
    for pos, repl in edits:
        data[pos:pos + len(repl)] = repl
    with udp(pbx) as s:
        s.send(bytes(data))
        s.send(noise)
    alive(pbx)


def test_tcp_framing_garbage_and_keepalive(pbx):
    req = OPTIONS.replace(b"UDP", b"TCP")
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as c:
        c.sendall(b"\r\n\r\n")  # RFC 5626 ping
        assert c.recv(2) == b"\r\n"
        whole = req % (b"t1", b"tcp-1") + req % (b"t2", b"tcp-2")
        for i in range(0, len(whole), 7):  # byte dribble: framing by Content-Length
            c.sendall(whole[i:i + 7])
        buf = b""
        deadline = time.monotonic() + 3
        while buf.count(b"SIP/2.0 200") < 2 and time.monotonic() < deadline:
            buf += c.recv(65535)
        assert buf.count(b"SIP/2.0 200") == 2
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as c:
        c.sendall(b"NONSENSE\r\nContent-Length: abc\r\n\r\n")
        c.settimeout(2)
        assert c.recv(100) == b""  # unframeable: connection closed
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as c:
        c.sendall(b"X" * 70000)  # no end of headers within the size limit
        c.settimeout(2)
        try:
            assert c.recv(100) == b""
        except ConnectionResetError:
            pass
    alive(pbx)


def test_invite_final_response_retransmitted_until_ack(pbx):
    """Timer G: a non-2xx final answer to INVITE is resent over UDP until the ACK; then silence.
    (A 420, not a challenge: challenges go out statelessly, once.)"""
    pbx.sync(setattr, pbx.svc.core.stack.timers, "T1", 0.05)
    with udp(pbx) as s:
        invite = INVITE.replace(b"192.0.2.10:5060", b"127.0.0.1:%d" % s.getsockname()[1])
        invite = invite.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: 100rel\r\n")
        s.send(invite)
        seen = []
        deadline = time.monotonic() + 3
        while len([m for m in seen if m.status == 420]) < 3 and time.monotonic() < deadline:
            seen.append(parse(s.recv(65535)))
        finals = [m for m in seen if m.status == 420]
        assert seen[0].status == 420 and len(finals) >= 3  # answered at once: no 100 Trying before it
        assert len({m.get("To") for m in finals}) == 1  # the same response (To tag), resent
        s.send(invite)  # a retransmitted INVITE is absorbed by the transaction: same answer
        assert parse(s.recv(65535)).get("To") == finals[0].get("To")
        ack = (b"ACK sip:202@pbx.office.lan SIP/2.0\r\nVia: " + finals[0].get("Via").encode() + b"\r\n"
               b"From: " + finals[0].get("From").encode() + b"\r\nTo: " + finals[0].get("To").encode() +
               b"\r\nCall-ID: " + finals[0].call_id.encode() + b"\r\nCSeq: 314159 ACK\r\nContent-Length: 0\r\n\r\n")
        s.send(ack)
        time.sleep(0.3)
        s.settimeout(0.1)
        try:
            while True:
                s.recv(65535)  # drain what crossed the ACK
        except TimeoutError:
            pass
        s.settimeout(0.6)
        try:
            s.recv(65535)
            raise AssertionError("response still retransmitted after ACK")
        except TimeoutError:
            pass
