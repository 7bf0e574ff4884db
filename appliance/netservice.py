"""The box's networking as a core service: applied first at start and on every `network` change.

It runs in a process of its own (appliance/servicehost.py) as officebox-network with CAP_NET_ADMIN (and
what its WAN DHCP client needs: appliance/serviceusers.py); the web admin reads it through
clients.NetworkClient. In lab mode without a namespace it is hands-off: nothing applied, nothing stopped,
no confirmation asked, the host's networking left alone."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from appliance import network
from appliance.service import ApplyError, ChildSpec, Service, Status
from appliance.wanlease import WanLease, wan_lease_bus

log = logging.getLogger("officebox.network")
CONFIRM_SECONDS = 120  # time to reach the box at its new address and confirm
LEASE_POLL = 1.0  # seconds between looks at the WAN's lease file (the udhcpc hook rewrites it)


class NetworkService(Service):
    name = "network"
    title = "Network interfaces"
    depends_on = ()

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._config = None
        self.report: dict = {}
        self.netns: str | None = None  # tests run the box's networking inside a namespace
        self._follower: asyncio.Task | None = None  # publishes the WAN's DHCP lease (appliance/wanlease.py)
        self._following: str | None = None  # the WAN interface whose lease it publishes
        self._following_mode: str | None = None  # dhcp (udhcpc's lease) or pppoe (pppd's link record)

    @property
    def _hands_off(self) -> bool:
        return self.ctx.lab and self.netns is None

    def enabled(self, config) -> bool:
        return True

    # -- PPPoE: pppd is the supervisor's child (root), its files rendered here (appliance/network.py) ----
    def render(self, config) -> dict[str, str]:
        return network.pppoe_files(config, self.ctx.etc_dir(self.name), self.ctx, self.netns)

    async def check(self, config, staged) -> None:
        folder = staged / network.PPPOE_ROOT_ONLY
        if folder.is_dir():
            folder.chmod(0o700)
        for script in ("pppoe-ip-up", "pppoe-ip-down"):  # pppd runs them (rendered 0600)
            if (folder / script).exists():
                (folder / script).chmod(0o700)

    def processes(self, config) -> list[ChildSpec]:
        if config.network.wan.mode != "pppoe" or self._hands_off:
            return []
        etc = self.ctx.etc_dir(self.name)
        network.prepare_pppoe_dir(self.ctx, self.netns)
        options = network.pppoe_options(config, etc, network.pppoe_record_file(self.ctx, self.netns),
                                        network.pppoe_log_file(self.ctx, self.netns))
        digest = hashlib.sha256(options.encode()).hexdigest()[:16]  # new options: a new pppd
        return [ChildSpec("pppd", network.pppd_argv(etc, self.netns), env=(("OFFICEBOX_PPPOE", digest),),
                          stop_timeout=10.0)]

    async def _apply(self, config) -> None:
        try:
            self.report = await asyncio.to_thread(network.apply_network, config, self.netns, self.ctx)
        except (network.NetworkError, OSError) as exc:
            raise ApplyError(f"network: {exc}") from exc
        self._config = config
        self._follow(config)

    # -- the WAN's DHCP lease on the bus (other services, DNS first, run in other processes) ---------
    def _follow(self, config) -> None:
        wan = config.network.wan
        wanted = wan.interface if wan.mode in ("dhcp", "pppoe") and not self._hands_off else None
        mode = wan.mode
        if (wanted, mode) == (self._following, self._following_mode) and self._follower is not None \
                and not self._follower.done():
            return
        self._unfollow()
        if wanted is not None:
            self._following, self._following_mode = wanted, mode
            self._follower = asyncio.create_task(self._follow_lease(wanted, mode == "pppoe"), name="network:wan-lease")

    def _unfollow(self) -> None:
        if self._follower is not None:
            self._follower.cancel()  # it waits (sleep or its reading thread): it publishes nothing more
            self._follower = None
        if self._following is not None:
            wan_lease_bus(self.ctx).clear(self._following)
            self._following = self._following_mode = None

    async def _follow_lease(self, ifname: str, pppoe: bool = False) -> None:
        """Publish the lease the udhcpc hook records (or the PPPoE link pppd's hook records: its address,
        the peer as router, the peer's resolvers) whenever it appears, changes or goes; keyed by the WAN
        port's name either way, so DNS finds it where it looks."""
        bus = wan_lease_bus(self.ctx)
        published: object = ...  # nothing yet: the first look publishes (or clears a stale value)
        while True:
            try:
                if pppoe:
                    record = await asyncio.to_thread(network.pppoe_lease, self.ctx, self.netns)
                else:
                    record = await asyncio.to_thread(network.dhcp_lease, self.ctx, self.netns, ifname)
                lease = WanLease.from_lease_file(record) if isinstance(record, dict) else None
                if lease is not None and lease.interface != ifname:
                    lease = replace(lease, interface=ifname)
                if lease != published:
                    if lease is None:
                        bus.clear(ifname)
                    else:
                        log.info("WAN lease on %s: %s, router %s, resolvers %s", ifname, lease.address,
                                 lease.router or "none", " ".join(lease.dns) or "none")
                        bus.publish(lease)
                    published = lease
            except Exception:  # never let the follower die: the next look tries again
                log.exception("cannot publish the WAN lease of %s", ifname)
            await asyncio.sleep(LEASE_POLL)

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
        self._unfollow()
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

    def state(self) -> dict:
        """The interfaces, routes and WAN lease as this process sees them (clients.NetworkClient.state): the
        web admin asks the network's process, whose namespace and DHCP client these are."""
        return self._network_state()

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
        pppoe = state.get("pppoe")
        if pppoe is not None:
            if pppoe["connected"]:
                figures["WAN lease"] = pppoe["address"]
                return Status("ok", f"PPPoE connected: {pppoe['address']} via {pppoe['peer'] or '?'} "
                                    f"on {pppoe['interface']}", figures)
            # degraded, not down: pppd keeps trying by itself; restarting this service would not help
            return Status("degraded", f"PPPoE not connected: {pppoe['problem']}", figures)
        return Status("ok", self.report.get("wan", "applied"), figures)
