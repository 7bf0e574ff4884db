"""Keeps the WebRTC gateway process running. When it dies other than by the PBX closing it (kill -9, a
crash: any exit status but 0), the browser calls whose media it carried have lost their media: they are
ended (`on_lost`: BYE to the browser and to the other party) and the process is started again after a
backoff (1 s, doubling up to 60 s; back to 1 s once a process has run a minute). While it backs off a
new browser call is refused with a clear reason rather than starting a process that keeps dying.
Deaths and restarts are counted (`figures`) and logged."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("officebox.pbx.webrtc")
BACKOFF_MIN = 1.0
BACKOFF_MAX = 60.0
STABLE = 60.0  # seconds a process must run for the backoff to start again from BACKOFF_MIN


class Watchdog:
    def __init__(self, start: Callable, on_lost: Callable[[], int] | None = None) -> None:
        self.start = start  # coroutine function: starts the process again (and has it watched)
        self.on_lost = on_lost  # ends the calls through the dead process; returns how many
        self.backoff = BACKOFF_MIN
        self.deaths = 0
        self.restarts = 0
        self.calls_ended = 0
        self.last_exit: int | None = None
        self.restart_at: float | None = None  # loop time of the next start while backing off
        self.stopped = False
        self._task: asyncio.Task | None = None

    @property
    def backing_off(self) -> bool:
        return self.restart_at is not None

    def figures(self) -> dict:
        return {"deaths": self.deaths, "restarts": self.restarts, "calls_ended": self.calls_ended,
                "last_exit": self.last_exit, "backing_off": self.backing_off}

    def watch(self, proc: asyncio.subprocess.Process) -> None:
        """Follow a freshly started process."""
        self.stopped = False
        self._task = asyncio.get_running_loop().create_task(self._follow(proc))

    def stop(self) -> None:
        """The PBX closes the gateway: no restart."""
        self.stopped = True
        self.restart_at = None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    async def _follow(self, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        code = await proc.wait()
        if code == 0 or self.stopped:
            return  # it saw its control socket close: the PBX stopped it
        self.deaths += 1
        self.last_exit = code
        ended = 0
        if self.on_lost is not None:
            try:
                ended = self.on_lost()
            except Exception:  # ending the calls must not stop the restart
                log.exception("WebRTC gateway: ending the calls of the dead process failed")
        self.calls_ended += ended
        if loop.time() - started >= STABLE:
            self.backoff = BACKOFF_MIN
        while not self.stopped:
            delay, self.backoff = self.backoff, min(BACKOFF_MAX, 2 * self.backoff)
            log.error("the WebRTC gateway process died (exit status %s): %d browser calls ended; "
                      "starting it again in %.0f s", code, ended, delay)
            self.restart_at = loop.time() + delay
            await asyncio.sleep(delay)
            self.restart_at = None
            if self.stopped:
                return
            try:
                await self.start()
            except OSError as exc:
                log.error("the WebRTC gateway process does not start: %s", exc)
                ended = 0
                continue
            self.restarts += 1
            log.warning("the WebRTC gateway process runs again (restart %d)", self.restarts)
            return


def end_browser_calls(core) -> int:
    """End every call with a browser party (a leg on a WebSocket flow: its media went through the gateway):
    BYE to the browser and to the others of a connected call; a browser's call still ringing is
    cancelled. Returns how many calls were ended."""
    ended = 0
    for call in list(core.calls.values()):
        browsers = [leg for leg in call.legs if (getattr(leg, "flow", None) or ("",))[0] == "wss"
                    and not leg.ended]
        if not browsers:
            continue
        ended += 1
        if call.state != "connected":
            call.cancel_ringing()
            continue
        for leg in browsers:
            leg.bye()
            call.hangup(leg)
    return ended
