"""Requests the PBX cannot take still get the answer RFC 3261 asks for (505, 416, 513, 400 with a To
tag) instead of silence; lenient reading of Latin-1 headers; OPTIONS checked with sipsak; no product
name on the wire by default; the hook an abuse guard counts unparseable messages with."""
import asyncio
import shutil
import socket
import subprocess

import pytest

from services.pbx.sip.message import MAX_HEADERS, ParseError, Response, parse
from services.pbx.sip.stack import SipStack

from .conftest import ALICE, run
from .pbxrunner import PbxRunner, config
from .test_stack import Tu

OPTIONS = ("OPTIONS sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{n};rport\r\n"
           "Max-Forwards: 70\r\nFrom: {name}<sip:t@127.0.0.1>;tag=1\r\nTo: <sip:201@127.0.0.1>\r\n"
           "Call-ID: conf-{n}\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n")


def _exchange(pbx, data: bytes, wait: float = 2.0) -> Response | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait)
        s.sendto(data.replace(b"{port}", str(s.getsockname()[1]).encode()), ("127.0.0.1", pbx.port))
        try:
            return parse(s.recv(65535))
        except TimeoutError:
            return None


def _options(n: int, name: bytes = b"", extra: bytes = b"", start: bytes | None = None) -> bytes:
    text = OPTIONS.replace("{n}", str(n)).encode().replace(b"{name}", name).replace(b"{extra}", extra)
    return text if start is None else start + text[text.index(b"\r\n"):]


def test_parser_says_which_answer_a_bad_request_gets():
    def status(data: bytes) -> int:
        with pytest.raises(ParseError) as err:
            parse(data.replace(b"{port}", b"5060"))
        assert err.value.partial is not None and err.value.partial.get("Via")  # enough to answer
        return err.value.status
    assert status(_options(1, start=b"OPTIONS sip:201@127.0.0.1 SIP/3.0")) == 505
    assert status(_options(2, start=b"OPTIONS http://example.com/ SIP/2.0")) == 416
    assert status(_options(3, start=b"OPTIONS sip:201@bad/host SIP/2.0")) == 400
    assert status(_options(4, extra=b"X-Big: " + b"a" * 9000 + b"\r\n")) == 513
    assert status(_options(5, extra=b"X-A: b\r\n" * MAX_HEADERS)) == 513
    latin1 = parse(_options(6, name='"Ren\xe9e M\xfcller" '.encode("latin-1")).replace(b"{port}", b"5060"))
    assert latin1.from_.display == "Renée Müller"


@pytest.mark.parametrize("data,status", [
    (_options(11, start=b"OPTIONS sip:201@127.0.0.1 SIP/3.0"), 505),
    (_options(12, start=b"OPTIONS im:201@127.0.0.1 SIP/2.0"), 416),
    (_options(13, extra=b"X-Big: " + b"a" * 9000 + b"\r\n"), 513),
    (_options(14, extra=b"X-A: b\r\n" * (MAX_HEADERS + 1)), 513),
    (_options(15, extra=b"CSeq: 2 OPTIONS\r\n").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400),
    (_options(16, name='"Ren\xe9e" '.encode("latin-1")), 200),
    (_options(17, name=b'"Ren\x85e" '), 400),  # a C1 control: not Latin-1 text either
])
def test_every_request_that_can_be_answered_is(pbx, data, status):
    resp = _exchange(pbx, data)
    assert resp is not None, "dropped without an answer"
    assert resp.status == status and resp.to_tag  # a final response always has a To tag


def test_tcp_request_larger_than_the_limit_gets_513(pbx):
    head = _options(21).replace(b"UDP", b"TCP").replace(b"Content-Length: 0", b"Content-Length: 70000")
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as c:
        c.sendall(head.replace(b"{port}", str(c.getsockname()[1]).encode()))
        assert parse(c.recv(65535)).status == 513


@pytest.mark.skipif(not shutil.which("sipsak"), reason="sipsak is not installed (apt-get install sipsak)")
def test_sipsak_options_lists_what_is_supported_and_no_product_name(tmp_path):
    def options(pbx) -> str:
        out = subprocess.run(["sipsak", "-vv", "-s", f"sip:201@127.0.0.1:{pbx.port}"], capture_output=True,
                             text=True, timeout=20)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout
    with PbxRunner(tmp_path / "pbx", config([ALICE])) as pbx:
        reply = options(pbx)
    allow = next(line for line in reply.splitlines() if line.startswith("Allow:"))
    methods = {m.strip() for m in allow.split(":", 1)[1].split(",")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "REFER"} <= methods
    assert "MESSAGE" not in methods and "PRACK" not in methods  # out of dialogs: 405, in calls only
    assert "\nSupported:" in reply  # RFC 3261 11.2
    assert "OfficeBox" not in reply and "\nServer:" not in reply  # nothing to fingerprint by default
    with PbxRunner(tmp_path / "pbx2", config([ALICE], user_agent="Acme Phones")) as pbx:
        assert "\nServer: Acme Phones" in options(pbx)


def test_unparseable_messages_reach_the_abuse_hook():
    class CountingTu(Tu):
        def __init__(self) -> None:
            super().__init__()
            self.malformed = []

        def on_malformed(self, source, reason):
            self.malformed.append((source[0], source[1], reason))

    async def main():
        tu = CountingTu()
        stack = SipStack(tu)
        port = await stack.start("127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            for junk in (b"\x00\x01garbage\r\n\r\n", b"NOTSIP\r\n\r\n", b"INVITE sip:x SIP/2.0\r\n\r\n"):
                await loop.sock_sendto(s, junk, ("127.0.0.1", port))
            for _ in range(100):
                if len(tu.malformed) == 3:
                    break
                await asyncio.sleep(0.01)
        await stack.close()
        assert [m[:2] for m in tu.malformed] == [("udp", "127.0.0.1")] * 3
        assert stack.counters["malformed"] == 3 and all(m[2] for m in tu.malformed)
    run(main())
