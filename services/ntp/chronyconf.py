"""chrony.conf for the box: serve the LAN networks, follow the configured upstreams (none in lab mode)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOCAL_STRATUM = 10  # what LAN clients see while no upstream is reachable (or in lab mode)


@dataclass(frozen=True)
class Paths:
    run: Path  # pid file

    @property
    def pidfile(self) -> Path:
        return self.run / "chronyd.pid"


def lan_networks(config) -> list[str]:
    nets = [str(config.network.lan.address.network)]
    if config.network.voice.enabled:
        nets.append(str(config.network.voice.address.network))
    return nets


def render(config, paths: Paths, lab_only: bool, sets_clock: bool) -> str:
    ntp = config.ntp
    lines = ["# written by OfficeBox from the ntp section; changes here are lost", ""]
    if lab_only:
        lines += ["# lab mode: no upstream, no traffic leaves this machine; the local clock only",
                  "bindaddress 127.0.0.1", f"port {ntp.lab_port}", "allow 127.0.0.1"]
    else:
        lines += [f"pool {name} iburst maxsources 4" for name in ntp.pools]
        lines += [f"server {name} iburst" for name in ntp.servers]
        lines += ["port 123"] + [f"allow {net}" for net in lan_networks(config)]
    lines += [
        f"local stratum {LOCAL_STRATUM}",
        "ratelimit interval 1 burst 16",  # per client address; the client log itself is bounded
        "clientloglimit 1048576",
        "cmdport 0",
        "bindcmdaddress /",  # no command socket either
        f"pidfile {paths.pidfile}",
    ]
    if sets_clock:
        lines += ["makestep 1.0 3", "rtcsync"]
    return "\n".join(lines) + "\n"
