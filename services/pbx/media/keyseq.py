"""In-call feature codes in a stream of keys (standard library only: the media engine uses it on RFC 4733
events, call control on SIP INFO keys).

A key that can begin one of the codes is held back; the keys held are swallowed once they make a code,
and passed on (in order, before anything that follows) as soon as they cannot, or when the next key
does not come within `gap` seconds. A key that begins no code passes at once. Codes must be prefix-free
among themselves (the first one completed wins)."""
from __future__ import annotations


class KeySequence:
    def __init__(self, codes=(), gap: float = 2.0) -> None:
        self.codes = tuple(sorted({c for c in codes if c}))
        self.gap = gap
        self.typed = ""
        self.at = 0.0
        self.held: list = []  # what was held back (packets, requests), in order

    def _begins_code(self, typed: str) -> bool:
        return any(code.startswith(typed) for code in self.codes)

    def press(self, key: str, item, now: float) -> tuple[list, str]:
        """A new key (carried by `item`): what passes on now, in order, and the code it completed ("")."""
        out = self.due(now)
        typed = self.typed + key
        if not self._begins_code(typed):
            out += self.release()
            typed = key
            if not self._begins_code(typed):
                return [*out, item], ""
        self.held.append(item)
        self.typed, self.at = typed, now
        if typed in self.codes:
            self.held.clear()
            self.typed = ""
            return out, typed
        return out, ""

    def hold_more(self, item) -> None:
        """More of the key being held (the later packets of one RFC 4733 event)."""
        self.held.append(item)

    def due(self, now: float) -> list:
        """The held keys once the next one is overdue."""
        return self.release() if self.held and now - self.at >= self.gap else []

    def release(self) -> list:
        held, self.held, self.typed = self.held, [], ""
        return held
