"""Ports for test listeners that must be named before they are bound (Dovecot's, a peer's).

Binding port 0 and closing it hands out a port of the kernel's ephemeral range: by the time the daemon
binds it, a client socket of the same run may hold it, or the next call may hand it out again. These
ports come from below that range and are never handed out twice in one run."""
from __future__ import annotations

import random
import socket
from pathlib import Path

_GIVEN: set[int] = set()


def _range() -> tuple[int, int]:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - 12000), low


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def listen_port() -> int:
    """A TCP port free on 127.0.0.1 and ::1, outside the ephemeral range, not given before in this run."""
    low, high = _range()
    if len(_GIVEN) > (high - low) // 2:
        _GIVEN.clear()
    for _ in range(500):
        port = random.randrange(low, high)
        if port not in _GIVEN and _bindable(port):
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no free port in {low}-{high}")
