"""WireGuard keys (Curve25519, base64) made on the box with the cryptography package."""
from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

RAW = serialization.Encoding.Raw


def private_key() -> str:
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def public_key(private: str) -> str:
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
    return base64.b64encode(key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)).decode()
