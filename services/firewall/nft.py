"""Run the real `nft`: load a ruleset (all or nothing) or check one without touching any namespace."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from appliance.service import ApplyError


def _run(argv: list[str], timeout: float = 30, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApplyError(f"could not run {argv[0]}: {exc}") from exc


def load(path: Path, netns: str | None = None) -> None:
    """`nft -f`: the file is one transaction; if it fails the previous ruleset stays in force."""
    argv = ["nft", "-f", str(path)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    result = _run(argv)
    if result.returncode != 0:
        raise ApplyError(f"nft refused the ruleset: {result.stderr.strip()[:2000]}")


def run_script(text: str, netns: str | None = None) -> None:
    """`nft -f -`: a few commands (set elements) as one transaction, against the loaded ruleset."""
    argv = ["nft", "-f", "-"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    result = _run(argv, timeout=10, stdin=text)
    if result.returncode != 0:
        raise ApplyError(f"nft refused: {result.stderr.strip()[:2000]}")


def check(path: Path) -> None:
    """`nft -c -f` inside a fresh, empty network namespace: validates against the kernel, changes nothing.
    The namespace is owned by a user namespace of its own (-r): that needs no CAP_SYS_ADMIN, which the
    appliance's unit does not give (buildroot/package/officebox/officebox.service)."""
    result = _run(["unshare", "-rn", "nft", "-c", "-f", str(path)])
    if result.returncode != 0:
        raise ApplyError(f"nft refused the ruleset: {result.stderr.strip()[:2000]}")


def list_table(netns: str | None = None, table: str = "officebox") -> str:
    argv = ["nft", "list", "table", "inet", table]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    result = _run(argv)
    return result.stdout if result.returncode == 0 else ""


def counters(netns: str | None = None, table: str = "officebox") -> list[dict]:
    """The loaded table's counted rules, summed by comment in ruleset order (a rule rendered once per zone
    interface counts once): [{"rule", "chain", "packets", "bytes"}]; [] without the table."""
    argv = ["nft", "-j", "list", "table", "inet", table]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    result = _run(argv)
    if result.returncode != 0:
        return []
    try:
        entries = json.loads(result.stdout).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    found: dict[tuple[str, str], dict] = {}
    for entry in entries:
        rule = entry.get("rule") if isinstance(entry, dict) else None
        if not isinstance(rule, dict) or not rule.get("comment"):
            continue
        for expr in rule.get("expr") or []:
            counter = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(counter, dict):
                key = (str(rule.get("chain", "")), str(rule["comment"]))
                row = found.setdefault(key, {"rule": key[1], "chain": key[0], "packets": 0, "bytes": 0})
                row["packets"] += int(counter.get("packets", 0))
                row["bytes"] += int(counter.get("bytes", 0))
    return list(found.values())
