"""Commit-confirm as a property of a configuration transaction (as on Juniper or OPNsense): "revision N
is applied, and revision M comes back unless N is confirmed within T seconds".

After each apply (once the first-boot wizard has run) the engine asks every service
`confirm_window(old, new)`: how long the admin may take
to confirm a change that could cut them off (the firewall: what reaches the box changed; the network:
the LAN address or the admin port changed), or None. The longest window arms the confirmation. While
one is waiting:
- another change that needs confirming moves the deadline, and the revision to go back to stays the
  one from before the first unconfirmed change; a change that needs none leaves the deadline alone;
- a change back to that revision's configuration (a rollback) ends the wait;
- `confirm()` keeps everything; at the deadline the engine rolls back to the revision from before.
The wait is kept in etc/confirm.json (0600), so it continues across a restart (`resume()` at start)
and a deadline that passed while the box was down is acted on at once.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.fsutil import atomic_write

log = logging.getLogger("officebox.confirm")


class CommitConfirm:
    def __init__(self, path: Path, rollback: Callable[[int], int | None]) -> None:
        self.path = path
        self.rollback = rollback  # rollback(revision) -> the new revision's id
        self.last_rollback: dict | None = None
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._pending: dict | None = self._read()

    # -- the engine's side ------------------------------------------------------------------------
    def after_apply(self, previous: int | None, revision: int, window: float | None, back: bool) -> None:
        """Revision `revision` was applied over `previous`; `window`: seconds to confirm it (None: no
        need); `back`: its configuration is that of the revision a waiting confirmation returns to."""
        with self._lock:
            if self._pending and back:
                self._disarm()
                return
            if window is None or previous is None:
                return
            pending = self._pending or {"previous_revision": previous}
            pending.update(revision=revision, deadline=time.time() + window)
            self._arm(pending, window)

    def resume(self) -> None:
        """At start: a confirmation that was waiting goes on, or expires at once if its time is up."""
        with self._lock:
            if self._pending:
                self._arm(self._pending, max(0.0, self._pending["deadline"] - time.time()))

    def close(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()  # the file stays: the wait continues after a restart
                self._timer = None

    # -- the admin's side ---------------------------------------------------------------------------
    def pending(self) -> dict | None:
        with self._lock:
            if not self._pending:
                return None
            return {**self._pending, "seconds_left": max(0.0, self._pending["deadline"] - time.time())}

    def confirm(self) -> bool:
        """Keep the change; True if one was waiting."""
        with self._lock:
            if not self._pending:
                return False
            self._disarm()
            log.info("configuration change confirmed")
            return True

    # -- inside ---------------------------------------------------------------------------------------
    def _arm(self, pending: dict, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._pending = pending
        atomic_write(self.path, json.dumps(pending), mode=0o600)
        self._timer = threading.Timer(delay, self._expire)
        self._timer.daemon = True
        self._timer.start()
        log.warning("configuration change needs confirming within %.0f s", delay)

    def _disarm(self) -> None:
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._pending = None
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(data, dict) and all(isinstance(data.get(k), (int, float)) for k in
                                            ("previous_revision", "revision", "deadline"))
        return data if ok else None

    def _expire(self) -> None:
        with self._lock:
            pending = self._pending
            if pending is None:
                return
            self._timer = None
        log.warning("configuration change not confirmed: back to revision #%s", pending["previous_revision"])
        record = {"time": time.time(), "previous_revision": pending["previous_revision"], "reverted": None}
        try:
            record["reverted"] = self.rollback(pending["previous_revision"])
        except Exception:
            log.exception("could not roll back to revision %s", pending["previous_revision"])
            return  # still waiting: the admin keeps seeing it
        with self._lock:
            self.last_rollback = record
            if self._pending is pending:  # the rollback's own apply normally ended the wait already
                self._disarm()
