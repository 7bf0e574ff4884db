"""Long actions followed without JavaScript: the page of an action in progress reloads itself (a meta
refresh every REFRESH seconds, templates/progress.html) until the action is over, then says its result.

Backups made now (blueprints/backups.py) keep their own state in appliance/backupjobs.py and use the page;
other long actions (a firmware or whole-system update, a restore, a rollback, a service restart) run through
Tasks: a background thread per action (in the app's context), its steps and outcome kept in memory for its
owner (the admin who started it; another admin gets a 404), the last KEEP of them and a finished one for
AGE seconds at most. The page of a task is /system/tasks/<id> (blueprints/system.py): each kind registers
the template that shows it (register)."""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import current_app

REFRESH = 2  # seconds between the reloads of the page of an action in progress
KEEP = 20    # tasks kept at most (the oldest finished ones go first)
AGE = 3600   # seconds a finished task's result stays to be seen
KEY = "officebox.tasks"
TEMPLATES: dict[str, tuple[str, Callable[[dict], dict] | None]] = {}  # kind: (template, extra context)
_current = threading.local()  # the task the running thread works for (step())


class Failed(Exception):
    """An action that ended in a refusal or an error: its message is shown as the result. `code` and
    `details` let the page say it in the admin's language (the message is the plain English fallback)."""

    def __init__(self, message: str, code: str = "", **details: Any) -> None:
        super().__init__(message)
        self.code, self.details = code, details


def register(kind: str, template: str, context: Callable[[dict], dict] | None = None) -> None:
    """The page of tasks of `kind`: `template` (extending progress.html), with context(task) added to it."""
    TEMPLATES[kind] = (template, context)


def step(name: str) -> None:
    """Called by a task's work: it is now doing `name` (its template says it in words); the steps before
    are done. Outside a task, nothing."""
    task, lock = getattr(_current, "task", None), getattr(_current, "lock", None)
    if task is None or lock is None:
        return
    with lock:
        if task["step"]:
            task["done_steps"] = [*task["done_steps"], task["step"]]
        task["step"] = name


class Tasks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, dict] = OrderedDict()

    def _trim(self, now: float) -> None:
        for task_id in [i for i, t in self._tasks.items() if t["state"] != "running" and now - t["ended"] > AGE]:
            del self._tasks[task_id]
        while len(self._tasks) > KEEP:
            finished = next((i for i, t in self._tasks.items() if t["state"] != "running"), None)
            self._tasks.pop(finished if finished is not None else next(iter(self._tasks)))

    def start(self, owner: str, kind: str, work: Callable[[], dict], **info: Any) -> str:
        """Run work() in a thread; its dict is the result, a Failed (or OSError) its error. The task's id.
        `info` is kept with the task for its page (what the action is about)."""
        task_id = secrets.token_urlsafe(12)
        task = {"id": task_id, "owner": owner, "kind": kind, "state": "running", "started": time.time(),
                "ended": None, "result": None, "error": None, "error_code": "", "error_details": {},
                "step": "", "done_steps": [], "info": info}
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        with self._lock:
            self._trim(time.time())
            self._tasks[task_id] = task

        def run() -> None:
            _current.task, _current.lock = task, self._lock
            code, details = "", {}
            try:
                with app.app_context():
                    result, error, state = work(), None, "done"
            except Failed as exc:
                result, error, state = None, str(exc) or exc.__class__.__name__, "failed"
                code, details = exc.code, exc.details
            except OSError as exc:
                result, error, state = None, str(exc) or exc.__class__.__name__, "failed"
            except Exception as exc:  # noqa: BLE001 - the page must end, whatever went wrong
                result, error, state = None, f"{exc.__class__.__name__}: {exc}", "failed"
            finally:
                _current.task = _current.lock = None
            with self._lock:
                done = [*task["done_steps"], task["step"]] if task["step"] and state == "done" else task["done_steps"]
                task.update(result=result, error=error, error_code=code, error_details=details, state=state,
                            ended=time.time(), done_steps=done, step="" if state == "done" else task["step"])

        threading.Thread(target=run, name=f"task-{kind}", daemon=True).start()
        return task_id

    def get(self, task_id: str, owner: str) -> dict[str, Any] | None:
        """A copy of the task, only for its owner."""
        with self._lock:
            self._trim(time.time())
            task = self._tasks.get(task_id)
            return dict(task) if task and task["owner"] == owner else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)


def tasks() -> Tasks:
    return current_app.extensions.setdefault(KEY, Tasks())
