"""The PBX's call control as the CTI server uses it: requests on pbx.command.cti, answers on
pbx.reply.cti (services/pbx/cti_commands.py describes the operations), matched by request id."""
from __future__ import annotations

import asyncio
import itertools
import os

from appliance.bus import Event

COMMAND_TOPIC = "pbx.command.cti"  # only the CTI process may publish here (the bus hub checks)
RESULT_TOPIC = "pbx.reply.cti"


class PbxError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PbxLink:
    def __init__(self, bus) -> None:
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.prefix = os.urandom(4).hex()
        self.ids = itertools.count(1)
        self.pending: dict[str, asyncio.Future] = {}
        self.off = bus.subscribe(RESULT_TOPIC, self._result)

    def close(self) -> None:
        self.off()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(PbxError("failed", "the CTI server stopped"))

    def _result(self, event: Event) -> None:
        if event.topic == RESULT_TOPIC and event.data is not None and event.key in self.pending:
            self.loop.call_soon_threadsafe(self._resolve, event.key, event.data)

    def _resolve(self, key: str, data: dict) -> None:
        fut = self.pending.pop(key, None)
        if fut is None or fut.done():
            return
        if data.get("ok"):
            fut.set_result(data.get("result") or {})
        else:
            fut.set_exception(PbxError(str(data.get("code") or "failed"), str(data.get("error") or "failed")))

    async def request(self, op: str, by: str = "", timeout: float = 15.0, **args) -> dict:
        key = f"{self.prefix}-{next(self.ids)}"
        fut = self.loop.create_future()
        self.pending[key] = fut
        self.bus.publish(COMMAND_TOPIC, key, {"op": op, "args": args, "by": by})
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise PbxError("failed", "the PBX did not answer (is it running?)") from None
        finally:
            self.pending.pop(key, None)
