"""Connection caps of the mail listeners: at most `max_connections` per listener and
`max_connections_per_ip` per listener and source address; the connection over the cap is told why
and closed."""
from __future__ import annotations

from collections import Counter


class ConnectionCaps:
    def __init__(self) -> None:
        self.per_listener: Counter[str] = Counter()
        self.per_source: Counter[tuple[str, str]] = Counter()

    def admit(self, kind: str, ip: str, total: int, per_ip: int) -> bool:
        if self.per_listener[kind] >= total or self.per_source[kind, ip] >= per_ip:
            return False
        self.per_listener[kind] += 1
        self.per_source[kind, ip] += 1
        return True

    def release(self, kind: str, ip: str) -> None:
        for counter, key in ((self.per_listener, kind), (self.per_source, (kind, ip))):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
