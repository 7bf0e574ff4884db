"""The box's networking as a core service: applied first at start and on every `network` change."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from appliance import network
from appliance.service import ApplyError, Service, Status

CONFIRM_SECONDS = 120  # time to reach the box at its new address and confirm


class NetworkService(Service):
    name = "network"
    title = "Network interfaces"
    depends_on = ()

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._config = None
        self.report: dict = {}
        self.netns: str | None = None  # tests run the box's networking inside a namespace

    @property
    def _hands_off(self) -> bool:
        return self.ctx.lab and self.netns is None

    def enabled(self, config) -> bool:
        return True

    async def _apply(self, config) -> None:
        try:
            self.report = await asyncio.to_thread(network.apply_network, config, self.netns, self.ctx)
        except (network.NetworkError, OSError) as exc:
            raise ApplyError(f"network: {exc}") from exc
        self._config = config

    def confirm_window(self, old, new) -> float | None:
        """A new LAN address, WAN set-up, routes or admin port may cut the admin off: confirm it
        (appliance/confirm.py), else the revision from before comes back."""
        if self._hands_off:
            return None
        moved = old.network != new.network or old.system.admin_port != new.system.admin_port
        return float(CONFIRM_SECONDS) if moved else None

    async def start(self, config) -> None:
        await self._apply(config)

    async def reload(self, config) -> None:
        await self._apply(config)

    async def stop(self) -> None:
        if not self._hands_off:
            await asyncio.to_thread(network.stop_network, self.netns)

    def _network_state(self) -> dict:
        """network_status(); pyroute2's blocking API cannot run on a thread whose event loop is running
        (the supervisor's watchdog asks from the loop), so there it runs in a worker thread."""
        args = (self.netns, self.ctx, self._config)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return network.network_status(*args)
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(network.network_status, *args).result(timeout=10)

    def status(self) -> Status:
        if self._hands_off:
            return Status("ok", "lab mode: the host's networking is left alone")
        state = self._network_state()
        lease = state.get("lease")
        figures = {i["name"]: ", ".join(i["addresses"]) or i["state"] for i in state["interfaces"]
                   if i["name"] != "lo"}
        if lease:
            figures["WAN lease"] = lease.get("address", "")
        if state["dhcp_client"] is False:  # the supervisor's watchdog restarts this service, and so the client
            return Status("down", "the WAN DHCP client stopped", figures)
        return Status("ok", self.report.get("wan", "applied"), figures)
