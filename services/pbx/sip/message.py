"""SIP messages: parse (strict, bounded) and serialize. Parsing never raises anything but ParseError."""
from __future__ import annotations

import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from functools import lru_cache

MAX_MESSAGE = 65535
MAX_HEADERS = 128
MAX_LINE = 8192
MAGIC = "z9hG4bK"
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
    "b": "Referred-By", "x": "Session-Expires", "u": "Allow-Events",
}
CANONICAL = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Type", "Content-Length",
    "Route", "Record-Route", "Expires", "Min-Expires", "Authorization", "WWW-Authenticate",
    "Proxy-Authenticate", "Proxy-Authorization", "User-Agent", "Server", "Allow", "Supported", "Require",
    "Unsupported", "Event", "Subscription-State", "Refer-To", "Referred-By", "Replaces", "Retry-After",
    "Warning", "Reason", "Date", "Accept", "Subject", "Content-Encoding", "Allow-Events", "P-Asserted-Identity",
    "Session-Expires", "Timestamp", "Organization", "Diversion")}
CANONICAL["call-id"] = "Call-ID"
CANONICAL["cseq"] = "CSeq"
CANONICAL["www-authenticate"] = "WWW-Authenticate"
_CANONICAL_NAMES = frozenset(CANONICAL.values())  # canonical(n) is n for these
MULTI = {"Via", "Contact", "Route", "Record-Route"}  # comma-separated values are split into several headers
HOST = re.compile(r"[A-Za-z0-9.:_-]+")
VIA = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(;.*)?")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
C1_BYTES = re.compile(rb"[\x80-\x9f]")
CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), 0x7f])  # UTF-8: the same characters
TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
METHOD_LINE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$")
OTHER_VERSION = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/[0-9]+\.[0-9]+$")
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SCHEMES = ("sip", "sips", "tel")
ANSWER_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")  # what a response copies from its request
_QUOTED_ITEM = re.compile(r'(?:"[^"]*"|[^,"])+')  # list items of a value with balanced quotes, no <> or \\
STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 407:
    "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class ParseError(ValueError):
    """The message is malformed; `partial` holds what could be read, to answer `status` when possible
    (400, or 416 unsupported URI scheme, 505 version not supported, 513 message too large)."""

    def __init__(self, reason: str, partial: "Message | None" = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.status = status


class _RandomHex:
    """Hex digits from the OS's CSPRNG (as secrets.token_hex), read 4 KiB at a time: a call takes about
    ten tags, branches and Call-IDs, each otherwise a getrandom() system call of its own."""

    SIZE = 8192  # hex digits per refill

    def __init__(self) -> None:
        self._pool, self._pos = "", 0
        self._lock = threading.Lock()  # two threads never get the same digits
        os.register_at_fork(after_in_child=self.reset)  # a forked child must not repeat the parent's digits

    def reset(self) -> None:
        self._pool, self._pos = "", 0
        self._lock = threading.Lock()

    def take(self, digits: int) -> str:
        with self._lock:
            pos = self._pos
            end = pos + digits
            if end > len(self._pool):
                self._pool, pos, end = secrets.token_hex(self.SIZE // 2), 0, digits
            self._pos = end
            return self._pool[pos:end]


random_hex = _RandomHex().take  # random_hex(n): n hex digits, like secrets.token_hex(n // 2)


def new_tag() -> str:
    return random_hex(12)


def new_branch() -> str:
    return MAGIC + random_hex(16)


def new_call_id() -> str:
    return random_hex(24)


@lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low) or "-".join(p.capitalize() for p in name.split("-"))


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    if '"' not in value and "<" not in value:
        return [p for p in (part.strip() for part in value.split(",")) if p]
    if "<" not in value and "\\" not in value and value.count('"') % 2 == 0:
        return [p for p in (m.group().strip() for m in _QUOTED_ITEM.finditer(value)) if p]
    return _split_commas_scan(value)


def _split_commas_scan(value: str) -> list[str]:
    """split_commas() for any value: one character at a time (escapes, <>, unbalanced quotes)."""
    parts, buf, quote, angle, esc = [], [], False, False, False
    for ch in value:
        if esc:
            buf.append(ch)
            esc = False
            continue
        if quote and ch == "\\":
            esc = True
        elif ch == '"':
            quote = not quote
        elif not quote and ch == "<":
            angle = True
        elif not quote and ch == ">":
            angle = False
        elif ch == "," and not quote and not angle:
            parts.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def parse_params(text: str) -> dict[str, str | None]:
    """';a=b;c' -> {'a': 'b', 'c': None} (names lower-cased, quotes kept out)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    if " " not in text and '"' not in text and text.isprintable():  # no whitespace, no quotes: nothing to strip
        for item in text.split(";"):
            if item:
                name, sep, value = item.partition("=")
                params[name.lower()] = value if sep else None
        return params
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        params[name.strip().lower()] = value if sep else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    if not params:
        return ""
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params.items()])


@dataclass
class Uri:
    scheme: str = "sip"
    user: str = ""
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> "Uri":
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in SCHEMES:
            raise ParseError(f"unsupported URI {text[:60]!r}")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return cls(scheme, number, "", None, parse_params(params))
        rest, _, headers = rest.partition("?")
        rest, _, params = rest.partition(";")
        user, at, hostport = rest.rpartition("@")
        if not at:
            user, hostport = "", rest
        user = user.partition(":")[0]
        if hostport.startswith("["):
            host, _, tail = hostport[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port_text = hostport.partition(":")
        if not host or not HOST.fullmatch(host):
            raise ParseError(f"bad host in URI {text[:60]!r}")
        port = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ParseError(f"bad port in URI {text[:60]!r}")
            port = int(port_text)
        return cls(scheme, user, host, port, parse_params(params), headers)

    def copy(self) -> "Uri":
        return Uri(self.scheme, self.user, self.host, self.port, dict(self.params), self.headers)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{self.user + '@' if self.user else ''}{host}"
        if self.port:
            text += f":{self.port}"
        text += format_params(self.params)
        return text + (f"?{self.headers}" if self.headers else "")


def _quoted(text: str) -> tuple[str, str]:
    """'"a \\"b\\" <c>" <sip:x>' -> ('a "b" <c>', ' <sip:x>'): a leading quoted-string, unescaped, and the rest."""
    out, i = [], 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1:]
        out.append(ch)
        i += 1
    raise ParseError("bad display name: unclosed quote")


@dataclass
class NameAddr:
    """From/To/Contact/Route value: optional display name, URI, header parameters (tag, expires...)."""

    uri: Uri
    display: str = ""
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "NameAddr":
        text = text.strip()
        display = ""
        if text.startswith('"'):  # a quoted display name may hold < > , ; and escaped characters
            display, text = _quoted(text)
            if not text.lstrip().startswith("<"):
                raise ParseError("a quoted display name must be followed by <URI>")
        if "<" in text:
            head, _, rest = text.partition("<")
            uri_text, close, tail = rest.partition(">")
            if not close:
                raise ParseError("unclosed <")
            display = display or head.strip()
            return cls(Uri.parse(uri_text), display, parse_params(tail))
        uri_text, _, tail = text.partition(";")
        return cls(Uri.parse(uri_text), "", parse_params(tail))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def copy(self) -> "NameAddr":
        return NameAddr(self.uri.copy(), self.display, dict(self.params))

    def __str__(self) -> str:
        shown = ""
        if self.display:
            shown = '"' + self.display.replace("\\", "\\\\").replace('"', '\\"') + '" '
        return f"{shown}<{self.uri}>{format_params(self.params)}"


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @classmethod
    def parse(cls, text: str) -> "Via":
        m = VIA.fullmatch(text)
        if not m:
            raise ParseError("bad Via")
        hostport = m.group(2)
        if hostport.startswith("["):
            host, _, tail = hostport[1:].partition("]")
            port_text = tail[1:]
        else:
            host, _, port_text = hostport.partition(":")
        if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
            raise ParseError("bad Via port")
        if not HOST.fullmatch(host):
            raise ParseError("bad Via host")
        return cls(m.group(1).upper(), host, int(port_text) if port_text else None, parse_params(m.group(3) or ""))

    def copy(self) -> "Via":
        return Via(self.transport, self.host, self.port, dict(self.params))

    @property
    def branch(self) -> str:
        return self.params.get("branch") or ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"SIP/2.0/{self.transport} {host}{port}{format_params(self.params)}"


@lru_cache(maxsize=4096)
def _name_addr(text: str) -> NameAddr:
    """Parsed From/To/Contact values, shared by the messages of a dialog: never modified (copy first)."""
    return NameAddr.parse(text)


@lru_cache(maxsize=4096)
def _top_via(text: str) -> Via:
    """Parsed top Via values, shared by the responses of a transaction: never modified (copy first)."""
    return Via.parse(text)


class Message:
    """Common part of requests and responses: ordered headers with canonical names, and a body."""

    def __init__(self) -> None:
        self.headers: list[list[str]] = []
        self.body: bytes = b""
        self.source: tuple[str, str, int] | None = None  # (transport, ip, port) it came from
        self._parsed: dict[str, object] = {}  # From/To/Via objects, dropped on every header change
        self._first: dict[str, str] | None = None  # name -> first value, dropped on every header change

    def _index(self) -> dict[str, str]:
        first = self._first = {}
        for key, value in self.headers:
            if key not in first:
                first[key] = value
        return first

    def get(self, name: str, default: str | None = None) -> str | None:
        first = self._first
        if first is None:
            first = self._index()
        value = first.get(name)  # keys are canonical names: a canonical `name` needs no lookup
        if value is None:
            if name in _CANONICAL_NAMES:
                return default  # absent (the common case for optional headers): no second lookup
            value = first.get(canonical(name))
            if value is None:
                return default
        return value

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        return [v for k, v in self.headers if k == name]

    def _changed(self) -> None:
        self._parsed.clear()
        self._first = None

    def set(self, name: str, value: str) -> None:
        self._changed()
        name = canonical(name)
        for item in self.headers:
            if item[0] == name:
                item[1] = value
                self.headers = [h for h in self.headers if h[0] != name or h is item]
                return
        self.headers.append([name, value])

    def add(self, name: str, value: str, first: bool = False) -> None:
        if self._parsed:
            self._parsed.clear()
        self._first = None
        item = [canonical(name), value]
        if first:
            self.headers.insert(0, item)
        else:
            self.headers.append(item)

    def remove(self, name: str) -> None:
        self._changed()
        name = canonical(name)
        self.headers = [h for h in self.headers if h[0] != name]

    def replace_first(self, name: str, value: str) -> None:
        """Replace the value of the first `name` header in place (e.g. the top Via with received/rport)."""
        self._changed()
        name = canonical(name)
        for item in self.headers:
            if item[0] == name:
                item[1] = value
                return
        self.headers.append([name, value])

    def replace_top_via(self, via: "Via") -> None:
        """replace_first("Via", str(via)); `via` is kept as the parsed top Via when parsing str(via) gives
        it back exactly (no quoted parameter values, which parsing would unquote)."""
        text = str(via)
        for item in self.headers:
            if item[0] == "Via":
                item[1] = text
                break
        else:
            self.headers.append(["Via", text])
        if self._first is not None:
            self._first["Via"] = text
        if '"' in text:
            self._parsed.pop("via", None)
        else:
            self._parsed["via"] = via  # From/To/Contact objects stay valid: only the Via changed

    # typed accessors -------------------------------------------------------------------------
    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        value = self._parsed.get("cseq")  # kept until the headers change, like the objects below
        if value is None:
            num, _, method = (self.get("CSeq") or "").strip().partition(" ")
            value = self._parsed["cseq"] = (int(num), method.strip().upper())
        return value  # type: ignore[return-value]

    # the parsed header objects are kept until the headers change: callers must not modify them
    def _from(self) -> NameAddr:
        obj = self._parsed.get("from")
        if obj is None:
            obj = self._parsed["from"] = _name_addr(self.get("From") or "")
        return obj  # type: ignore[return-value]

    def _to(self) -> NameAddr:
        obj = self._parsed.get("to")
        if obj is None:
            obj = self._parsed["to"] = _name_addr(self.get("To") or "")
        return obj  # type: ignore[return-value]

    def _via(self) -> Via:
        obj = self._parsed.get("via")
        if obj is None:
            obj = self._parsed["via"] = _top_via(self.get("Via") or "")
        return obj  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._from().copy()

    @property
    def to(self) -> NameAddr:
        return self._to().copy()

    @property
    def from_tag(self) -> str | None:
        return self._from().params.get("tag")

    @property
    def to_tag(self) -> str | None:
        return self._to().params.get("tag")

    @property
    def branch(self) -> str:
        """The top Via's branch parameter."""
        return self._via().branch

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return self._via().copy()

    def _contacts(self) -> list[NameAddr]:
        obj = self._parsed.get("contacts")
        if obj is None:
            obj = self._parsed["contacts"] = [_name_addr(v) for v in self.get_all("Contact") if v.strip() != "*"]
        return obj  # type: ignore[return-value]

    def contacts(self) -> list[NameAddr]:
        return [c.copy() for c in self._contacts()]

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self.start_line()]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace") + self.body


