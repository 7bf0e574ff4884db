"""dig against the box's DNS on loopback, and what its output says."""
from __future__ import annotations

import subprocess


def dig(port: int, *args: str) -> str:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
                         capture_output=True, text=True, timeout=10)
    return out.stdout


def status(output: str) -> str:
    return output.split("status: ", 1)[1].split(",", 1)[0] if "status: " in output else "no answer"


def flags(output: str) -> set[str]:
    """The header flags dig printed (qr, aa, rd, ra, ad, tc...)."""
    return set(output.split(";; flags:", 1)[1].split(";", 1)[0].split()) if ";; flags:" in output else set()
