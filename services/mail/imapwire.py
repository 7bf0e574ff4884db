"""IMAP4rev1 wire helpers: argument tokenizer, sequence sets, header extraction, quoting."""
from __future__ import annotations

import re
import time


class ParseError(Exception):
    pass


class Bad(Exception):
    """The command is malformed: tagged BAD."""


class No(Exception):
    """The command failed: tagged NO."""


class Literal(bytes):
    """A literal argument ({n} followed by n bytes)."""


def tokenize(data: bytes, literals: list[bytes] | None = None) -> list:
    """Arguments of one command: atoms and quoted strings (str), literals (bytes), lists (list).
    An atom keeps bracketed parts whole: BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>.
    Literals were cut out by the reader and replaced by NUL + a 4-digit index into `literals`."""
    pos = 0
    stack: list[list] = [[]]
    n = len(data)
    while pos < n:
        ch = data[pos:pos + 1]
        if ch == b" ":
            pos += 1
        elif ch == b"(":
            stack.append([])
            pos += 1
        elif ch == b")":
            if len(stack) == 1:
                raise ParseError("unbalanced parenthesis")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif ch == b'"':
            pos += 1
            out = bytearray()
            while True:
                if pos >= n:
                    raise ParseError("unterminated quoted string")
                c = data[pos]
                if c == 0x5C and pos + 1 < n:
                    out.append(data[pos + 1])
                    pos += 2
                elif c == 0x22:
                    pos += 1
                    break
                else:
                    out.append(c)
                    pos += 1
            stack[-1].append(out.decode("utf-8", "replace"))
        elif ch == b"\x00":
            index = data[pos + 1:pos + 5]
            if not literals or not index.isdigit() or int(index) >= len(literals):
                raise ParseError("unexpected NUL")
            stack[-1].append(Literal(literals[int(index)]))
            pos += 5
        else:
            start = pos
            depth = 0
            while pos < n:
                c = data[pos:pos + 1]
                if c == b"[":
                    depth += 1
                elif c == b"]":
                    depth -= 1
                elif depth == 0 and c in (b" ", b"(", b")"):
                    break
                pos += 1
            if depth:
                raise ParseError("unbalanced bracket")
            stack[-1].append(data[start:pos].decode("ascii", "replace"))
    if len(stack) != 1:
        raise ParseError("unbalanced parenthesis")
    return stack[0]


LITERAL_AT_END = re.compile(rb"\{(\d{1,9})(\+?)\}$")


def parse_set(text: str, largest: int) -> set[int] | None:
    """A sequence set ("1,3:5,7:*"); '*' is `largest`. None if malformed."""
    result: set[int] = set()
    for part in text.split(","):
        bounds = part.split(":")
        if len(bounds) > 2:
            return None
        values = []
        for b in bounds:
            if b == "*":
                values.append(largest)
            elif b.isdigit() and int(b) > 0:
                values.append(int(b))
            else:
                return None
        low, high = min(values), max(values)
        if high - low > 10_000_000:
            return None
        result.update(range(max(low, 1), high + 1))  # '*' of an empty mailbox names nothing
    return result


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def internal_date(mtime: float) -> str:
    return '"' + time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(mtime)) + '"'


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header block including the blank line, body), CRLF data."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data, b""
    return head + b"\r\n\r\n", body


def header_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    """Only (or all but) the named header fields, with continuation lines, plus the blank line."""
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        keep = (name in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out) + b"\r\n"


def header_value(header: bytes, name: str) -> str:
    text = header.decode("utf-8", "replace").replace("\r\n ", " ").replace("\r\n\t", " ")
    for line in text.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""
