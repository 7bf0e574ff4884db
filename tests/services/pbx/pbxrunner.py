"""Run a PBX service instance on its own event loop thread, so tests can drive blocking peers (baresip)."""
from __future__ import annotations

import asyncio
import random
import threading

from appliance import schema
from appliance.context import Context
from services.pbx import SERVICE
from tests.netns import move_thread


def config(users: list[dict], **pbx) -> schema.CoreConfig:
    """A document for the tests: free SIP port; an RTP block of its own outside the ephemeral range
    (32768+, where baresip's and everyone's SIP ports come from) and baresip's RTP range (10000-20000)."""
    pbx.setdefault("lab_sip_port", 0)
    if "lab_rtp_port_min" not in pbx:
        base = 21000 + 200 * random.randrange(45)
        pbx.update(lab_rtp_port_min=base, lab_rtp_port_max=base + 199)
    return schema.parse({"users": users, "pbx": pbx})


def user(login: str, ext: str, secret: str, name: str | None = None, **kw) -> dict:
    return {"login": login, "full_name": name or login.capitalize(), "extension": ext, "sip_secret": secret, **kw}


class PbxRunner:
    """`netns`: a tests.netns.Host; the PBX loop thread (and so every socket it opens) lives in it."""

    def __init__(self, data_dir, cfg: schema.CoreConfig, host: str = "127.0.0.1", netns=None) -> None:
        self.ctx = Context(data_dir, lab=True)
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.netns = netns
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.svc = SERVICE(self.ctx)
        self.svc.lab_host = host
        self.host = host

    def _serve(self) -> None:
        if self.netns is not None:
            move_thread(self.netns.name)
        self.loop.run_forever()

    def __enter__(self) -> "PbxRunner":
        self.thread.start()
        self.call(self.svc.start(self.cfg))
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call(self.svc.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *args):
        """Run a plain function on the PBX loop (for reading live state consistently)."""
        async def run():
            return fn(*args)
        return self.call(run())

    def reload(self, cfg: schema.CoreConfig) -> None:
        self.cfg = cfg
        self.call(self.svc.reload(cfg))

    @property
    def port(self) -> int:
        return self.svc.sip_port

    @property
    def registrar(self) -> str:
        return f"{self.host}:{self.port}"
