"""Keys a newer firmware wrote that this one does not know: split off before validation, put back on save.

A stored document written by a newer firmware (a newer schema_version, or the same one with fields
added with defaults) may hold sections, fields and list-item fields this firmware has no model for.
`split` separates them into an "extras" tree (kept beside the validated configuration), `merge` writes
them back into a dumped document, so a firmware rollback and roll forward loses nothing. List items
are matched by their first required field (a user's login, a trunk's name...), so an item this
firmware edited keeps its extras and a removed item takes them along.
"""
from __future__ import annotations

import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model behind a field annotation (X, X | None, Annotated[X, ...]), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin is Annotated:
        return model_of(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        models = {m for arg in get_args(annotation) if (m := model_of(arg)) is not None}
        return models.pop() if len(models) == 1 else None
    return None


def item_model_of(annotation: Any) -> type[BaseModel] | None:
    """The item model of list[X] (or list[X] | None), else None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        found = {m for arg in get_args(annotation) if (m := item_model_of(arg)) is not None}
        return found.pop() if len(found) == 1 else None
    return model_of(get_args(annotation)[0]) if origin is list and get_args(annotation) else None


def split(value: Any, model: type[BaseModel]) -> tuple[Any, dict]:
    """(the part `model` knows, extras). Extras: {"keys": {unknown: value}, "fields": {name: extras},
    "items": {name: {index: extras}}}; empty when there is nothing unknown."""
    if not isinstance(value, dict):
        return value, {}
    known: dict = {}
    extras: dict = {}
    for key, item in value.items():
        field = model.model_fields.get(key)
        if field is None:
            extras.setdefault("keys", {})[key] = item
            continue
        known[key] = item
        if (sub_model := model_of(field.annotation)) is not None:
            known[key], sub = split(item, sub_model)
            if sub:
                extras.setdefault("fields", {})[key] = sub
        elif (item_model := item_model_of(field.annotation)) is not None and isinstance(item, list):
            parts = [split(element, item_model) for element in item]
            known[key] = [part for part, _ in parts]
            by_index = {i: sub for i, (_, sub) in enumerate(parts) if sub}
            if by_index:
                extras.setdefault("items", {})[key] = by_index
    return known, extras


def unknown_keys(extras: dict, path: tuple = (), pattern: tuple = ()):
    """(path, pattern) of every unknown key in `extras`; a pattern has "*" for the list item."""
    for key in extras.get("keys", {}):
        yield path + (key,), pattern + (key,)
    for name, sub in extras.get("fields", {}).items():
        yield from unknown_keys(sub, path + (name,), pattern + (name,))
    for name, by_item in extras.get("items", {}).items():
        for item, sub in by_item.items():
            yield from unknown_keys(sub, path + (name, item), pattern + (name, "*"))


def without(document: Any, paths: list[tuple]) -> Any:
    """A copy of `document` without the keys at `paths` (paths into dicts and lists by index)."""
    out = json.loads(json.dumps(document))
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    return out


def identities(items: list, model: type[BaseModel]) -> list[str]:
    """One identity per list item: its first required field's value and how often it came before."""
    key = next((name for name, field in model.model_fields.items() if field.is_required()), None)
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        value = json.dumps(item.get(key) if isinstance(item, dict) and key else index, sort_keys=True)
        seen[value] = seen.get(value, 0) + 1
        out.append(f"{value}#{seen[value]}")
    return out


def anchor(extras: dict, document: dict, model: type[BaseModel]) -> dict:
    """Extras with list items keyed by identity (computed on the validated, dumped `document`)."""
    out = dict(extras)
    if "fields" in extras:
        out["fields"] = {name: anchor(sub, document.get(name) or {}, model_of(model.model_fields[name].annotation))
                         for name, sub in extras["fields"].items()}
    if "items" in extras:
        out["items"] = {}
        for name, by_index in extras["items"].items():
            items = document.get(name) or []
            item_model = item_model_of(model.model_fields[name].annotation)
            ids = identities(items, item_model)
            out["items"][name] = {ids[i]: anchor(sub, items[i], item_model) for i, sub in by_index.items()
                                 if i < len(ids)}
    return out


def merge(document: dict, extras: dict, model: type[BaseModel]) -> dict:
    """Write anchored extras back into a dumped `document` (in place); known keys always win."""
    for key, value in extras.get("keys", {}).items():
        document.setdefault(key, value)
    for name, sub in extras.get("fields", {}).items():
        if isinstance(document.get(name), dict):
            merge(document[name], sub, model_of(model.model_fields[name].annotation))
    for name, by_identity in extras.get("items", {}).items():
        items = document.get(name)
        if not isinstance(items, list):
            continue
        item_model = item_model_of(model.model_fields[name].annotation)
        for identity, item in zip(identities(items, item_model), items, strict=True):
            if identity in by_identity and isinstance(item, dict):
                merge(item, by_identity[identity], item_model)
    return document
