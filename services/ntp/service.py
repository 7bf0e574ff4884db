"""The time service: a chrony controller.

render -> `chronyd -p` in check() (chrony parses the staged file; one it refuses is never applied)
-> chronyd runs as a supervised child (`processes()`, through services.ntp.launch) -> a changed
configuration restarts it (chrony has no reload; the argv carries the file's digest).

On the box chronyd follows the configured pools/servers (over the WAN, by routing), disciplines the
system clock and serves the LAN networks on port 123. In lab mode without `netns` it serves only
127.0.0.1 on lab_port, from the local clock, with no upstream and without touching this machine's
clock. `netns` (tests), or an appliance that itself runs in a network namespace other than init's
(a box in a test namespace): chronyd serves as on the box but never sets the clock, which the
namespace shares with the host.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from appliance.contributions import DhcpOption, Endpoint
from appliance.service import ApplyError, ChildSpec, Service, Status
from services.ntp.chronyconf import Paths, lan_networks, render
from services.ntp.config import NtpConfig


def owns_clock() -> bool:
    """True in init's network namespace (the box itself); False in any other, or when unsure."""
    try:
        return os.readlink("/proc/self/ns/net") == os.readlink("/proc/1/ns/net")
    except OSError:
        return False


class NtpService(Service):
    name = "ntp"
    title = "Time server (NTP)"
    Config = NtpConfig

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        """The box serves time on the LAN: DHCP option 42 and the phones' time server point at it."""
        return [DhcpOption(42, "{box}"), Endpoint("ntp", config.ntp.lab_port if lab else 123)]

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self._config = None

    @property
    def lab_only(self) -> bool:
        return self.ctx.lab and self.netns is None

    @property
    def sets_clock(self) -> bool:
        return not self.ctx.lab and self.netns is None and owns_clock()

    @property
    def paths(self) -> Paths:
        return Paths(run=self.ctx.run_dir(self.name))

    def render(self, config) -> dict[str, str]:
        return {"chrony.conf": render(config, self.paths, self.lab_only, self.sets_clock)}

    async def check(self, config, staged: Path) -> None:
        try:
            result = await asyncio.to_thread(subprocess.run, ["chronyd", "-p", "-f", str(staged / "chrony.conf")],
                                             capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplyError(f"could not run chronyd to check the time server configuration: {exc}") from exc
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [f"chronyd -p exited with {result.returncode}"]
            raise ApplyError(f"chrony refused the time server configuration: {detail[0]}")

    def processes(self, config) -> list[ChildSpec]:
        digest = hashlib.sha256(self.render(config)["chrony.conf"].encode()).hexdigest()[:16]
        argv = (sys.executable, "-m", "services.ntp.launch", str(self.ctx.etc_dir(self.name) / "chrony.conf"),
                digest, *(() if self.sets_clock else ("--no-clock",)))
        if self.netns:
            argv = ("ip", "netns", "exec", self.netns, *argv)
        return [ChildSpec("chronyd", argv, stop_timeout=5.0)]

    async def start(self, config) -> None:
        self._config = config

    async def reload(self, config) -> None:
        self._config = config

    async def stop(self) -> None:
        self._config = None

    def status(self) -> Status:
        if self._config is None:
            return Status("starting", "starting")
        ntp: NtpConfig = self._config.ntp
        if self.lab_only:
            return Status("ok", f"lab mode: local clock on 127.0.0.1:{ntp.lab_port}", {"upstream": "none"})
        upstream = ", ".join(ntp.pools + ntp.servers) or "none (local clock)"
        return Status("ok", f"serving {', '.join(lan_networks(self._config))}", {"upstream": upstream})
