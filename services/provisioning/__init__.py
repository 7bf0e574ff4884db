"""Phone auto-provisioning: HTTP (and read-only TFTP) files rendered from the user directory.

A phone (MAC -> model, user, or handsets for a DECT base) fetches its own file with its own SIP
account; an unknown MAC gets 404. By default a phone's file goes only to the address DHCP leased to that
MAC (a host that learnt the MAC by ARP gets 403), optionally behind one shared or a per-phone password
(then never over TFTP, which cannot authenticate); HTTPS with the box certificate beside HTTP. Every
request is logged (fetchlog). The SIP server comes from the PBX section when there is one.
"""
from __future__ import annotations

import asyncio
import logging
import ssl

from appliance.apply import FieldError
from appliance.certs import box_certificate
from appliance.contributions import DhcpOption, DnsName, Endpoint, collect
from appliance.leases import lease_bus
from appliance.service import ApplyError, Service, Status
from services.provisioning.config import ProvisioningConfig
from services.provisioning.fetchlog import FetchLog
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
        self.log: FetchLog | None = None
        self._follow = None  # our interest in the DHCP leases (appliance/leases.py)

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        """DHCP option 66 (where phones fetch their files) on the box's address of each network, and the
        name `provisioning` for phones and admins who type a server name."""
        return [DhcpOption(66, f"http://{{box}}:{config.provisioning.http_port}/"),
                DnsName("provisioning", comment="phone provisioning")]

    @classmethod
    def lab_defaults(cls, section: dict) -> dict:
        section = super().lab_defaults(section)
        section["require_dhcp_lease"] = False  # a lab box runs no DHCP server: there are no leases
        return section

    def validate(self, config) -> list[FieldError]:
        users = {u.login: u for u in config.users}
        errors = []
        for k, phone in enumerate(config.provisioning.phones):
            field = f"provisioning.phones.{k}." + ("handsets" if phone.handsets else "user")
            for login in phone.logins():
                user = users.get(login)
                if user is None:
                    errors.append(FieldError(field, f"phone {phone.mac}: there is no user {login!r}"))
                elif not user.extension:
                    errors.append(FieldError(field, f"phone {phone.mac}: user {login!r} has no extension number"))
        return errors

    def sip_address(self, config) -> tuple[str, int]:
        """Where the phones register: the "sip" endpoint a service contributes (the PBX), 5060 if none."""
        section: ProvisioningConfig = config.provisioning
        endpoints = [e for e in collect(config, Endpoint, self.ctx.lab) if e.name == "sip"]
        port = endpoints[0].port if endpoints and endpoints[0].port else 5060
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
        self.provisioner = Provisioner(config, host, port, self._leases, self.ctx.data_dir)
        self.provisioner.fetched = self._fetched
        net = config.network
        if self.ctx.lab:
            listen = ["127.0.0.1"]
        else:  # the data LAN and, for phones on it, the voice VLAN
            listen = [str(net.lan.address.ip)] + ([str(net.voice.address.ip)] if net.voice.enabled else [])
        http_port = section.lab_http_port if self.ctx.lab else section.http_port
        tftp_port = section.lab_tftp_port if self.ctx.lab else section.tftp_port
        https_port = section.lab_https_port if self.ctx.lab else section.https_port
        if self.log is None:
            self.log = FetchLog(self.ctx.state_dir(self.name) / "fetches.jsonl")
        if self._follow is None:  # in its own process the bus then brings the leases, and keeps them
            self._follow = lease_bus(self.ctx).subscribe(lambda event, lease: None)
        auth = Auth(section.auth_kind, section.auth_user, section.auth_password,
                    {p.digits: p.auth_secret for p in section.phones if p.auth_secret})
        tls = await asyncio.to_thread(self._tls_context, config) if section.https else None
        self.http = HttpServer(self.provisioner.fetch, auth, self._record)
        try:
            for host in listen:
                http_port = self.ports["http"] = await self.http.open(host, http_port)
                if tls is not None:
                    https_port = self.ports["https"] = await self.http.open(host, https_port, tls)
                if section.tftp:
                    tftp = TftpServer(self._fetch_tftp)
                    self.tftp.append(tftp)
                    tftp_port = self.ports["tftp"] = tftp.open(host, tftp_port)
        except OSError as exc:
            await self.stop()
            raise ApplyError(f"provisioning: cannot listen on {listen}: {exc}") from exc
        self.provisioner.base_urls = {kind: f"{kind}://{self.provisioner.site.sip_host}:{self.ports[kind]}"
                                      for kind in ("http", "https") if kind == "http" or tls}  # phone books
        log.info("provisioning on %s %s for %d phones", listen, self.ports, len(section.phones))

    def _tls_context(self, config) -> ssl.SSLContext:
        cert, key = box_certificate(self.ctx.data_dir, config.system.hostname)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2  # older desk phones stop at TLS 1.2
        tls.load_cert_chain(cert, key)
        return tls

    def _record(self, client: str, path: str, status: int, transport: str) -> None:
        self.log.record(client, path, status, transport, self.provisioner.mac_of(path) if path else None)

    def _fetch_tftp(self, path: str, client: str, identity, transport: str):
        answer = self.provisioner.fetch(path, client, identity, transport)
        self._record(client, path, answer[0], transport)
        return answer

    async def reload(self, config) -> None:
        await self.stop()
        await self.start(config)

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow()
            self._follow = None
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

    def recent_requests(self, count: int = 50) -> list[dict]:
        """The newest provisioning requests, answered or refused, newest first."""
        return self.log.newest(count) if self.log else []

    def status(self) -> Status:
        if self.http is None:
            return Status("down", "not running")
        count = len(self.provisioner.phones)
        return Status("ok", f"{len(self._fetched)} of {count} phones provisioned since start",
                      {"phones": count, "provisioned": len(self._fetched), **self.ports})


SERVICE = ProvisioningService
