"""Overload: requests that waited in the socket longer than OVERLOAD_LAG (the PBX is behind) are answered
cheaply: a new INVITE or REGISTER gets 503 with Retry-After instead of being served late (and again for each
retransmission); OPTIONS and in-dialog requests are still handled, an INVITE among them with its 100 Trying
at once (not after TRYING_DELAY: late already); once caught up, calls are served again."""
import socket
import time

import pytest

from services.pbx.sip.message import parse
from services.pbx.sip.stack import OVERLOAD_LAG

from .pbxrunner import PbxRunner
from .test_load_udp import _cfg

HEAD = ("{method} sip:{ruri}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKov{n};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:201@127.0.0.1>;tag=ov{n}\r\nTo: <sip:{ruri}@127.0.0.1>{to_tag}\r\n"
        "Call-ID: overload-{n}\r\nCSeq: 1 {method}\r\nContact: <sip:201@127.0.0.1:{port}>\r\n"
        "Content-Length: 0\r\n\r\n")


def _request(method: str, n: int, port: int, ruri: str = "202", to_tag: str = "") -> bytes:
    return HEAD.format(method=method, ruri=ruri, port=port, n=n, to_tag=to_tag).encode()


def _answers(phone: socket.socket, count: int, trying: set | None = None) -> dict[str, int]:
    """Call-ID -> status of the first final answer to each of `count` requests (Call-IDs of 100s into trying)."""
    got: dict[str, int] = {}
    phone.settimeout(5)
    while len(got) < count:
        msg = parse(phone.recv(65535))
        if msg.status == 100 and trying is not None and msg.call_id not in got:
            trying.add(msg.call_id)
        if msg.status >= 200:
            got.setdefault(msg.call_id, msg.status)
            if msg.status == 503:
                assert msg.get("Retry-After") == "5"
    return got


@pytest.mark.blocks_the_loop
def test_requests_that_waited_too_long_are_turned_away_cheaply_and_dialogs_go_on(tmp_path):
    with PbxRunner(tmp_path / "pbx", _cfg()) as pbx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        port = phone.getsockname()[1]
        behind = [_request("INVITE", 1, port), _request("REGISTER", 2, port, ruri=""),
                  _request("OPTIONS", 3, port), _request("BYE", 4, port, to_tag=";tag=gone"),
                  _request("INVITE", 6, port, to_tag=";tag=gone")]

        def busy() -> None:  # the PBX loop is stuck while the requests wait in its socket
            for data in behind:
                phone.sendto(data, ("127.0.0.1", pbx.port))
            time.sleep(OVERLOAD_LAG + 0.2)

        pbx.sync(busy)
        trying: set[str] = set()
        got = _answers(phone, len(behind), trying)
        assert got == {"overload-1": 503, "overload-2": 503, "overload-3": 200, "overload-4": 481,
                       "overload-6": 481}
        assert trying == {"overload-6"}
        assert pbx.sync(lambda: pbx.svc.core.stack.counters["shed"]) == 2
        phone.sendto(_request("INVITE", 5, port), ("127.0.0.1", pbx.port))  # caught up: served as usual
        assert _answers(phone, 1) == {"overload-5": 407}
