"""The box's networking as a core service: applied first at start and on every `network` change."""
from __future__ import annotations

import asyncio

from appliance import network
from appliance.service import ApplyError, Service, Status


class NetworkService(Service):
    name = "network"
    title = "Network interfaces"
    depends_on = ()

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._config = None
        self.report: dict = {}

    def enabled(self, config) -> bool:
        return True

    async def _apply(self, config) -> None:
        try:
            self.report = await asyncio.to_thread(network.apply_network, config, None, self.ctx)
        except (network.NetworkError, OSError) as exc:
            raise ApplyError(f"network: {exc}") from exc
        self._config = config

    async def start(self, config) -> None:
        await self._apply(config)

    async def reload(self, config) -> None:
        await self._apply(config)

    async def stop(self) -> None:
        if not self.ctx.lab:
            await asyncio.to_thread(network.stop_network)

    def status(self) -> Status:
        if self.ctx.lab:
            return Status("ok", "lab mode: the host's networking is left alone")
        state = network.network_status(None, self.ctx, self._config)
        lease = state.get("lease")
        figures = {i["name"]: ", ".join(i["addresses"]) or i["state"] for i in state["interfaces"]
                   if i["name"] != "lo"}
        if lease:
            figures["WAN lease"] = lease.get("address", "")
        return Status("ok", self.report.get("wan", "applied"), figures)
