"""Shared by the LAN service tests: run in-process services on a loop inside a test namespace."""
from __future__ import annotations

import asyncio
import threading
from functools import cache

from pydantic import Field, create_model

from appliance import schema


def in_netns(host):
    """Move the calling thread into `host`'s namespace for a `with` block."""
    return host.enter()


class LoopThread:
    """An asyncio loop in a thread that lives in `host`'s network namespace (or the current one)."""

    def __init__(self, host=None) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            if host is None:
                ready.set()
                self.loop.run_forever()
                return
            with in_netns(host):
                ready.set()
                self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)

    def call(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *args, timeout: float = 5):
        async def run():
            return fn(*args)
        return self.call(run(), timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@cache
def lan_model():
    """The core plus the LAN sections only: these tests do not depend on other services' modules."""
    from services.dhcp import SERVICE as DHCP
    from services.dns import SERVICE as DNS
    from services.ntp import SERVICE as NTP
    from services.provisioning import SERVICE as PROV

    fields = {svc.name: (svc.Config, Field(default_factory=svc.Config)) for svc in (DHCP, DNS, NTP, PROV)}
    return create_model("LanConfig", __base__=schema.CoreConfig, **fields)


def lan_config(interface: str, address: str = "10.77.0.1/24", **sections) -> schema.CoreConfig:
    document = schema.to_document(lan_model()())
    document["system"]["hostname"] = "box"
    document["system"]["domain"] = "office.test"
    document["network"]["lan"] = {"interface": interface, "address": address}
    for name, values in sections.items():
        document[name].update(values)
    return lan_model().model_validate(document)
