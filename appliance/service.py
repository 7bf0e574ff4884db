"""The small interface every service implements (see services/<name>/__init__.py for examples).

Life cycle, driven by the supervisor and the apply engine:
  render(config) -> files   pure: the daemon configuration this service needs, {relative path: content}
  check(config, staged)     optional: validate the staged files with the daemon's own checker
  start(config)             begin serving (in-process asyncio servers) — external daemons are declared
                            by processes(config) and run by the supervisor
  reload(config)            the configuration changed: take it without dropping what can be kept
  stop()                    release everything; must be idempotent
  status()                  health and a few live figures for the dashboard
  confirm_window(old, new)  optional: seconds to confirm a change that could cut the admin off
  contributes(config, lab)  classmethod, pure: ports, redirects, endpoints, DHCP options this service
                            brings, read by others through appliance.contributions.collect

A service named in appliance.runtime.ISOLATED runs its start/reload/stop/status in a process of its
own, as its own user (appliance/servicehost.py); render/validate/check/processes run in the appliance.
What the web admin may ask a running service is listed in appliance/clients.py (JSON in and out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from appliance.context import Context
from appliance.schema import Section

if TYPE_CHECKING:
    from appliance.schema import CoreConfig

Health = Literal["ok", "degraded", "down", "disabled", "starting"]


class ApplyError(Exception):
    """A configuration could not be applied; the message is shown to the admin as is."""


@dataclass
class Status:
    health: Health
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildSpec:
    """An external daemon the supervisor keeps running (restarted with backoff if it dies)."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    reload_signal: int | None = None  # sent on reload when argv did not change; None: the service reloads it
    stop_timeout: float = 10.0


class ServiceConfig(Section):
    """Base for a service's section. Every service can be switched off."""

    enabled: bool = True


class Service:
    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[ServiceConfig]] = ServiceConfig
    # other parts of the configuration whose change means this service must reload
    depends_on: ClassVar[tuple[str, ...]] = ("system", "network")
    # False: switched off in the lab-mode default configuration (e.g. DHCP, which needs a real LAN port)
    lab_enabled: ClassVar[bool] = True
    # configuration changes this service's process may ask for (appliance/changerequests.py): kind -> handler
    change_requests: ClassVar[dict] = {}

    @classmethod
    def lab_defaults(cls, section: dict) -> dict:
        """This service's section of the lab-mode default configuration (from the factory one)."""
        section["enabled"] = cls.lab_enabled
        return section

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.runtime = None  # set by appliance.runtime.Runtime when the service runs inside the appliance

    @classmethod
    def contributes(cls, config: "CoreConfig", lab: bool) -> list:
        """What this service brings to the others (appliance.contributions); called only when enabled."""
        return []

    def section(self, config: "CoreConfig") -> ServiceConfig | None:
        return getattr(config, self.name, None)

    def enabled(self, config: "CoreConfig") -> bool:
        section = getattr(config, self.name, None)
        return section is None or section.enabled

    def confirm_window(self, old: "CoreConfig", new: "CoreConfig") -> float | None:
        """Seconds the admin has to confirm this change before it is rolled back (appliance/confirm.py),
        for a change that could cut them off; None: no confirmation needed (the default)."""
        return None

    def validate(self, config: "CoreConfig") -> list[str]:
        """Cross-section checks pydantic cannot do alone; return human-readable errors."""
        return []

    def render(self, config: "CoreConfig") -> dict[str, str | bytes]:
        return {}

    async def check(self, config: "CoreConfig", staged: Path) -> None:
        """Raise ApplyError if the staged files are refused by the daemon's own checker."""

    def processes(self, config: "CoreConfig") -> list[ChildSpec]:
        return []

    async def start(self, config: "CoreConfig") -> None:
        pass

    async def reload(self, config: "CoreConfig") -> None:
        """Default: nothing beyond what the supervisor does for child processes."""

    async def stop(self) -> None:
        pass

    def status(self) -> Status:
        return Status("ok")
