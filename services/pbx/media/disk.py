"""The media engine's file writes in one thread of their own: a write that blocks (the kernel throttling a
process while the disk writes back, a slow SD card) holds up no frame of the engine's loop. Jobs run in
the order given; each job's `then` runs back in the engine's loop (complete(), when `fd`, an eventfd in
its epoll, is readable), so what a job's end sends (record_done) leaves from the loop as before.

A disk that does not keep up fills the queue: a write is refused with an OSError (the recording ends with
an error) instead of memory growing without bound or the loop waiting; the file's close still follows
its writes, in order, in the thread."""
from __future__ import annotations

import collections
import errno
import os
import queue
import threading
from collections.abc import Callable

JOBS = 4096  # queued writes (about 30 s of 200 recordings at 0.5 s chunks)
STOP_WAIT = 10.0  # seconds the engine's exit waits for queued writes


class DiskThread:
    def __init__(self, jobs: int = JOBS) -> None:
        self.limit = jobs
        self.jobs: queue.Queue = queue.Queue()  # bounded by submit(); a file's last job always goes in
        self.done: collections.deque = collections.deque()
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.thread = threading.Thread(target=self._run, name="media-disk", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None], then: Callable[[OSError | None], None] | None = None,
               last: bool = False) -> None:
        """Run `job` in the thread; `then(error or None)` in the loop afterwards. Full: OSError now,
        unless it is a file's `last` job (its close), which is always queued after the file's writes."""
        if not last and self.jobs.qsize() >= self.limit:
            raise OSError(errno.EIO, "the disk does not keep up with the recordings")
        self.jobs.put((job, then))

    def _run(self) -> None:
        while True:
            job, then = self.jobs.get()
            if job is None:
                return
            error = None
            try:
                job()
            except OSError as exc:
                error = exc
            if then is not None:
                self.done.append((then, error))
                os.eventfd_write(self.fd, 1)

    def complete(self) -> None:
        """In the loop: the `then` of every job that ended."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass
        while self.done:
            then, error = self.done.popleft()
            then(error)

    def stop(self) -> None:
        """Let the queued writes finish (at most STOP_WAIT s), then their `then`s run."""
        self.jobs.put((None, None))
        self.thread.join(STOP_WAIT)
        self.complete()
        os.close(self.fd)
