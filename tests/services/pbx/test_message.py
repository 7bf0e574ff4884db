"""SIP parser/serializer: valid messages round-trip; random and mutated input only ever raises ParseError."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.pbx.sip.message import (
    MAX_HEADERS,
    NameAddr,
    ParseError,
    Request,
    Response,
    Uri,
    _split_commas_scan,
    parse,
    response_to,
    split_commas,
)

INVITE = (
    b"INVITE sip:202@pbx.office.lan SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/TCP 192.0.2.11;branch=z9hG4bKabc, SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKdef\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice \\"A\\" Martin" <sip:201@pbx.office.lan>;tag=1928301774\r\n'
    b"To: <sip:202@pbx.office.lan>\r\n"
    b"i: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:201@192.0.2.10:5060;transport=udp>;expires=60, sip:201@192.0.2.12\r\n"
    b"Subject: folded\r\n  header\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\nEXTRA"
)


def test_parse_request_fields():
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE" and msg.uri.user == "202" and msg.uri.host == "pbx.office.lan"
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[2].host == "2001:db8::1" and msg.vias[2].port == 5062
    assert msg.top_via.branch == "z9hG4bK776asdhds" and "rport" in msg.top_via.params
    assert msg.from_.display == 'Alice "A" Martin' and msg.from_.tag == "1928301774"
    assert msg.call_id == "a84b4c76e66710@192.0.2.10"  # compact form i:
    assert msg.cseq == (314159, "INVITE")
    assert [str(c.uri) for c in msg.contacts()] == ["sip:201@192.0.2.10:5060;transport=udp", "sip:201@192.0.2.12"]
    assert msg.contacts()[0].params["expires"] == "60"
    assert msg.get("Subject") == "folded header"
    assert msg.body == b"v=0\n"  # Content-Length wins over trailing bytes


def test_round_trip_and_response():
    msg = parse(INVITE)
    again = parse(msg.to_bytes())
    assert again.headers == msg.headers and again.body == msg.body
    resp = response_to(msg, 180, to_tag="xyz")
    assert isinstance(parse(resp.to_bytes()), Response)
    assert resp.to.tag == "xyz" and resp.get_all("Via") == msg.get_all("Via")


@pytest.mark.parametrize("data,reason", [
    (b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n", "missing"),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), "CSeq method"),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), "CSeq"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 400"), "Content-Length"),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: many"), "Max-Forwards"),
    (INVITE.replace(b"sip:202@pbx.office.lan SIP/2.0", b"http://x SIP/2.0"), "URI"),
    (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), "start line"),
    (INVITE.replace(b"To: <sip", b"To: <mailto"), "URI"),
    (INVITE.replace(b"Max-Forwards", b"Max Forwards"), "header line"),
    (b"\x00\xff" * 10 + b"\r\n\r\n", "UTF-8"),
    (b"HELLO\r\n\r\n", "start line"),
    (INVITE.replace(b"\r\n\r\n", b"\r\n"), "end of headers"),
])
def test_malformed_is_parse_error(data, reason):
    with pytest.raises(ParseError) as err:
        parse(data)
    assert reason in err.value.reason


def test_limits():
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: b\r\n" * (MAX_HEADERS + 1))
    with pytest.raises(ParseError, match="too many headers"):
        parse(many)
    with pytest.raises(ParseError, match="too large"):
        parse(INVITE + b"x" * 70000)
    with pytest.raises(ParseError, match="too long"):
        parse(INVITE.replace(b"Subject: folded", b"Subject: " + b"a" * 9000))


def test_uri_and_nameaddr():
    uri = Uri.parse("sip:alice:pw@[2001:db8::2]:5070;transport=tcp;lr?subject=x")
    assert (uri.user, uri.host, uri.port) == ("alice", "2001:db8::2", 5070)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert str(uri) == "sip:alice@[2001:db8::2]:5070;transport=tcp;lr?subject=x"
    na = NameAddr.parse('"Bob, the builder" <sip:202@h>;tag=9')
    assert na.display == "Bob, the builder" and str(NameAddr.parse(str(na))) == str(na)
    assert split_commas('"a,b" <sip:x,y>, <sip:z>') == ['"a,b" <sip:x,y>', "<sip:z>"]
    with pytest.raises(ParseError):
        Uri.parse("sip:user@host:99999")


def test_display_names_with_angle_brackets_and_escapes_round_trip():
    """A quoted display name may hold < > , ; and escaped quotes (RFC 3261 25.1 quoted-string): the URI is
    the one after it (a web call-back visitor named "<b>Ann</b>" made the agent's call fail)."""
    for name in ("<b>Ann</b>", 'Ann "the <boss>"', "a\\b <sip:evil@x>", "Zoé; <x>, y"):
        na = NameAddr(Uri.parse("sip:0612345678@box.lan"), name, {"tag": "t1"})
        back = NameAddr.parse(str(na))
        assert (back.display, str(back.uri), back.tag) == (name, "sip:0612345678@box.lan", "t1"), str(na)
    for bad in ('"unclosed <sip:a@b>', '"Ann" sip:a@b', '"Ann\\" <sip:a@b'):
        with pytest.raises(ParseError):
            NameAddr.parse(bad)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_parse_error(data):
    try:
        parse(data)
    except ParseError:
        pass


def _mutations():
    lines = INVITE.split(b"\r\n")
    return st.one_of(
        st.tuples(st.just("flip"), st.integers(0, len(INVITE) - 1), st.integers(0, 255)),
        st.tuples(st.just("cut"), st.integers(0, len(INVITE)), st.just(0)),
        st.tuples(st.just("dropline"), st.integers(0, len(lines) - 1), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, len(INVITE)), st.sampled_from(
            [ord(c) for c in ':;,<>"\\\r\n\t @=?%[]'])),
    )


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_mutations(), min_size=1, max_size=6))
def test_mutated_messages_only_parse_error_and_round_trip(mutations):
    data = bytearray(INVITE)
    for kind, pos, value in mutations:
        if kind == "flip" and pos < len(data):
            data[pos] = value
        elif kind == "cut":
            del data[pos:]
        elif kind == "dropline":
            lines = bytes(data).split(b"\r\n")
            if pos < len(lines):
                del lines[pos]
            data = bytearray(b"\r\n".join(lines))
        elif kind == "insert":
            data[pos:pos] = bytes([value])
    try:
        msg = parse(bytes(data))
    except ParseError:
        return
    again = parse(msg.to_bytes())  # what we accept, we serialize to something we accept again

    def fields(m):
        return [h for h in m.headers if h[0] != "Content-Length"]
    assert fields(again) == fields(msg) and again.body == msg.body
    assert again.start_line() == msg.start_line()


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet='ab ,;="<>\\\\', max_size=40))
def test_split_commas_fast_paths_agree_with_the_scan(value):
    assert split_commas(value) == _split_commas_scan(value)


def test_header_index_follows_changes():
    msg = parse(INVITE)
    assert msg.get("Max-Forwards") == "70"
    msg.set("Max-Forwards", "69")
    msg.add("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew", first=True)
    assert msg.get("Max-Forwards") == "69" and msg.branch == "z9hG4bKnew"
    msg.replace_first("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKother")
    assert msg.branch == "z9hG4bKother" and len(msg.get_all("Via")) == 4
    msg.remove("Max-Forwards")
    assert msg.get("Max-Forwards") is None


def test_tags_from_the_random_pool_are_not_repeated_by_a_forked_child_or_another_thread():
    import os
    import threading

    from services.pbx.sip.message import new_branch, new_tag
    new_tag()  # the pool is filled: a child forked now must not hand out what the parent hands out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_tag().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_tag()
    tags: list[str] = []

    def take() -> None:
        tags.extend(new_tag() for _ in range(3000))
    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tags)) == len(tags) == 12000
    assert len(new_tag()) == 12 and new_branch().startswith("z9hG4bK") and len(new_branch()) == 23
