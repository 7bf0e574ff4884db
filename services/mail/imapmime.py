"""MIME structure for IMAP: ENVELOPE, BODYSTRUCTURE and numbered body parts (RFC 3501 6.4.5, 7.4.2).

Parts are cut from the raw bytes (never re-encoded), so BODY[2] is exactly what the sender wrote.
"""
from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

MAX_DEPTH = 20
_header_parser = BytesHeaderParser(policy=compat32)


@dataclass
class Part:
    header: bytes  # the header block with its blank line
    body: bytes
    info: Message
    children: list["Part"] = field(default_factory=list)  # multipart
    inner: "Part | None" = None  # message/rfc822

    @property
    def maintype(self) -> str:
        return self.info.get_content_maintype()

    @property
    def subtype(self) -> str:
        return self.info.get_content_subtype()


def _split_header(raw: bytes) -> tuple[bytes, bytes]:
    if raw.startswith(b"\r\n"):
        return b"\r\n", raw[2:]
    head, sep, body = raw.partition(b"\r\n\r\n")
    return (head + b"\r\n\r\n", body) if sep else (raw, b"")


def parse(raw: bytes, default: str = "text/plain", depth: int = 0) -> Part:
    """A MIME tree from CRLF message bytes."""
    header, body = _split_header(raw)
    info = _header_parser.parsebytes(header)
    if "content-type" not in info:
        info.set_default_type(default)
        if default == "message/rfc822":
            info["Content-Type"] = default
    part = Part(header, body, info)
    if depth >= MAX_DEPTH:
        return part
    if part.maintype == "multipart":
        boundary = info.get_boundary()
        if boundary:
            child_default = "message/rfc822" if part.subtype == "digest" else "text/plain"
            pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("utf-8", "replace"))
            for piece in pieces[1:]:
                if piece.startswith(b"--"):
                    break
                _, _, content = piece.partition(b"\r\n")
                part.children.append(parse(content, child_default, depth + 1))
    elif (part.maintype, part.subtype) == ("message", "rfc822"):
        part.inner = parse(body, "text/plain", depth + 1)
    return part


def find(root: Part, numbers: list[int]) -> Part | None:
    """The part named by a section number like [2, 1] (BODY[2.1])."""
    part = root
    for n in numbers:
        if part.inner is not None:
            part = part.inner
        if part.children:
            if not 1 <= n <= len(part.children):
                return None
            part = part.children[n - 1]
        elif n != 1:
            return None
    return part


# -- IMAP syntax ------------------------------------------------------------------------------
def nstring(value: str | bytes | None) -> bytes:
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if any(c < 0x20 or c > 0x7E for c in data) or len(data) > 500:
        return b"{%d}\r\n" % len(data) + data
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _params(info: Message, header: str = "content-type") -> bytes:
    params = info.get_params(header=header) or []
    pairs = [(k, v) for k, v in params[1:] if k]
    if not pairs:
        return b"NIL"
    out = []
    for key, value in pairs:
        if isinstance(value, tuple):  # RFC 2231 value
            value = email.utils.collapse_rfc2231_value(value)
        out.append(nstring(key.upper()) + b" " + nstring(str(value)))
    return b"(" + b" ".join(out) + b")"


def _addresses(info: Message, name: str) -> bytes:
    values = info.get_all(name)
    if not values:
        return b"NIL"
    out = []
    for display, address in email.utils.getaddresses([str(v) for v in values]):
        if not address and not display:
            continue
        mailbox, _, host = address.rpartition("@") if "@" in address else (address, "", "")
        out.append(b"(" + b" ".join([nstring(display or None), b"NIL", nstring(mailbox or None),
                                     nstring(host or None)]) + b")")
    return b"(" + b"".join(out) + b")" if out else b"NIL"


def _header(info: Message, name: str) -> str | None:
    value = info.get(name)
    return None if value is None else str(value).replace("\r\n", "").replace("\n", "")


def envelope(part: Part) -> bytes:
    info = part.info
    sender = "sender" if info.get("sender") else "from"
    reply_to = "reply-to" if info.get("reply-to") else "from"
    fields = [nstring(_header(info, "date")), nstring(_header(info, "subject")), _addresses(info, "from"),
              _addresses(info, sender), _addresses(info, reply_to), _addresses(info, "to"),
              _addresses(info, "cc"), _addresses(info, "bcc"), nstring(_header(info, "in-reply-to")),
              nstring(_header(info, "message-id"))]
    return b"(" + b" ".join(fields) + b")"


def _disposition(info: Message) -> bytes:
    value = info.get("content-disposition")
    if value is None:
        return b"NIL"
    kind = str(value).split(";", 1)[0].strip() or "attachment"
    return b"(" + nstring(kind.upper()) + b" " + _params(info, "content-disposition") + b")"


def bodystructure(part: Part, extensible: bool = True) -> bytes:
    info = part.info
    if part.children:
        inner = b"".join(bodystructure(c, extensible) for c in part.children)
        out = inner + b" " + nstring(part.subtype.upper())
        if extensible:
            out += b" " + _params(info) + b" " + _disposition(info) + b" NIL NIL"
        return b"(" + out + b")"
    fields = [nstring(part.maintype.upper()), nstring(part.subtype.upper()), _params(info),
              nstring(_header(info, "content-id")), nstring(_header(info, "content-description")),
              nstring((_header(info, "content-transfer-encoding") or "7BIT").upper()),
              b"%d" % len(part.body)]
    if part.inner is not None:
        fields += [envelope(part.inner), bodystructure(part.inner, extensible), b"%d" % part.body.count(b"\r\n")]
    elif part.maintype == "text":
        fields.append(b"%d" % part.body.count(b"\r\n"))
    if extensible:
        fields += [nstring(_header(info, "content-md5")), _disposition(info), b"NIL", b"NIL"]
    return b"(" + b" ".join(fields) + b")"
