"""Voicemail PINs: 4 to 12 digits, stored argon2-hashed (User.voicemail_pin_hash), never shown."""
from __future__ import annotations

import re

from argon2 import PasswordHasher

PIN = re.compile(r"^[0-9]{4,12}$")
_hasher = PasswordHasher()


def hash_pin(pin: str) -> str:
    """The argon2 hash of a PIN; ValueError (for the admin) when it is not 4 to 12 digits."""
    if not PIN.match(pin or ""):
        raise ValueError("a voicemail PIN has 4 to 12 digits")
    return _hasher.hash(pin)
