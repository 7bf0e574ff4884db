"""The CTI service: the CSTA XML server (server.py) over TCP and TLS, in its own process; it reads the
PBX's call events and drives calls through the PBX's call control, both over the appliance bus."""
from __future__ import annotations

import asyncio
import ssl

from appliance.apply import FieldError
from appliance.certs import box_certificate
from appliance.contributions import Line, Listener, collect
from appliance.service import ApplyError, Service, Status

from .config import CtiConfig
from .server import CtiServer


class CtiService(Service):
    name = "cti"
    title = "CTI server (CSTA)"
    Config = CtiConfig
    depends_on = ("system", "users", "pbx")  # forwarding and DND: the PBX's Line contributions
    lab_enabled = False
    lab_host = "127.0.0.1"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.server: CtiServer | None = None
        self._bound: tuple | None = None

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        cfg: CtiConfig = config.cti
        ports = (cfg.lab_tcp_port, cfg.lab_tls_port) if lab else (cfg.tcp_port, cfg.tls_port)
        return [Listener("cti", "tcp", (p, p), None, "CSTA XML", per_source_limit=20) for p in ports if p]

    def validate(self, config) -> list[FieldError]:
        cfg: CtiConfig = config.cti
        errors = []
        if cfg.tcp_port and cfg.tcp_port == cfg.tls_port:
            errors.append(FieldError("cti.tls_port", "the TLS port must differ from the TCP port"))
        logins = {u.login for u in config.users}
        extensions = {u.extension for u in config.users if u.extension}
        for i, account in enumerate(cfg.accounts):
            if account.name in logins:
                errors.append(FieldError(f"cti.accounts.{i}.name", f"{account.name} is a user's login"))
            unknown = [d for d in account.scope if d != "*" and d not in extensions]
            if unknown:
                errors.append(FieldError(f"cti.accounts.{i}.scope", f"not extensions: {', '.join(unknown[:5])}"))
        return errors

    def _where(self, config) -> tuple:
        cfg: CtiConfig = config.cti
        if self.ctx.lab:
            return self.lab_host, cfg.lab_tcp_port or 0, cfg.lab_tls_port or 0
        return "0.0.0.0", cfg.tcp_port or None, cfg.tls_port or None

    def _tls(self, config) -> ssl.SSLContext:
        cert, key = box_certificate(self.ctx.data_dir, config.system.hostname)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert, key)
        return tls

    async def start(self, config) -> None:
        from appliance.bus import appliance_bus
        host, tcp, tls_port = self._where(config)
        tls = await asyncio.to_thread(self._tls, config) if tls_port is not None else None
        server = CtiServer(config.cti, list(config.users), collect(config, Line, self.ctx.lab), appliance_bus(self.ctx))
        try:
            await server.start(host, tcp, tls_port, tls)
        except OSError as exc:
            await server.stop()
            raise ApplyError(f"cti: cannot listen on {host} ({tcp}, {tls_port}): {exc}") from exc
        self.server, self._bound = server, (host, tcp, tls_port)

    async def reload(self, config) -> None:
        if self.server is None or self._where(config) != self._bound:
            await self.stop()
            if self.enabled(config):
                await self.start(config)
            return
        if not self.enabled(config):
            await self.stop()
            return
        self.server.reconfigure(config.cti, list(config.users), collect(config, Line, self.ctx.lab))

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    # -- for the web admin (appliance/clients.py CtiClient) -------------------------------------------
    def sessions(self) -> dict:
        """{"sessions", "signed_in", "monitors", ...}: the figures of the running server."""
        return self.server.figures() if self.server else {}

    def status(self) -> Status:
        if self.server is None:
            return Status("down", "not running")
        figures = self.server.figures()
        return Status("ok", f"{figures['signed_in']} CTI sessions, {figures['monitors']} monitors", figures)
