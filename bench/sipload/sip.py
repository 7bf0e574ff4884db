"""Just enough SIP for a load generator: a lean parser, request/response builders, digest answers.

Independent of services/pbx on purpose: the generator must not share the bugs of what it measures.
"""
from __future__ import annotations

import hashlib
import re
import secrets

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type"}
_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


class SipError(ValueError):
    pass


class Msg:
    """A parsed message: `method` (requests) or `status` (responses), `uri`, headers, body."""

    __slots__ = ("body", "headers", "method", "reason", "status", "uri")

    def __init__(self) -> None:
        self.method = ""
        self.status = 0
        self.reason = ""
        self.uri = ""
        self.headers: list[tuple[str, str]] = []    # (lower-case name, value), in order
        self.body = ""

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def call_id(self) -> str:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        num, _, method = self.get("cseq").partition(" ")
        return int(num), method.strip()

    @property
    def branch(self) -> str:
        match = re.search(r";\s*branch=([^;,\s]+)", self.get("via"))
        return match.group(1) if match else ""


def parse(data: bytes) -> Msg:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("not UTF-8") from exc
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        raise SipError("no end of headers")
    lines = head.split("\r\n")
    msg = Msg()
    first = lines[0].split(" ", 2)
    if len(first) < 2:
        raise SipError("bad start line")
    if first[0] == "SIP/2.0":
        if not first[1].isdigit():
            raise SipError("bad status")
        msg.status = int(first[1])
        msg.reason = first[2] if len(first) > 2 else ""
    else:
        msg.method, msg.uri = first[0], first[1]
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError("bad header line")
        key = name.strip().lower()
        key = COMPACT.get(key, key)
        value = value.strip()
        if key == "via" and "," in value:   # several Vias in one header line
            msg.headers += [(key, v.strip()) for v in value.split(",")]
        else:
            msg.headers.append((key, value))
    msg.body = body
    return msg


def tag_of(header: str) -> str:
    match = re.search(r";\s*tag=([^;>\s]+)", header)
    return match.group(1) if match else ""


def uri_of(header: str) -> str:
    """The URI inside a name-addr header (Contact, From, To)."""
    match = re.search(r"<([^>]+)>", header)
    return match.group(1) if match else header.split(";", 1)[0].strip()


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(5)


def build_request(method: str, uri: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    lines = [f"{method} {uri} SIP/2.0"] + [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def build_response(req: Msg, status: int, reason: str, to_tag: str = "", extra: list[tuple[str, str]] = (),
                   body: str = "") -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for key, value in req.headers:
        if key in ("via", "record-route"):
            lines.append(f"{key.title()}: {value}")
    to = req.get("to")
    if to_tag and not tag_of(to):
        to += f";tag={to_tag}"
    lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}", f"CSeq: {req.get('cseq')}"]
    lines += [f"{k}: {v}" for k, v in extra]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"unsupported auth scheme {scheme!r}")
    return {k.lower(): v or q for k, q, v in _AUTH_PARAM.findall(rest)}


def digest_answer(challenge: dict[str, str], method: str, uri: str, user: str, password: str,
                  nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization / Proxy-Authorization value for a Digest challenge (MD5 or SHA-256, qop auth)."""
    algorithm = challenge.get("algorithm", "MD5")
    if algorithm.upper() not in ("MD5", "SHA-256"):
        raise SipError(f"unsupported digest algorithm {algorithm!r}")
    fn = hashlib.md5 if algorithm.upper() == "MD5" else hashlib.sha256

    def h(text: str) -> str:
        return fn(text.encode()).hexdigest()
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f"algorithm={algorithm}"]
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, ncv = cnonce or secrets.token_hex(8), f"{nc:08x}"
        response = h(f"{ha1}:{nonce}:{ncv}:{cnonce}:auth:{ha2}")
        parts += [f'cnonce="{cnonce}"', f"nc={ncv}", "qop=auth"]
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


def check_digest(header: str, method: str, password_of, realm: str) -> str | None:
    """Verify an Authorization header (for the self-test UAS); returns the user name if valid."""
    try:
        params = parse_challenge(header)
    except SipError:
        return None
    user = params.get("username", "")
    password = password_of(user)
    if password is None or params.get("realm") != realm:
        return None
    fn = hashlib.sha256 if params.get("algorithm", "MD5").upper() == "SHA-256" else hashlib.md5

    def h(text: str) -> str:
        return fn(text.encode()).hexdigest()
    ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"{method}:{params.get('uri', '')}")
    if params.get("qop") == "auth":
        expect = h(f"{ha1}:{params.get('nonce')}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
    else:
        expect = h(f"{ha1}:{params.get('nonce')}:{ha2}")
    return user if params.get("response") == expect else None


def sdp(addr: str, port: int, session: int) -> str:
    return (f"v=0\r\no=sipload {session} {session} IN IP4 {addr}\r\ns=sipload\r\nc=IN IP4 {addr}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")


def sdp_media_address(body: str) -> tuple[str, int] | None:
    conn = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE)
    media = re.search(r"^m=audio (\d+) ", body, re.MULTILINE)
    if not conn or not media:
        return None
    return conn.group(1), int(media.group(1))