class Request(Message):
    def __init__(self, method: str, uri: str | Uri) -> None:
        super().__init__()
        self.method = method.upper()
        self.uri = uri if isinstance(uri, Uri) else Uri.parse(uri)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    @property
    def max_forwards(self) -> int:
        """Hops left (RFC 3261 8.1.1.6; parsing checked it is a number); 70 when absent."""
        value = self.get("Max-Forwards")
        return int(value) if value and value.isdigit() else 70

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__()
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def response_to(request: Request, status: int, reason: str | None = None, to_tag: str | None = None) -> Response:
    """A response copying Via, From, To (+tag), Call-ID and CSeq from the request (RFC 3261 8.2.6)."""
    resp = Response(status, reason)
    headers = resp.headers
    for name, value in request.headers:
        if name == "Via":
            headers.append(["Via", value])
    to = request.get("To") or ""
    if to_tag and status > 100 and ";tag=" not in to.lower():
        to += f";tag={to_tag}"
    headers += (["From", request.get("From") or ""], ["To", to], ["Call-ID", request.get("Call-ID") or ""],
                ["CSeq", request.get("CSeq") or ""])
    return resp


def parse(data: bytes) -> Message:
    """Parse one complete datagram/stream message. Raises ParseError only."""
    try:
        return _parse(data)
    except ParseError:
        raise
    except Exception as exc:  # defensive: any surprise in a malformed message is a parse error
        raise ParseError(f"malformed message ({type(exc).__name__})") from None


