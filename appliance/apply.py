"""The apply engine: validate -> render every service -> check -> switch generation -> reload -> commit.

Rendered files live in etc/gen-<revision>/<service>/; etc/current is a symlink switched atomically,
so daemons always read one complete generation. If a check or a reload fails, the previous generation
is switched back, the services already reloaded are reloaded with the previous configuration, the
revision is marked failed and ApplyError carries the reason to the admin.

No lost updates: apply/update take the revision a change was built on (`base`). If another revision
became current meanwhile, the change is merged onto it when the two touched different settings
(appliance/changes.py), else ChangedMeanwhile carries the difference to the admin. One writer at a
time per data directory (a lock file, across processes); the store compares-and-swaps again.

Errors are structured: ConfigError.problems lists (dotted field path, message), from pydantic and
from the services' validate() (a service returns a message for its whole section, or a FieldError
with a path).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError

from appliance import changes, migrations, schema
from appliance.confirm import CommitConfirm
from appliance.context import Context
from appliance.fsutil import atomic_symlink, atomic_write, fsync_dir
from appliance.service import ApplyError, Service
from appliance.store import UNCHECKED, ChangedMeanwhile, ConfigStore, Revision

__all__ = ["ApplyEngine", "ApplyError", "ChangedMeanwhile", "ConfigError", "FieldError"]

log = logging.getLogger("officebox.apply")
KEEP_GENERATIONS = 5


class FieldError(NamedTuple):
    """A problem at a dotted field path ("pbx.trunks.2.host"); what Service.validate may return."""

    path: str
    message: str


class ConfigError(ApplyError):
    """The document is not valid. `problems`: every (dotted field path or '' for general, message);
    `errors`: the first message of each path."""

    def __init__(self, errors: dict[str, str] | list[tuple[str, str]]) -> None:
        self.problems = [FieldError(*p) for p in (errors.items() if isinstance(errors, dict) else errors)]
        self.errors: dict[str, str] = {}
        for path, message in self.problems:
            self.errors.setdefault(path, message)
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in self.problems))


def validation_errors(exc: ValidationError) -> list[FieldError]:
    problems: list[FieldError] = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            message = "is not in the expected format"
        problem = FieldError(".".join(str(p) for p in err["loc"]), message)
        if problem not in problems:
            problems.append(problem)
    return problems


class Live(Protocol):
    """What the engine needs from a running supervisor."""

    def run(self, coro: Any, timeout: float) -> Any: ...
    async def reconfigure(self, name: str, config: schema.CoreConfig) -> None: ...


class ApplyEngine:
    def __init__(self, ctx: Context, store: ConfigStore, services: dict[str, Service]) -> None:
        self.ctx = ctx
        self.store = store
        self.services = services
        self.live: Live | None = None
        self._lock = threading.RLock()
        self.confirmation = CommitConfirm(ctx.etc_root / "confirm.json",
                                          lambda rev: self.rollback(rev, "commit-confirm").id)

    # -- public API ---------------------------------------------------------------------------
    def current_config(self) -> schema.CoreConfig:
        rev = self.store.current()
        if rev is None:
            raise ApplyError("no configuration has been applied yet")
        return rev.config

    def validate(self, document: dict, strict: bool = True) -> schema.CoreConfig:
        """The configuration of `document`, or ConfigError. `strict`: no unknown key but those the
        current revision holds (a newer firmware's); else any (a stored revision's)."""
        allow = None
        if strict:
            current = self.store.current()
            allow = schema.unknown_fields(current.document) if current else frozenset()
        try:
            config = schema.parse(document, allow)
        except ValidationError as exc:
            raise ConfigError(validation_errors(exc)) from None
        problems: list[FieldError] = []
        for name, service in self.services.items():
            for problem in service.validate(config):
                problems.append(FieldError(*problem) if isinstance(problem, tuple) else FieldError(name, problem))
        if problems:
            raise ConfigError(problems)
        return config

    def apply(self, document: dict | schema.CoreConfig, author: str, summary: str,
              base: int | None = UNCHECKED, strict: bool = True) -> Revision:
        """Validate and apply `document` as one revision. `base`: the revision it was built on (None: an
        empty store); changed meanwhile, the change is merged if it touched other settings, else refused.
        `strict`: see validate()."""
        if not isinstance(document, dict):
            document = schema.to_document(document)
        with self._lock, self._writer():
            current = self.store.current()
            if base != UNCHECKED and (current.id if current else None) != base:
                document = self._rebase(document, base)
            config = self.validate(document, strict)
            document = schema.to_document(config)
            if current is not None and current.document == document:
                return current
            seen = current.id if current else None
            rev = self.store.begin(document, author, summary, base=seen)
            try:
                self._apply(rev, config, current)
            except Exception as exc:
                message = str(exc) or exc.__class__.__name__
                self.store.fail(rev.id, message)
                if isinstance(exc, ApplyError):
                    raise
                log.exception("apply of revision %s failed", rev.id)
                raise ApplyError(f"applying the change failed: {message}") from exc
            self.store.commit(rev.id, base=seen)
            self._prune()
            self._after_commit(current, rev.id, config, document)
            return self.store.revision(rev.id)

    def _after_commit(self, previous: Revision | None, rev_id: int, config, document: dict) -> None:
        """Commit-confirm (appliance/confirm.py): the longest window a service asks for this change. Not
        before the first-boot wizard has run: there is no admin to lock out, and going back would undo it."""
        ready = previous is not None and previous.config.system.initialized
        windows = [w for s in self.services.values()
                   if ready and (w := s.confirm_window(previous.config, config)) is not None]
        waiting = self.confirmation.pending()
        back = waiting is not None and (target := self.store.revision(waiting["previous_revision"])) is not None \
            and target.document == document
        self.confirmation.after_apply(previous.id if previous else None, rev_id, max(windows, default=None), back)

    def update(self, author: str, summary: str | None, mutate: Callable[[dict], str | None],
               base: int | None = UNCHECKED) -> Revision:
        """Apply `mutate` to a copy of the document of revision `base` (default: the current one), as one
        revision; see apply() for a base that is no longer current. `summary` None: what `mutate` returns."""
        with self._lock:
            if base == UNCHECKED:
                base = self.store.current_id()
            rev = self.store.revision(base) if base is not None else None
            if base is not None and rev is None:
                raise ApplyError(f"there is no revision #{base}")
            # as this firmware sees it: sections and fields added since it was stored are there with defaults
            document = schema.to_document(rev.config if rev else schema.parse({}))
            said = mutate(document)
            return self.apply(document, author, summary or said or "change", base=base)

    def rollback(self, rev_id: int, author: str, base: int | None = UNCHECKED) -> Revision:
        target = self.store.revision(rev_id)
        if target is None:
            raise ApplyError(f"there is no revision #{rev_id}")
        with self._lock:
            if base != UNCHECKED and self.store.current_id() != base:
                raise self.store.changed_meanwhile(base)
            return self.apply(target.document, author, f"roll back to revision #{rev_id}", strict=False)

    def recover(self) -> None:
        """After a crash or power cut: forget interrupted revisions, make etc/current match the store;
        a current revision written by an older schema is migrated as a new revision."""
        for rev in self.store.pending():
            self.store.fail(rev.id, "interrupted (power cut or crash) before it was applied")
        current = self.store.current()
        if current is None:
            return
        gen = self._gen_dir(current.id)
        if not (gen / ".complete").exists():
            self._stage(current.id, current.config)
        atomic_symlink(gen.name, self.ctx.etc_root / "current")
        migrated, versions = migrations.migrate(current.document, schema.SCHEMA_VERSION)
        if versions:
            old = migrations.version_of(current.document, schema.SCHEMA_VERSION)
            self.apply(migrated, "system", f"schema migration from version {old} to {versions[-1]}",
                       base=current.id, strict=False)

    # -- concurrent writers ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _writer(self):
        """One writer at a time on this data directory, across processes (released by the OS on exit)."""
        with open(self.ctx.etc_root / ".apply.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _rebase(self, document: dict, base: int | None) -> dict:
        """`document` (built on `base`) merged onto the current revision, or ChangedMeanwhile."""
        old = self.store.revision(base) if base is not None else None
        current = self.store.current()
        if (base is not None and old is None) or current is None:
            raise self.store.changed_meanwhile(base)
        def normal(doc: dict) -> dict:  # compare like with like: as this firmware would store it
            try:
                return schema.to_document(schema.parse(doc))
            except ValidationError:
                return doc
        old_document, now = (normal(old.document) if old else {}), normal(current.document)
        mine = changes.leaf_changes(old_document, normal(document))
        clash = changes.overlapping(mine, changes.leaf_changes(old_document, now))
        if clash:
            raise self.store.changed_meanwhile(base, [changes.dotted(p) for p in clash])
        return changes.apply_changes(now, mine)

    # -- steps ----------------------------------------------------------------------------------
    def _gen_dir(self, rev_id: int) -> Path:
        return self.ctx.etc_root / f"gen-{rev_id:06d}"

    def _stage(self, rev_id: int, config: schema.CoreConfig) -> Path:
        gen = self._gen_dir(rev_id)
        if gen.exists():
            shutil.rmtree(gen)
        gen.mkdir(mode=0o700)
        for name, service in self.services.items():
            target = gen / name
            target.mkdir(mode=0o700)
            if not service.enabled(config):
                continue
            for rel, content in service.render(config).items():
                path = (target / rel).resolve()
                if target.resolve() not in path.parents:
                    raise ApplyError(f"{name}: refuses to render outside its folder: {rel}")
                atomic_write(path, content, mode=0o600)
        atomic_write(gen / ".complete", str(rev_id))
        fsync_dir(gen)
        return gen

    def _affected(self, old: schema.CoreConfig | None, new: schema.CoreConfig) -> list[str]:
        if old is None:
            return list(self.services)
        changed = {key for key in type(new).model_fields if getattr(old, key, None) != getattr(new, key)}
        return [name for name, svc in self.services.items() if name in changed or changed & set(svc.depends_on)]

    def _run(self, coro: Any, timeout: float = 120) -> Any:
        if self.live is not None:
            return self.live.run(coro, timeout)
        return asyncio.run(coro)

    def _apply(self, rev: Revision, config: schema.CoreConfig, current: Revision | None) -> None:
        gen = self._stage(rev.id, config)
        for name, service in self.services.items():
            if service.enabled(config):
                self._run(service.check(config, gen / name))
        link = self.ctx.etc_root / "current"
        previous_target = link.readlink().name if link.is_symlink() else None
        atomic_symlink(gen.name, link)
        if self.live is None:
            return
        old_config = current.config if current else None
        done: list[str] = []
        try:
            for name in self._affected(old_config, config):
                done.append(name)
                self._run(self.live.reconfigure(name, config))
        except Exception as exc:
            log.warning("reload failed (%s); restoring revision %s", exc, current.id if current else None)
            if previous_target:
                atomic_symlink(previous_target, link)
            if old_config is not None:
                for name in done:
                    try:
                        self._run(self.live.reconfigure(name, old_config))
                    except Exception:  # keep restoring the others
                        log.exception("could not restore %s", name)
            raise ApplyError(f"{done[-1]}: {exc}") from exc

    def _prune(self) -> None:
        gens = sorted(p for p in self.ctx.etc_root.glob("gen-*") if p.is_dir())
        link = self.ctx.etc_root / "current"
        keep = link.readlink().name if link.is_symlink() else None
        for old in gens[:-KEEP_GENERATIONS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
