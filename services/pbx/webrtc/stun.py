"""The ICE-lite side of connectivity checks (RFC 8445 2.5, RFC 5389): answer a browser's authenticated STUN
Binding requests with its address (XOR-MAPPED-ADDRESS), signed with our ice-pwd and fingerprinted.
A lite agent never sends checks: the browser (controlling) nominates with USE-CANDIDATE. Stdlib only."""
from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import struct

MAGIC = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
USERNAME, MESSAGE_INTEGRITY, FINGERPRINT = 0x0006, 0x0008, 0x8028
XOR_MAPPED_ADDRESS, USE_CANDIDATE = 0x0020, 0x0025
FINGERPRINT_XOR = 0x5354554E
_HEADER = struct.Struct("!HHI12s")


def is_stun(data: bytes) -> bool:
    """RFC 7983 demultiplexing: first byte 0-3 and the magic cookie."""
    return len(data) >= 20 and data[0] < 4 and struct.unpack_from("!I", data, 4)[0] == MAGIC


def _attributes(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, offset of the attribute, value) of each attribute; ValueError when malformed."""
    kind, length, _, _ = _HEADER.unpack_from(data)
    if length + 20 != len(data) or length % 4:
        raise ValueError("bad STUN length")
    found, at = [], 20
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("truncated STUN attribute")
        atype, alen = struct.unpack_from("!HH", data, at)
        if at + 4 + alen > len(data):
            raise ValueError("truncated STUN attribute")
        found.append((atype, at, data[at + 4: at + 4 + alen]))
        at += 4 + ((alen + 3) & ~3)
    return found


def _integrity(data: bytes, upto: int, key: bytes) -> bytes:
    """HMAC-SHA1 over the message up to the MESSAGE-INTEGRITY attribute at `upto`, length set to end after it."""
    head = bytearray(data[:upto])
    struct.pack_into("!H", head, 2, upto - 20 + 24)
    return hmac.new(key, bytes(head), hashlib.sha1).digest()


def check_request(data: bytes, local_ufrag: str, local_pwd: str) -> tuple[bytes, bool] | None:
    """A valid Binding request for us: (its transaction id, whether it nominates); None otherwise."""
    try:
        kind, _, _, tid = _HEADER.unpack_from(data)
        if kind != BINDING_REQUEST:
            return None
        attrs = _attributes(data)
    except (ValueError, struct.error):
        return None
    username = next((v for t, _, v in attrs if t == USERNAME), b"")
    if username.split(b":")[0] != local_ufrag.encode():
        return None
    mi = next(((at, v) for t, at, v in attrs if t == MESSAGE_INTEGRITY), None)
    if mi is None or not hmac.compare_digest(mi[1], _integrity(data, mi[0], local_pwd.encode())):
        return None
    return tid, any(t == USE_CANDIDATE for t, _, _ in attrs)


def success(tid: bytes, addr: tuple[str, int], local_pwd: str) -> bytes:
    """The Binding success response to `tid`, telling the browser the address it came from."""
    ip = ipaddress.ip_address(addr[0])
    port = addr[1] ^ (MAGIC >> 16)
    if ip.version == 4:
        value = struct.pack("!BBH", 0, 1, port) + struct.pack("!I", int(ip) ^ MAGIC)
    else:
        xor = (MAGIC.to_bytes(4, "big") + tid)
        value = struct.pack("!BBH", 0, 2, port) + bytes(a ^ b for a, b in zip(ip.packed, xor, strict=True))
    body = struct.pack("!HH", XOR_MAPPED_ADDRESS, len(value)) + value
    msg = _HEADER.pack(BINDING_SUCCESS, len(body), MAGIC, tid) + body
    mac = _integrity(msg + b"\0" * 24, len(msg), local_pwd.encode())
    signed = body + struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
    msg = _HEADER.pack(BINDING_SUCCESS, len(signed), MAGIC, tid) + signed
    with_fp = bytearray(msg)
    struct.pack_into("!H", with_fp, 2, len(msg) - 20 + 8)
    crc = (binascii.crc32(bytes(with_fp)) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return bytes(with_fp) + struct.pack("!HHI", FINGERPRINT, 4, crc)


def request(tid: bytes, username: str, pwd: str, nominate: bool = True) -> bytes:
    """A Binding request as a controlling browser sends it (the benchmark's peer and the tests)."""
    user = username.encode()
    attrs = struct.pack("!HH", USERNAME, len(user)) + user + b"\0" * (-len(user) % 4)
    if nominate:
        attrs += struct.pack("!HH", USE_CANDIDATE, 0)
    msg = _HEADER.pack(BINDING_REQUEST, len(attrs), MAGIC, tid) + attrs
    mac = _integrity(msg, len(msg), pwd.encode())
    signed = attrs + struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
    return _HEADER.pack(BINDING_REQUEST, len(signed), MAGIC, tid) + signed
