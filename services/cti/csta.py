"""CSTA XML (ECMA-323, Phase III edition 3) and ECMA-354 application session messages, and the framing
CSTA XML over TCP uses in the field: an 8-byte header before each XML document,

    bytes 0-1  0x00 0x00
    bytes 2-3  the length of the whole message, header included (unsigned, big-endian)
    bytes 4-7  the invoke id, four ASCII digits ("0001".."9998"); events carry "9999"

A response carries its request's invoke id."""
from __future__ import annotations

import struct

from .xmlsafe import element, text_element

NS_CSTA = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
NS_ACSE = "http://www.ecma-international.org/standards/ecma-354/appl_session"
HEADER = 8
MAX_MESSAGE = 0xFFFF
EVENT_INVOKE = "9999"


class FramingError(ValueError):
    pass


def frame(invoke_id: str, xml: str) -> bytes:
    body = ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()
    if HEADER + len(body) > MAX_MESSAGE:
        raise FramingError("message too long for the CSTA header")
    return b"\x00\x00" + struct.pack(">H", HEADER + len(body)) + invoke_id.encode("ascii") + body


def parse_header(header: bytes) -> tuple[int, str]:
    """(length of the XML that follows, invoke id) of an 8-byte header."""
    if header[:2] != b"\x00\x00":
        raise FramingError("not a CSTA XML header")
    (length,) = struct.unpack(">H", header[2:4])
    invoke = header[4:8]
    if length < HEADER or not invoke.isdigit():
        raise FramingError("bad CSTA XML header")
    return length - HEADER, invoke.decode("ascii")


# -- building blocks --------------------------------------------------------------------------------
def device_id(device: str) -> str:
    return text_element("deviceIdentifier", device) if device else element("notKnown")


def connection(tag: str, call: str, device: str) -> str:
    return element(tag, text_element("callID", call), text_element("deviceID", device))


def csta(name: str, *content: str) -> str:
    return element(name, *content, ns=NS_CSTA)


def error(category: str, value: str, detail: str = "") -> str:
    """A CSTA error response: category operation | security | stateIncompatibility |
    systemResourceAvailability | subscribedResourceAvailability | performanceManagement | privateData |
    unspecified; value: its ECMA-269 error value."""
    extra = (element("privateData", text_element("private", detail)),) if detail else ()
    return csta("CSTAErrorCode", text_element(category, value), *extra)


def extensions(private: str) -> str:
    """ECMA-323 CSTACommonArguments with one private datum: extensions/privateData/private."""
    return element("extensions", element("privateData", text_element("private", private)))


def private_text(node) -> str:
    """The text of a request's extensions/privateData/private (its own text, or its first child's when the
    private data is an element of the application's namespace)."""
    found = node.child("extensions", "privateData", "private")
    if found is None:
        return ""
    return found.text.strip() or next((c.text.strip() for c in found.children if c.text.strip()), "")


def event(name: str, cross_ref: str, *content: str) -> str:
    return csta(name, text_element("monitorCrossRefID", cross_ref), *content)


CAUSES = {"busy": "busy", "failed": "callNotAnswered", "missed": "callNotAnswered", "notfound": "invalidNumberFormat"}