_NAMES: dict[str, str] = {}  # raw header name as received -> canonical name (valid names only)


def _header_name(raw: str, line: str, msg: Message) -> str:
    cname = _NAMES.get(raw)
    if cname is None:
        name = raw.strip()
        if not name or not TOKEN.match(name):
            raise ParseError(f"bad header line {line[:40]!r}", msg)
        cname = canonical(name)
        if len(_NAMES) < 1024:
            _NAMES[raw] = cname
    return cname


def _parse(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE:
        raise ParseError("message too large", _salvage(data[:MAX_MESSAGE]), 513)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise ParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = _lenient(head)
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ParseError("empty message")
    first = lines[0].strip()
    if len(head.translate(None, CONTROL_BYTES)) != len(head):  # CONTROL.search(text), faster on the bytes
        raise ParseError("control characters in headers")
    msg: Message
    other_version = False
    m = METHOD_LINE.match(first)
    if not m:
        m = OTHER_VERSION.match(first)
        other_version = m is not None
    if m:
        msg = Request(m.group(1), Uri(host="invalid"))
        uri_text = m.group(2)
    else:
        s = STATUS_LINE.match(first)
        if not s:
            raise ParseError("bad start line")
        msg = Response(int(s.group(1)), s.group(2))
        uri_text = None
    del lines[0]
    if len(head) > MAX_LINE and lines and max(map(len, lines)) > MAX_LINE:
        raise ParseError("header line too long", _salvage(head), 513)
    if "\n " in text or "\n\t" in text:  # folded lines (obsolete, still legal)
        unfolded: list[str] = []
        for line in lines:
            if line[:1] in (" ", "\t") and unfolded:
                unfolded[-1] += " " + line.strip()
            else:
                unfolded.append(line)
        lines = unfolded
    if len(lines) > MAX_HEADERS:
        raise ParseError("too many headers", _salvage(head), 513)
    headers = msg.headers
    first_values: dict[str, str] = {}  # becomes msg._first: the index get() would build
    setdefault = first_values.setdefault
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"bad header line {line[:40]!r}", msg)
        cname = _NAMES.get(name) or _header_name(name, line, msg)
        value = value.strip()
        if cname in MULTI:
            parts = split_commas(value)
            for part in parts:
                headers.append([cname, part])
            if parts and cname not in first_values:
                first_values[cname] = parts[0]
        else:
            headers.append([cname, value])
            setdefault(cname, value)
    msg._first = first_values
    if len(headers) > MAX_HEADERS:
        raise ParseError("too many headers", _salvage(head), 513)
    if other_version:
        raise ParseError("unsupported SIP version in start line", msg, 505)
    if uri_text is not None:
        try:
            msg.uri = Uri.parse(uri_text)  # type: ignore[attr-defined]
        except ParseError as exc:
            unknown = URI_SCHEME.match(uri_text) and uri_text.partition(":")[0].lower() not in SCHEMES
            raise ParseError(exc.reason, msg, 416 if unknown else 400) from None
    length = msg.get("Content-Length")
    if length is not None:
        if not length.isdigit() or len(length) > 6:
            raise ParseError("bad Content-Length", msg)
        n = int(length)
        if len(head) + 4 + n > MAX_MESSAGE:
            raise ParseError("message too large", msg, 513)
        if n > len(body):
            raise ParseError("body shorter than Content-Length", msg)
        body = body[:n]
    msg.body = body
    _validate(msg)
    return msg


