"""One running appliance: the store, the apply engine, the services, the supervisor, the web admin.

When serving, the services named in `isolate` (ISOLATED by default) run each in a child process of
their own (appliance/servicehost.py), the others on this process's loop; the event bus crosses
processes through a BusHub on run/core/bus.sock. The web admin reaches services only through
`client(name)` (appliance/clients.py), whichever process runs them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

from appliance import backup, control, gcpolicy, limits, logfiles
from appliance.apply import ApplyEngine
from appliance.backupjobs import BackupJobs
from appliance.bus import BusHub, appliance_bus
from appliance.certs import box_certificate, box_names, send_tls_alerts
from appliance.changerequests import ChangeRequests
from appliance.clients import ServiceClient, client_for
from appliance.context import Context
from appliance.defaults import default_document
from appliance.firmware import BoxFirmware
from appliance.netservice import NetworkService
from appliance.notify import Notifier
from appliance.schema import CoreConfig
from appliance.service import Service, Status
from appliance.servicehost import IsolatedService
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor
from services import discover

log = logging.getLogger("officebox")
CERT_CHECK_INTERVAL = 10.0
# services moved to a process of their own so far; the others follow
ISOLATED = ("network", "mail", "dns", "dhcp", "provisioning", "ntp", "proxy", "pbx", "cti", "vpn", "firewall")


def isolated_services() -> tuple[str, ...]:
    """ISOLATED, or the comma list in OFFICEBOX_ISOLATE ("" = all in-process, for comparisons)."""
    chosen = os.environ.get("OFFICEBOX_ISOLATE")
    return ISOLATED if chosen is None else tuple(n.strip() for n in chosen.split(",") if n.strip())


def _stamp(path: Path) -> tuple[str, int]:
    return str(path), path.stat().st_mtime_ns


class Runtime:
    def __init__(self, data_dir: Path | str, lab: bool = False, isolate: tuple[str, ...] | None = None) -> None:
        self.ctx = Context(Path(data_dir), lab=lab)
        self.isolate = isolated_services() if isolate is None else isolate
        self.store = ConfigStore(self.ctx.db_path)
        core = {NetworkService.name: NetworkService}  # the network comes up before any service binds
        self.services: dict[str, Service] = {name: cls(self.ctx) for name, cls in {**core, **discover()}.items()}
        for service in self.services.values():
            service.runtime = self
        self.engine = ApplyEngine(self.ctx, self.store, self.services)
        self.supervisor: Supervisor | None = None
        self.backups = BackupJobs(self.ctx, self.engine, lambda: self.config)
        self.notifier = Notifier(self.ctx, lambda: self.config, self.client, lambda: self.supervisor,
                                 backups=self.backups)
        self.admin_url: str | None = None
        self.restart_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def config(self) -> CoreConfig:
        return self.engine.current_config()

    def bootstrap(self) -> None:
        """Recover from an interrupted apply; on a new box, apply the factory configuration."""
        self.engine.recover()
        if self.store.current() is None:
            self.engine.apply(default_document(self.ctx.lab), "system", "factory configuration")

    def restore_staged(self) -> None:
        """At start, before any service: restore a backup the admin staged before the restart."""
        try:
            restored = backup.restore_pending(self.ctx, self.engine)
        except Exception as exc:  # the box keeps its current state and starts
            log.error("the staged backup could not be restored (kept as %s): %s", backup.FAILED, exc)
        else:
            if restored is not None:
                log.warning("backup restored as revision #%d", restored)

    def request_restart(self, delay: float = 1.0) -> None:
        """Stop cleanly and start again (thread-safe); the delay lets a web page answer first."""
        if self._loop is None or self._stop is None:
            raise RuntimeError("the appliance is not serving")
        self.restart_requested = True
        stop = self._stop
        self._loop.call_soon_threadsafe(lambda: self._loop.call_later(delay, stop.set))

    def client(self, name: str) -> ServiceClient | None:
        """The typed client of service `name` (None: no such service)."""
        service = self.services.get(name)
        return client_for(service) if service is not None else None

    def status(self) -> dict[str, Status]:
        if self.supervisor is None:
            return {name: Status("down", "appliance not running") for name in self.services}
        return {name: self.supervisor.status(name) for name in self.services}

    # -- serving --------------------------------------------------------------------------------
    def admin_address(self, config: CoreConfig, port: int | None) -> tuple[str, int]:
        if self.ctx.lab:
            return "127.0.0.1", config.system.lab_admin_port if port is None else port
        return "0.0.0.0", config.system.admin_port if port is None else port

    def _certificate(self, config: CoreConfig) -> tuple[Path, Path]:
        return box_certificate(self.ctx.data_dir, config.system.hostname, box_names(config))

    def _start_webadmin(self, host: str, port: int) -> threading.Thread:
        from webadmin import create_app
        from webadmin.server import AdminServer

        cert, key = self._certificate(self.config)
        self._web = AdminServer(host, port, create_app(self), cert, key)
        self._web.prepare()  # binds now: a port in use fails the start
        self.admin_url = f"https://{'127.0.0.1' if host == '0.0.0.0' else host}:{self._web.port}/"
        thread = threading.Thread(target=self._web.serve, name="webadmin", daemon=True)
        thread.start()
        from webadmin.publicsite import PublicSite
        self._public = PublicSite(self._web.app, self._certificate, self.ctx.lab)  # pbx.public_web's port
        return thread

    async def _renew_certificate(self) -> None:
        """When the box's names or LAN addresses change, the certificate follows (checked every few s)."""
        while True:
            await asyncio.sleep(CERT_CHECK_INTERVAL)
            try:
                cert, key = await asyncio.to_thread(self._certificate, self.config)
                if _stamp(cert) != self._cert_stamp:
                    self._cert_stamp = _stamp(cert)
                    self._web.reload_certificate(cert, key)
                    self._public.reload_certificate(cert, key)
                    log.warning("box certificate renewed for new names or addresses")
            except Exception:  # a failed renewal keeps the certificate in use
                log.exception("box certificate renewal failed")

    def _first_boot_code(self, config: CoreConfig) -> str | None:
        """Before the wizard ran, a new one-time setup code for each start (printed on the console)."""
        from webadmin.security import SetupCode

        code = SetupCode(self.ctx.data_dir)
        if config.system.initialized:
            code.discard()
            return None
        return code.issue()

    async def serve(self, admin_port: int | None = None, ready: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT: services, web admin, control socket."""
        log_handler = logfiles.attach_appliance_log(self.ctx)
        try:
            await self._serve(admin_port, ready)
        finally:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()

    async def _serve(self, admin_port: int | None, ready: asyncio.Event | None) -> None:
        await asyncio.to_thread(self.bootstrap)
        await asyncio.to_thread(self.restore_staged)
        config = self.config
        limits.raise_open_files()
        hub = BusHub(appliance_bus(self.ctx))
        bus_path = self.ctx.run_dir("core") / "bus.sock"
        await hub.serve(bus_path)
        for name in self.isolate:
            if name in self.services and not isinstance(self.services[name], IsolatedService):
                self.services[name] = IsolatedService(self.services[name], bus_path)
        self.supervisor = Supervisor(self.ctx, self.services)
        self.engine.live = self.supervisor
        change_requests = ChangeRequests(self.engine, self.services, appliance_bus(self.ctx))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, stop
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await asyncio.to_thread(self._certificate, config)  # before the mail service loads it
        send_tls_alerts()
        await self.supervisor.start(config)
        self.engine.confirmation.resume()  # a change awaiting confirmation before the restart
        gcpolicy.tune_for_serving()
        server = await control.serve(self, self.ctx.run_dir("core") / "control.sock")
        host, port = self.admin_address(config, admin_port)
        self._start_webadmin(host, port)
        self._cert_stamp = _stamp(self._certificate(config)[0])
        renewal = asyncio.create_task(self._renew_certificate())
        public = asyncio.create_task(self._public.follow(lambda: self.config), name="public-web")
        notifying = asyncio.create_task(self.notifier.run(), name="notify")
        backing_up = asyncio.create_task(self.backups.serve(), name="backups")
        bounding_logs = asyncio.create_task(logfiles.keep_bounded_forever(self.ctx), name="logs")
        setup_code = await asyncio.to_thread(self._first_boot_code, config)
        mode = "lab mode" if self.ctx.lab else "appliance"
        print(f"OfficeBox running ({mode}); data in {self.ctx.data_dir}", flush=True)
        print(f"  web admin: {self.admin_url}", flush=True)
        if setup_code:
            print(f"  setup code: {setup_code}  (the first-boot wizard asks for it)", flush=True)
        for name, status in self.status().items():
            print(f"  {name:<14} {status.health:<9} {status.summary}", flush=True)
        BoxFirmware(self.ctx.data_dir).mark_good()  # up with its web admin: no rollback at next start
        if ready:
            ready.set()
        try:
            await stop.wait()
        finally:
            print("OfficeBox stopping", flush=True)
            renewal.cancel()
            public.cancel()
            notifying.cancel()
            backing_up.cancel()
            bounding_logs.cancel()
            await asyncio.to_thread(self._public.stop)
            await asyncio.to_thread(self._web.stop)
            server.close()
            self.engine.confirmation.close()
            await self.supervisor.stop()
            await asyncio.to_thread(change_requests.close)
            await hub.close()
            self.store.close()
