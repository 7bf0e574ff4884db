"""The firewall service: render -> `nft -c` check -> `nft -f` load, with commit-confirm.

Commit-confirm (as on Juniper/OPNsense): a change that could cut the admin off — anything that changes
the `input` chain (what reaches the box, the admin port included), or any change while
`confirm_all_changes` is set — is loaded at once but must be confirmed (`confirm()`) within
`confirm_timeout` seconds. Otherwise the last confirmed ruleset is loaded again (from memory, no
configuration needed) and, inside the appliance (`self.runtime` set by the Runtime), the
configuration revision that was current before the change is re-applied with
`runtime.engine.rollback(rev, author="firewall")`, so the store and the ruleset agree again.
Without a runtime (tests, tools) the rollback is recorded in `last_rollback` and `on_rollback`
callbacks are called with it.

The pending state is kept in state/firewall/pending.json: after a restart the confirm window
continues, and expires into the same rollback.

Where rules are loaded: in the namespace `self.netns` when set (tests), the host's namespace on the
box, and nowhere in lab mode (rendered and checked only).
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.apply import FieldError
from appliance.fsutil import atomic_write
from appliance.service import ApplyError, Service, Status
from services.firewall import nft
from services.firewall.config import FirewallConfig
from services.firewall.ruleset import render

log = logging.getLogger("officebox.firewall")
RULESET = "ruleset.nft"


def input_chain(text: str | None) -> str:
    match = re.search(r"\tchain input \{\n(.*?)\n\t\}", text or "", re.S)
    return match.group(1) if match else ""


class FirewallService(Service):
    name = "firewall"
    title = "Firewall and NAT"
    Config = FirewallConfig
    depends_on = ("system", "network", "pbx", "proxy")

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self.loaded: str | None = None  # the ruleset text we last loaded
        self.last_rollback: dict | None = None
        self.on_rollback: list[Callable[[dict], None]] = []
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._pending: dict | None = None
        self._summary = ""

    # -- where ------------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """True when rules really go into a kernel (the box, or a test namespace)."""
        return self.netns is not None or not self.ctx.lab

    @property
    def _pending_file(self) -> Path:
        return self.ctx.state_dir(self.name) / "pending.json"

    def _load(self, text: str) -> None:
        path = self.ctx.run_dir(self.name) / RULESET
        atomic_write(path, text, mode=0o600)
        nft.load(path, self.netns)
        self.loaded = text

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

    async def check(self, config, staged: Path) -> None:
        nft.check(staged / RULESET)

    async def start(self, config) -> None:
        text = render(config)
        with self._lock:
            if self.live:
                self._load(text)
            self._describe(config)
            leftover = self._read_pending()
            if leftover and self.live:  # restarted while a change awaited confirmation
                self._arm(leftover, max(0.0, leftover["deadline"] - time.time()))

    async def reload(self, config) -> None:
        text = render(config)
        with self._lock:
            previous = self.loaded
            if not self.live:
                self._describe(config)
                return
            if previous == text:
                return
            self._load(text)  # raises ApplyError: nft kept the old ruleset, the engine restores
            self._describe(config)
            if self._pending and text == self._pending["previous_ruleset"]:
                self._disarm()  # back to the last confirmed ruleset (e.g. the engine restoring)
                return
            fw: FirewallConfig = config.firewall
            risky = fw.confirm_all_changes or input_chain(previous) != input_chain(text)
            if previous is None or not risky:
                return
            pending = self._pending or {
                "previous_ruleset": previous,
                "previous_revision": self._current_revision(),
            }
            pending["deadline"] = time.time() + fw.confirm_timeout
            self._arm(pending, fw.confirm_timeout)

    async def stop(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()  # pending.json stays: the window continues after a restart
                self._timer = None

    def status(self) -> Status:
        pending = self.pending_confirmation()
        if pending:
            return Status("degraded", f"change awaiting confirmation ({pending['seconds_left']:.0f} s left)")
        if self.last_rollback:
            return Status("ok", f"{self._summary}; last unconfirmed change rolled back")
        return Status("ok", self._summary if self.live else f"{self._summary} (lab mode: not loaded)")

    # -- commit-confirm ---------------------------------------------------------------------------
    def pending_confirmation(self) -> dict | None:
        with self._lock:
            if not self._pending:
                return None
            return {
                "deadline": self._pending["deadline"],
                "seconds_left": max(0.0, self._pending["deadline"] - time.time()),
                "previous_revision": self._pending["previous_revision"],
            }

    def confirm(self) -> bool:
        """Keep the change; True if one was waiting."""
        with self._lock:
            if not self._pending:
                return False
            self._disarm()
            log.info("firewall change confirmed")
            return True

    def _current_revision(self) -> int | None:
        store = getattr(self.runtime, "store", None)
        return store.current_id() if store is not None else None

    def _arm(self, pending: dict, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._pending = pending
        atomic_write(self._pending_file, json.dumps(pending), mode=0o600)
        self._timer = threading.Timer(delay, self._expire)
        self._timer.daemon = True
        self._timer.start()
        log.warning("firewall change needs confirming within %.0f s", delay)

    def _disarm(self) -> None:
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._pending = None
        self._pending_file.unlink(missing_ok=True)

    def _read_pending(self) -> dict | None:
        try:
            data = json.loads(self._pending_file.read_text())
            return data if isinstance(data, dict) and "previous_ruleset" in data else None
        except (OSError, ValueError):
            return None

    def _expire(self) -> None:
        with self._lock:
            pending = self._pending
            if pending is None:
                return
            self._timer = None
            try:
                self._load(pending["previous_ruleset"])
            except ApplyError:
                log.exception("could not restore the previous firewall ruleset")
                return  # keep pending: the admin still sees the banner
            self._pending = None
            self._pending_file.unlink(missing_ok=True)
            record = {"time": time.time(), "previous_revision": pending["previous_revision"], "reverted": None}
            self.last_rollback = record
        log.warning("firewall change not confirmed: previous ruleset restored")
        engine = getattr(self.runtime, "engine", None)
        rev = pending["previous_revision"]
        if engine is not None and rev is not None:
            try:
                record["reverted"] = engine.rollback(rev, "firewall").id
            except Exception:
                log.exception("could not re-apply configuration revision %s", rev)
        for callback in list(self.on_rollback):
            callback(record)

    def _describe(self, config) -> None:
        fw: FirewallConfig = config.firewall
        rules = sum(r.enabled for r in fw.rules)
        forwards = sum(f.enabled for f in fw.port_forwards)
        self._summary = f"{rules} rules, {forwards} port forwards"
