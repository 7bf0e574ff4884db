"""Long actions followed without JavaScript: the page of an action in progress reloads itself (a meta
refresh every REFRESH seconds, templates/progress.html) until the action is over, then says its result.

Backups made now (blueprints/backups.py) keep their own state in appliance/backupjobs.py and use the page;
other long actions (a firmware install) run through Tasks: a background thread per action, its outcome kept
in memory for its owner (the admin who started it), the last KEEP of them."""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import current_app

REFRESH = 2  # seconds between the reloads of the page of an action in progress
KEEP = 20
KEY = "officebox.tasks"


class Failed(Exception):
    """An action that ended in a refusal or an error: its message is shown as the result."""


class Tasks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, dict] = OrderedDict()

    def start(self, owner: str, kind: str, work: Callable[[], dict]) -> str:
        """Run work() in a thread; its dict is the result, a Failed (or OSError) its error. The task's id."""
        task_id = secrets.token_urlsafe(12)
        task = {"id": task_id, "owner": owner, "kind": kind, "state": "running", "started": time.time(),
                "result": None, "error": None}
        with self._lock:
            self._tasks[task_id] = task
            while len(self._tasks) > KEEP:
                self._tasks.popitem(last=False)

        def run() -> None:
            try:
                result, error, state = work(), None, "done"
            except (Failed, OSError) as exc:
                result, error, state = None, str(exc) or exc.__class__.__name__, "failed"
            except Exception as exc:  # noqa: BLE001 - the page must end, whatever went wrong
                result, error, state = None, f"{exc.__class__.__name__}: {exc}", "failed"
            with self._lock:
                task.update(result=result, error=error, state=state, ended=time.time())

        threading.Thread(target=run, name=f"task-{kind}", daemon=True).start()
        return task_id

    def get(self, task_id: str, owner: str) -> dict[str, Any] | None:
        """A copy of the task, only for its owner."""
        with self._lock:
            task = self._tasks.get(task_id)
            return dict(task) if task and task["owner"] == owner else None


def tasks() -> Tasks:
    return current_app.extensions.setdefault(KEY, Tasks())
