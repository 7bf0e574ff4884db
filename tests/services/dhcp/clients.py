"""Real DHCP clients (busybox udhcpc, ISC dhclient) run in a test namespace; they report what they got."""
from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

SCRIPT = """#!/bin/sh
env | sort > "{out}/${{1:-$reason}}.env"
"""


def _script(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "hook.sh"
    script.write_text(SCRIPT.format(out=shlex.quote(str(folder)).strip("'")))
    script.chmod(0o755)
    return script


def read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def udhcpc(host, interface: str, folder: Path, *extra: str, timeout: float = 20) -> dict[str, str]:
    """One lease with busybox udhcpc (-q: quit once bound); returns the script environment of 'bound'."""
    script = _script(folder)
    for old in folder.glob("*.env"):
        old.unlink()
    host.run("udhcpc", "-i", interface, "-f", "-q", "-n", "-t", "4", "-T", "2", "-s", str(script),
             "-O", "42", "-O", "66", "-O", "150", "-O", "43", *extra, check=False, timeout=timeout)
    return read_env(folder / "bound.env")


DHCLIENT_CONF = """send host-name "{hostname}";
{vendor}
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, ntp-servers,
        dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time, tftp-server-name;
timeout 15;
retry 1;
reboot 4;
"""


def dhclient(host, interface: str, folder: Path, hostname: str = "isc-pc", vendor: str = "",
             timeout: float = 25) -> dict[str, str]:
    """One lease with ISC dhclient (-1); keeps its lease file in `folder` so a second call reboots."""
    script = _script(folder)
    for old in folder.glob("*.env"):
        old.unlink()
    conf = folder / "dhclient.conf"
    vendor_line = f'send vendor-class-identifier "{vendor}";' if vendor else ""
    conf.write_text(DHCLIENT_CONF.format(hostname=hostname, vendor=vendor_line))
    pidfile = folder / "dhclient.pid"
    host.run("dhclient", "-1", "-v", "-cf", str(conf), "-lf", str(folder / "dhclient.leases"), "-pf", str(pidfile),
             "-sf", str(script), interface, check=False, timeout=timeout)
    if pidfile.exists():  # dhclient went to the background once bound: stop it without a release
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        pidfile.unlink()
    for reason in ("BOUND", "REBOOT", "RENEW"):
        env = read_env(folder / f"{reason}.env")
        if env:
            return env
    return {}
