"""A small real service for exercising the engine and supervisor: it renders a file from the
company name, and refuses some names at check or reload time, like a daemon refusing a bad config."""
from __future__ import annotations

import sys

from appliance.service import ApplyError, ChildSpec, Service, Status


class ProbeService(Service):
    name = "probe"
    title = "Probe"
    depends_on = ("system",)

    def __init__(self, ctx, daemon: bool = False) -> None:
        super().__init__(ctx)
        self.daemon = daemon
        self.events: list[tuple[str, str]] = []
        self.running_name: str | None = None

    def render(self, config):
        return {"company.txt": config.system.company_name + "\n", "sub/dir/file.txt": "nested\n"}

    async def check(self, config, staged):
        if config.system.company_name == "BADCHECK":
            raise ApplyError("probe: the daemon refused its configuration")
        assert (staged / "company.txt").read_text() == config.system.company_name + "\n"

    def processes(self, config):
        if not self.daemon:
            return []
        script = "import time,sys; print('up', flush=True); time.sleep(3600)"
        return [ChildSpec("sleeper", (sys.executable, "-c", script), stop_timeout=5)]

    async def start(self, config):
        self.events.append(("start", config.system.company_name))
        self.running_name = config.system.company_name

    async def reload(self, config):
        self.events.append(("reload", config.system.company_name))
        if config.system.company_name == "FAIL":
            raise RuntimeError("probe: reload refused")
        self.running_name = config.system.company_name

    async def stop(self):
        self.events.append(("stop", ""))
        self.running_name = None

    def status(self):
        return Status("ok", f"serving {self.running_name}", {"reloads": sum(e[0] == "reload" for e in self.events)})
