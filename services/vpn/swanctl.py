"""Talking to charon with its own tool: swanctl --uri <the service's vici socket>.

    load(paths)          (re)load swanctl.conf: connections and keys; removed tunnels are unloaded
    list_sas(paths)      live IKE/CHILD SAs with their traffic counters, parsed from `--list-sas --raw`
    check(staged)        a throwaway charon in an empty network namespace loads the staged files:
                         what it refuses (an unknown algorithm, a bad traffic selector) is never applied
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from services.vpn.strongswan import CHARON, SWANCTL, Paths, strongswan_conf

TIMEOUT = 20.0
CHECK_START = 10.0
NOISE = re.compile(r"^(opening directory .* failed|no (authorities|pools) found|plugin '.*': failed to load)")
# a list is name=[a b]; its items may hold brackets of their own (traffic selectors: 10.1.0.0/24[tcp/80])
TOKEN = re.compile(r"([^\s={}]+)=\[((?:[^\[\]]|\[[^\]]*\])*)\]|([^\s={}]+)=(\S*?)(?=\s|}|$)|([^\s={}]+) \{|(\})")


class SwanctlError(Exception):
    pass


def swanctl(paths: Paths, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "STRONGSWAN_CONF": str(paths.strongswan_conf)}
    return subprocess.run([SWANCTL, *args, "--uri", paths.uri], capture_output=True, text=True,
                          timeout=timeout, env=env)


def problems(result: subprocess.CompletedProcess) -> list[str]:
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if ("failed" in line or "error" in line.lower()) and not NOISE.match(line)]


def load(paths: Paths, conf: Path | None = None) -> None:
    try:
        result = swanctl(paths, "--load-all", "--noprompt", "--file", str(conf or paths.swanctl_conf))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SwanctlError(f"swanctl could not load the tunnels: {exc}") from exc
    if result.returncode != 0 or problems(result):
        raise SwanctlError("charon refused the tunnels: " + ("; ".join(problems(result)[:5]) or
                                                              f"swanctl exited with {result.returncode}"))


def terminate(paths: Paths, ike_name: str) -> None:
    swanctl(paths, "--terminate", "--ike", ike_name, "--timeout", "5", "--force")


def terminate_id(paths: Paths, unique_id: str) -> None:
    swanctl(paths, "--terminate", "--ike-id", unique_id, "--timeout", "5", "--force")


def parse_raw(text: str) -> list[dict]:
    """`swanctl --list-sas --raw` -> one dict per IKE SA (nested sections become dicts, lists lists)."""
    sas: list[dict] = []
    for line in text.splitlines():
        if not line.startswith("list-sa event "):
            continue
        stack: list[dict] = [{}]
        for m in TOKEN.finditer(line[len("list-sa event "):]):
            if m.group(1):
                stack[-1][m.group(1)] = m.group(2).split()
            elif m.group(3):
                stack[-1][m.group(3)] = m.group(4)
            elif m.group(5):
                stack[-1][m.group(5)] = {}
                stack.append(stack[-1][m.group(5)])
            elif len(stack) > 1:
                stack.pop()
        for name, sa in stack[0].items():
            if isinstance(sa, dict):
                sas.append({"name": name, **sa})
    return sas


def list_sas(paths: Paths) -> list[dict]:
    try:
        result = swanctl(paths, "--list-sas", "--raw", "--noblock", timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SwanctlError(f"cannot ask charon for the tunnels' state: {exc}") from exc
    if result.returncode != 0:
        raise SwanctlError(result.stderr.strip()[-300:] or f"swanctl exited with {result.returncode}")
    return parse_raw(result.stdout)


def check(staged: Path) -> None:
    """Load staged/swanctl.conf into a private charon (own vici socket, empty network namespace, owned by
    a user namespace of its own: no CAP_SYS_ADMIN needed, see services/firewall/nft.check)."""
    tmp = Path(tempfile.mkdtemp(prefix="ob-vpn-check-"))
    paths = Paths(etc=tmp, run=tmp)
    paths.strongswan_conf.write_text(strongswan_conf(paths, load_on_start=False))
    env = {**os.environ, "STRONGSWAN_CONF": str(paths.strongswan_conf)}
    daemon = subprocess.Popen(["unshare", "-rn", CHARON], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + CHECK_START
        while swanctl(paths, "--stats").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SwanctlError(f"charon did not start to check the configuration (exit {daemon.poll()})")
            time.sleep(0.05)
        load(paths, staged / "swanctl.conf")  # with the keys and certificates next to it (pkcs8/, x509/)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        shutil.rmtree(tmp, ignore_errors=True)