def _lenient(head: bytes) -> str:
    """Headers that are not UTF-8 (a Latin-1 display name from an old phone): read as Latin-1, which maps
    every byte to one character, so the message is answered. The start line must still be UTF-8."""
    start, _, rest = head.partition(b"\n")
    try:
        start.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("start line is not UTF-8") from None
    if C1_BYTES.search(rest):  # Latin-1's control characters: neither text encoding
        raise ParseError("headers are not UTF-8", _salvage(head))
    return head.decode("latin-1")


def _salvage(head: bytes) -> "Request | None":
    """The request line and the headers needed to answer (Via, From, To, Call-ID, CSeq) of a request
    too large to parse (so it gets 513 rather than silence). Other headers and bad lines are skipped."""
    lines = head.partition(b"\r\n\r\n")[0].decode("latin-1").replace("\r\n", "\n").split("\n")
    m = METHOD_LINE.match(lines[0].strip()) if lines else None
    if not m:
        return None
    req = Request(m.group(1), Uri(host="invalid"))
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if len(line) > MAX_LINE or not colon or not TOKEN.match(name) or canonical(name) not in ANSWER_HEADERS:
            continue
        cname = canonical(name)
        for part in split_commas(value) if cname == "Via" else [value.strip()]:
            if len(req.headers) < MAX_HEADERS:
                req.headers.append([cname, part])
    return req


def _validate(msg: Message) -> None:
    first = msg._first if msg._first is not None else msg._index()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not first.get(name):
            raise ParseError(f"missing {name}", msg)
    try:
        num, method = msg.cseq
    except ValueError:
        raise ParseError("bad CSeq", msg) from None
    if not 0 <= num < 2**31 or not TOKEN.match(method or "-"):
        raise ParseError("bad CSeq", msg)
    try:
        msg._from(), msg._to(), msg._via(), msg._contacts()  # parse to validate (lower Vias are copied verbatim)
    except ParseError as exc:
        raise ParseError(exc.reason, msg) from None
    if isinstance(msg, Request):
        if method != msg.method:
            raise ParseError("CSeq method does not match", msg)
        mf = msg.get("Max-Forwards")
        if mf is not None and (not mf.isdigit() or len(mf) > 3):
            raise ParseError("bad Max-Forwards", msg)
        exp = msg.get("Expires")
        if exp is not None and (not exp.isdigit() or len(exp) > 10):
            raise ParseError("bad Expires", msg)
    if len(msg.call_id) > 256:
        raise ParseError("Call-ID too long", msg)
