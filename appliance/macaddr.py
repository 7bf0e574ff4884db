"""MAC addresses as the configuration stores them (DHCP reservations, phones)."""
from __future__ import annotations

import re


def normalize_mac(value: str) -> str:
    """Accept aa:bb:.., AA-BB-.., aabb.ccdd.eeff or aabbccddeeff; return aa:bb:cc:dd:ee:ff."""
    digits = re.sub(r"[^0-9a-fA-F]", "", str(value)).lower()
    if len(digits) != 12 or re.sub(r"[0-9a-fA-F:.\-\s]", "", str(value)):
        raise ValueError(f"{value!r} is not a MAC address")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
