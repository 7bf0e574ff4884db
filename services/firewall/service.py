"""The firewall service: render -> `nft -c` check -> `nft -f` load.

Commit-confirm (appliance/confirm.py, a property of the configuration transaction): a change that
could cut the admin off — anything that changes the `input` chain (what reaches the box, the admin
port included), or any change while `confirm_all_changes` is set — asks for `confirm_timeout` seconds
of confirmation; unconfirmed, the engine re-applies the revision from before, and with it the ruleset.

The WAN's RTP range opens only toward the calls' media addresses (mediaset.py: nft sets fed from the
bus, written by a thread of the service while it runs live).

Where rules are loaded: in the namespace `self.netns` when set (tests), the host's namespace on the
box, and nowhere in lab mode (rendered and checked only).
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path

from appliance.apply import FieldError
from appliance.bus import appliance_bus
from appliance.fsutil import atomic_write
from appliance.service import Service, Status
from services.firewall import mediaset, nft
from services.firewall.config import FirewallConfig
from services.firewall.ruleset import TABLE, render

log = logging.getLogger("officebox.firewall")
RULESET = "ruleset.nft"


def input_chain(text: str | None) -> str:
    match = re.search(r"\tchain input \{\n(.*?)\n\t\}", text or "", re.S)
    return match.group(1) if match else ""


class FirewallService(Service):
    name = "firewall"
    title = "Firewall and NAT"
    Config = FirewallConfig
    depends_on = ("system", "network", "pbx", "proxy", "vpn")

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self.loaded: str | None = None  # the ruleset text we last loaded
        self._lock = threading.RLock()
        self._summary = ""
        self.media: mediaset.MediaPeers | None = None

    # -- where ------------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """True when rules really go into a kernel (the box, or a test namespace)."""
        return self.netns is not None or not self.ctx.lab

    def _load(self, text: str) -> None:
        path = self.ctx.run_dir(self.name) / RULESET
        atomic_write(path, text, mode=0o600)
        nft.load(path, self.netns)
        self.loaded = text
        if self.media is not None:  # the new table's media sets start empty
            self._write_media(self.media.addresses())

    def _write_media(self, addresses: set[str]) -> None:
        with self._lock:
            if self.loaded is not None:
                nft.run_script(mediaset.script(TABLE, addresses), self.netns)

    def _follow_media(self) -> None:
        if self.live and self.media is None:
            self.media = mediaset.MediaPeers(appliance_bus(self.ctx), self._write_media)
            self.media.start()

    # -- Service interface ------------------------------------------------------------------------
    def validate(self, config) -> list[FieldError]:
        fw: FirewallConfig = config.firewall
        inside = [*config.network.lan_networks(), *fw.vpn_networks]
        errors = []
        for k, fwd in enumerate(fw.port_forwards):
            if fwd.enabled and not any(fwd.to_address in net for net in inside):
                errors.append(FieldError(f"firewall.port_forwards.{k}.to_address", f"port forward {fwd.name}: "
                                         f"{fwd.to_address} is not on the LAN, voice or VPN networks"))
            if fwd.enabled and fwd.protocol == "tcp" and fwd.wan_port == config.system.admin_port and fw.admin_from_wan:
                errors.append(FieldError(f"firewall.port_forwards.{k}.wan_port", f"port forward {fwd.name} takes the "
                                         "admin port used for remote administration"))
        return errors

    def render(self, config) -> dict[str, str]:
        return {RULESET: render(config)}

    # nft runs off the event loop: tens of milliseconds here, seconds on a loaded box
    async def check(self, config, staged: Path) -> None:
        await asyncio.to_thread(nft.check, staged / RULESET)

    async def start(self, config) -> None:
        await asyncio.to_thread(self._start, config)

    def _start(self, config) -> None:
        text = render(config)
        with self._lock:
            if self.live:
                self._load(text)
            self._describe(config)
        self._follow_media()
        (self.ctx.state_dir(self.name) / "pending.json").unlink(missing_ok=True)  # the firmware before 2

    async def reload(self, config) -> None:
        await asyncio.to_thread(self._reload, config)

    def _reload(self, config) -> None:
        text = render(config)
        with self._lock:
            if self.live and self.loaded != text:
                self._load(text)  # raises ApplyError: nft kept the old ruleset, the engine restores
            self._describe(config)

    async def stop(self) -> None:
        media, self.media = self.media, None
        if media is not None:
            await asyncio.to_thread(media.stop)

    def confirm_window(self, old, new) -> float | None:
        """A change to what reaches the box (or any change with confirm_all_changes) needs confirming."""
        fw: FirewallConfig = new.firewall
        if not self.live or not (fw.confirm_all_changes or input_chain(render(old)) != input_chain(render(new))):
            return None
        return float(fw.confirm_timeout)

    def counters(self) -> list[dict]:
        """What the counted rules matched since the ruleset was last loaded (nft.counters); [] when not live."""
        if not self.live or self.loaded is None:
            return []
        return nft.counters(self.netns, TABLE)

    def status(self) -> Status:
        return Status("ok", self._summary if self.live else f"{self._summary} (lab mode: not loaded)")

    def _describe(self, config) -> None:
        fw: FirewallConfig = config.firewall
        rules = sum(r.enabled for r in fw.rules)
        forwards = sum(f.enabled for f in fw.port_forwards)
        self._summary = f"{rules} rules, {forwards} port forwards"
