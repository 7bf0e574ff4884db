"""One object per owner (a PBX core, an ACD), made on first use and gone with its owner:

    for_core = PerCore(Voicemail)     # for_core(core) -> that core's Voicemail
    for_core.existing(core)           # None if none was made yet
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerCore(Generic[T]):
    def __init__(self, make: Callable[[object], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[object, T] = weakref.WeakKeyDictionary()

    def __call__(self, owner: object) -> T:
        found = self._made.get(owner)
        if found is None:
            found = self._made[owner] = self._make(owner)
        return found

    def existing(self, owner: object) -> T | None:
        return self._made.get(owner)
