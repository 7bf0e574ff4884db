"""Shortcuts of the SIP message layer give exactly what the plain way gives."""
from hypothesis import given
from hypothesis import strategies as st

from services.pbx.sip.message import ParseError, Request, Via, parse, response_to

BASE = (
    "INVITE sip:202@192.0.2.1 SIP/2.0\r\n"
    "Via: SIP/2.0/{transport} {host};branch=z9hG4bKa1{params}\r\n"
    "v: SIP/2.0/UDP 192.0.2.11;branch=z9hG4bKlower\r\n"
    "From: <sip:201@192.0.2.1>;tag=ft\r\n"
    "To: <sip:202@192.0.2.1>\r\n"
    "i: cid@192.0.2.10\r\n"
    "CSeq: 7 INVITE\r\n"
    "Contact: <sip:201@192.0.2.10>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _invite(transport: str, host: str, params: str) -> Request | None:
    try:
        msg = parse(BASE.format(transport=transport, host=host, params=params).encode())
    except ParseError:
        return None
    return msg if isinstance(msg, Request) else None


@given(st.sampled_from(["UDP", "tcp", "Tls"]),
       st.sampled_from(["192.0.2.10", "192.0.2.10:5062", "[2001:db8::1]:5070", "[::1]", "host.example:05060"]),
       st.text(alphabet='ab=;" \tRr', max_size=30))
def test_replace_top_via_equals_reparsing(transport, host, params):
    msg = _invite(transport, host, params)
    if msg is None:
        return
    before_from, before_contacts = msg.from_, msg.contacts()
    via = msg.top_via
    via.params["received"] = "198.51.100.7"
    if "rport" in via.params:
        via.params["rport"] = "40000"
    msg.replace_top_via(via)
    assert msg.get("Via") == str(via)
    assert msg.get_all("Via")[1] == "SIP/2.0/UDP 192.0.2.11;branch=z9hG4bKlower"
    assert msg._via() == Via.parse(str(via))
    assert msg.top_via == Via.parse(str(via)) and msg.branch == Via.parse(str(via)).branch
    assert msg.from_ == before_from and msg.contacts() == before_contacts


def test_replace_top_via_without_a_via_adds_it():
    msg = Request("OPTIONS", "sip:192.0.2.1")
    msg.replace_top_via(Via("UDP", "192.0.2.9", 5060, {"branch": "z9hG4bKx", "received": '"q"'}))
    assert msg.get_all("Via") == ['SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKx;received="q"']
    assert msg._via().params["received"] == "q"  # quoted values are parsed again, not kept


def test_get_accepts_any_spelling_of_a_name():
    msg = _invite("UDP", "192.0.2.10", ";rport")
    for name in ("Call-ID", "call-id", "CALL-ID", "i"):
        assert msg.get(name) == "cid@192.0.2.10"
    assert msg.get("v") == msg.get("via") == msg.get("Via")
    assert msg.get("X-Missing") is None and msg.get("x-missing", "d") == "d"
    msg.add("x-custom", "1")
    assert msg.get("X-Custom") == msg.get("x-custom") == "1"


def test_response_copies_the_request_headers():
    msg = _invite("UDP", "192.0.2.10", ";rport")
    resp = response_to(msg, 180, to_tag="tt")
    assert resp.headers == [
        ["Via", "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKa1;rport"],
        ["Via", "SIP/2.0/UDP 192.0.2.11;branch=z9hG4bKlower"],
        ["From", "<sip:201@192.0.2.1>;tag=ft"], ["To", "<sip:202@192.0.2.1>;tag=tt"],
        ["Call-ID", "cid@192.0.2.10"], ["CSeq", "7 INVITE"]]
    assert response_to(msg, 100, to_tag="tt").get("To") == "<sip:202@192.0.2.1>"
    assert parse(resp.to_bytes()).to_tag == "tt"
