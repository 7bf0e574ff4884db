"""What a change touched, to merge two admins' changes only when they touch different settings.

A change is {path: new value} over the JSON document, a path being a tuple of keys and list indexes.
Dicts are compared key by key and lists of the same length item by item; a list whose length changed
(an item added or removed) is one change of the whole list, so two changes to the same list's items
never merge by position.
"""
from __future__ import annotations

import copy
from typing import Any

Path = tuple[str | int, ...]
REMOVED = object()  # the key was deleted


def leaf_changes(old: Any, new: Any, path: Path = ()) -> dict[Path, Any]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[Path, Any] = {}
        for key in old.keys() | new.keys():
            if key not in new:
                out[path + (key,)] = REMOVED
            elif key not in old:
                out[path + (key,)] = new[key]
            else:
                out.update(leaf_changes(old[key], new[key], path + (key,)))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = {}
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            out.update(leaf_changes(a, b, path + (index,)))
        return out
    return {} if old == new else {path: new}


def overlapping(first: dict[Path, Any], second: dict[Path, Any]) -> list[Path]:
    """Paths of `first` that are, contain or lie inside a path of `second`."""
    return sorted((p for p in first if any(p[:len(q)] == q or q[:len(p)] == p for q in second)), key=str)


def apply_changes(document: dict, changes: dict[Path, Any]) -> dict:
    """A copy of `document` with `changes` made (their paths exist there: they do not overlap others)."""
    out = copy.deepcopy(document)
    for path, value in changes.items():
        node = out
        for part in path[:-1]:
            node = node[part]
        if value is REMOVED:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return out


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)
