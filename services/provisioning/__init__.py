"""Phone auto-provisioning: HTTP (and read-only TFTP) files rendered from the user directory.

A phone (MAC -> model, user, or handsets for a DECT base) fetches its own file with its own SIP
account; an unknown MAC gets 404. The SIP server comes from the PBX section when there is one.
"""
from __future__ import annotations

import logging

from appliance.service import ApplyError, Service, Status
from services.dhcp.bus import lease_bus
from services.provisioning.config import ProvisioningConfig
from services.provisioning.files import Provisioner
from services.provisioning.http import Auth, HttpServer
from services.provisioning.tftp import TftpServer

log = logging.getLogger("officebox.provisioning")


class ProvisioningService(Service):
    name = "provisioning"
    title = "Phone provisioning"
    Config = ProvisioningConfig
    depends_on = ("system", "network", "users", "pbx")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.provisioner: Provisioner | None = None
        self.http: HttpServer | None = None
        self.tftp: list[TftpServer] = []
        self.ports: dict[str, int] = {}
        self._fetched: dict[str, dict] = {}

    def validate(self, config) -> list[str]:
        users = {u.login: u for u in config.users}
        errors = []
        for phone in config.provisioning.phones:
            for login in phone.logins():
                user = users.get(login)
                if user is None:
                    errors.append(f"phone {phone.mac}: there is no user {login!r}")
                elif not user.extension:
                    errors.append(f"phone {phone.mac}: user {login!r} has no extension number")
        return errors

    def sip_address(self, config) -> tuple[str, int]:
        section: ProvisioningConfig = config.provisioning
        pbx = getattr(config, "pbx", None)
        port = int(getattr(pbx, "sip_port", 5060) or 5060)
        if self.ctx.lab and pbx is not None:
            port = int(getattr(pbx, "lab_sip_port", port) or port)
        if section.sip_server:
            return section.sip_server, port
        net = config.network
        box = net.voice.address.ip if net.voice.enabled else net.lan.address.ip
        return ("127.0.0.1" if self.ctx.lab else str(box)), port

    def _leases(self) -> dict:
        return {lease.mac: lease.ip for lease in lease_bus(self.ctx).active()}

    async def start(self, config) -> None:
        section: ProvisioningConfig = config.provisioning
        host, port = self.sip_address(config)
        self.provisioner = Provisioner(config, host, port, self._leases)
        self.provisioner.fetched = self._fetched
        net = config.network
        if self.ctx.lab:
            listen = ["127.0.0.1"]
        else:  # the data LAN and, for phones on it, the voice VLAN
            listen = [str(net.lan.address.ip)] + ([str(net.voice.address.ip)] if net.voice.enabled else [])
        http_port = section.lab_http_port if self.ctx.lab else section.http_port
        tftp_port = section.lab_tftp_port if self.ctx.lab else section.tftp_port
        auth = Auth(section.auth, section.auth_user, section.auth_password)
        self.http = HttpServer(self._fetch, auth)
        try:
            for host in listen:
                http_port = self.ports["http"] = await self.http.open(host, http_port)
                if section.tftp:
                    tftp = TftpServer(self._fetch)
                    self.tftp.append(tftp)
                    tftp_port = self.ports["tftp"] = tftp.open(host, tftp_port)
        except OSError as exc:
            await self.stop()
            raise ApplyError(f"provisioning: cannot listen on {listen}: {exc}") from exc
        log.info("provisioning on %s %s for %d phones", listen, self.ports, len(section.phones))

    def _fetch(self, path: str, client: str):
        return self.provisioner.fetch(path, client)

    async def reload(self, config) -> None:
        await self.stop()
        await self.start(config)

    async def stop(self) -> None:
        if self.http:
            self.http.close()
            self.http = None
        for tftp in self.tftp:
            tftp.close()
        self.tftp = []

    # -- public API (web admin) ----------------------------------------------------------------
    def last_fetch(self, mac: str) -> dict | None:
        """When and from where the phone last fetched its configuration (None: never, since start)."""
        return self._fetched.get(mac)

    def status(self) -> Status:
        if self.http is None:
            return Status("down", "not running")
        count = len(self.provisioner.phones)
        return Status("ok", f"{len(self._fetched)} of {count} phones provisioned since start",
                      {"phones": count, "provisioned": len(self._fetched), **self.ports})


SERVICE = ProvisioningService
