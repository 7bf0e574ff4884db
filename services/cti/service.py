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
        api = cfg.lab_api_port if lab else cfg.api_port
        return [*(Listener("cti", "tcp", (p, p), None, "CSTA XML", per_source_limit=20) for p in ports if p),
                *((Listener("cti", "tcp", (api, api), None, "CTI JSON API", per_source_limit=50),) if api else ())]

    def validate(self, config) -> list[FieldError]:
        cfg: CtiConfig = config.cti
        errors = []
        if cfg.tcp_port and cfg.tcp_port == cfg.tls_port:
            errors.append(FieldError("cti.tls_port", "the TLS port must differ from the TCP port"))
        extensions = {u.extension for u in config.users if u.extension}
        if cfg.api_port and cfg.api_port in (cfg.tcp_port, cfg.tls_port):
            errors.append(FieldError("cti.api_port", "the JSON API port must differ from the CSTA ports"))
        for i, token in enumerate(cfg.api_tokens):
            unknown = [d for d in token.scope if d != "*" and d not in extensions]
            if unknown:
                errors.append(FieldError(f"cti.api_tokens.{i}.scope", f"not extensions: {', '.join(unknown[:5])}"))
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
            return self.lab_host, cfg.lab_tcp_port or 0, cfg.lab_tls_port or 0, cfg.lab_api_port or 0
        return "0.0.0.0", cfg.tcp_port or None, cfg.tls_port or None, cfg.api_port or None

    def _tls(self, config) -> ssl.SSLContext:
        cert, key = box_certificate(self.ctx.data_dir, config.system.hostname)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert, key)
        return tls

    async def start(self, config) -> None:
        from appliance.bus import appliance_bus
        host, tcp, tls_port, api_port = where = self._where(config)
        need_tls = tls_port is not None or (api_port is not None and not self.ctx.lab)
        tls = await asyncio.to_thread(self._tls, config) if need_tls else None
        server = CtiServer(config.cti, list(config.users), collect(config, Line, self.ctx.lab), appliance_bus(self.ctx))
        try:  # the JSON API: HTTPS on the box, plain HTTP on 127.0.0.1 in lab mode
            await server.start(host, tcp, tls_port, tls, api_port, None if self.ctx.lab else tls)
        except OSError as exc:
            await server.stop()
            raise ApplyError(f"cti: cannot listen on {host} ({tcp}, {tls_port}, {api_port}): {exc}") from exc
        self.server, self._bound = server, where

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

    def mint_desk_token(self, login: str) -> dict:
        """A short-lived JSON API token for `login`'s own extension (the staff desk page):
        {"token", "expires", "extension", "port", "tls"}; {} while the server is not running."""
        if self.server is None or not self.server.api.port:
            return {}
        return {**self.server.api.mint_desk_token(login), "tls": not self.ctx.lab}

    def status(self) -> Status:
        if self.server is None:
            return Status("down", "not running")
        figures = self.server.figures()
        return Status("ok", f"{figures['signed_in']} CTI sessions, {figures['monitors']} monitors", figures)
