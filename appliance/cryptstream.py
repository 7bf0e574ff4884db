"""Passphrase encryption of a byte stream in bounded memory (backups hold every secret and the TLS key).

File: MAGIC, a 16-byte salt, a 7-byte nonce prefix, then chunks of AES-256-GCM. The key is argon2id of
the passphrase (t=3, m=64 MiB). Each chunk seals CHUNK plaintext bytes; the nonce is prefix || 32-bit
counter || last flag (the STREAM construction), and the last chunk is always shorter than CHUNK (maybe
empty), so a reordered, truncated or extended file fails authentication instead of decrypting to less.
"""
from __future__ import annotations

import io
import os
import struct

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"OBXENC1\n"
CHUNK = 64 * 1024
TAG = 16
SALT, PREFIX = 16, 7
KDF = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 1}
MAX_CHUNKS = 2 ** 32 - 1


class DecryptError(Exception):
    """Wrong passphrase, or a file that was altered or cut short."""


def derive_key(passphrase: str, salt: bytes) -> bytes:
    if not passphrase:
        raise ValueError("the passphrase is empty")
    return hash_secret_raw(passphrase.encode(), salt, hash_len=32, type=Type.ID, **KDF)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter > MAX_CHUNKS:
        raise OverflowError("stream too long")
    return prefix + struct.pack(">I?", counter, last)


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC)


class EncryptWriter(io.RawIOBase):
    """A writable file object: what is written reaches `out` encrypted. close() seals the last chunk."""

    def __init__(self, out, passphrase: str) -> None:
        salt, self._prefix = os.urandom(SALT), os.urandom(PREFIX)
        self._aead = AESGCM(derive_key(passphrase, salt))
        self._out, self._buf, self._counter = out, bytearray(), 0
        out.write(MAGIC + salt + self._prefix)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buf += data
        while len(self._buf) > CHUNK:  # keep at least one byte back: a full chunk is never the last
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, None))
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            if len(self._buf) == CHUNK:
                self._seal(bytes(self._buf), last=False)
                self._buf.clear()
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
        super().close()


class DecryptReader(io.RawIOBase):
    """A readable file object over an encrypted stream; raises DecryptError on any alteration."""

    def __init__(self, src, passphrase: str) -> None:
        head = src.read(len(MAGIC) + SALT + PREFIX)
        if not is_encrypted(head) or len(head) < len(MAGIC) + SALT + PREFIX:
            raise DecryptError("not an encrypted OfficeBox file")
        salt, self._prefix = head[len(MAGIC):len(MAGIC) + SALT], head[len(MAGIC) + SALT:]
        self._aead = AESGCM(derive_key(passphrase, salt))
        self._src, self._plain, self._counter, self._done = src, b"", 0, False

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        sealed = self._src.read(CHUNK + TAG)
        last = len(sealed) < CHUNK + TAG
        try:
            self._plain = self._aead.decrypt(_nonce(self._prefix, self._counter, last), sealed, None)
        except (InvalidTag, ValueError):
            first = self._counter == 0
            raise DecryptError("wrong passphrase" if first else "the file was altered or cut short") from None
        self._counter += 1
        if last:
            self._done = True
            if self._src.read(1):
                raise DecryptError("the file has data after its end")

    def readinto(self, buffer) -> int:
        while not self._plain and not self._done:
            self._next()
        n = min(len(buffer), len(self._plain))
        buffer[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n
