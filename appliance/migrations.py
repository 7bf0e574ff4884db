"""Schema migrations: ordered steps that bring a stored document up to the running firmware's schema.

Every stored document carries `schema_version`. `schema.SCHEMA_VERSION` is the version this firmware
writes; STEPS[n] turns a raw version-n document into a version-(n+1) one, in place, and runs on load
(`schema.parse`); the engine records a migrated current revision as a new revision at start.

When a step is needed, and when not:
- A new field with a default, or a new section whose fields all have defaults: NO step and no new
  version. Older documents lack the key and get the default; an older firmware keeps the unknown key
  as opaque data and writes it back untouched (see schema.parse).
- A step (and SCHEMA_VERSION + 1) is needed when stored data must change to stay meaningful: a field
  renamed or moved, a type or unit changed (seconds -> minutes, str -> list), a value's meaning changed,
  a new field whose value must be derived from others, a section split or merged, a value set narrowed.
  Note for downgrades: an older firmware sees renamed or moved data only as opaque keys (it keeps them,
  but shows its own defaults); keep the old field too if the previous firmware must still use it.
- Never widen an existing field in a way the previous firmware rejects (a new Literal value, a longer
  max_length) without a new field: the previous firmware would refuse the whole document.

A step is a plain function on the raw JSON document (dicts and lists), registered with @step(n):

    @step(1)
    def _lease_minutes(doc: dict) -> None:       # version 1 -> 2
        dhcp = doc.get("dhcp", {})
        if "lease_time" in dhcp:
            dhcp["lease_minutes"] = dhcp.pop("lease_time") // 60
"""
from __future__ import annotations

import copy
from collections.abc import Callable

Step = Callable[[dict], None]
STEPS: dict[int, Step] = {}


class MigrationError(ValueError):
    """A stored document cannot be brought to this firmware's schema."""


def step(version: int) -> Callable[[Step], Step]:
    """Register `fn` as the migration from `version` to `version + 1`."""
    def register(fn: Step) -> Step:
        if version in STEPS:
            raise ValueError(f"two migrations from schema version {version}")
        STEPS[version] = fn
        return fn
    return register


def version_of(document: dict, default: int) -> int:
    value = document.get("schema_version", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MigrationError(f"schema_version must be a positive whole number, not {value!r}")
    return value


def migrate(document: dict, target: int) -> tuple[dict, list[int]]:
    """A copy of `document` brought up to `target`, and the versions it went through (empty: none)."""
    version = version_of(document, target)
    if version >= target:
        return document, []
    migrated = copy.deepcopy(document)
    done: list[int] = []
    while version < target:
        fn = STEPS.get(version)
        if fn is None:
            raise MigrationError(f"this firmware cannot migrate a configuration of schema version {version}")
        fn(migrated)
        version += 1
        migrated["schema_version"] = version
        done.append(version)
    return migrated, done
