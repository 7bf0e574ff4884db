"""PBX: our own asyncio SIP stack, registrar, B2BUA call control with an RTP relay, trunks, dial plan, CDRs.

Plug-in points (no call-control code to touch): applications a destination may name (apps.py:
voicemail:, attendant:, queue:, conference:, app:), SUBSCRIBE event packages (sip/subscribe.py; the
dialog package for BLF is blf.py), call events on the appliance bus (events.py), calls the box places
itself (PbxCore.originate / bridge).

Configuration: section `pbx` (services/pbx/config.py, class PbxConfig). Extensions come from the user
directory (config.users: enabled users with an `extension`; SIP username = extension, password =
`sip_secret`). Lab mode binds 127.0.0.1:`lab_sip_port` (0 = any free port, see `sip_port` attribute)
and RTP in `lab_rtp_port_min..max`; on the box 0.0.0.0:`sip_port`, RTP `rtp_port_min..max`.

Public methods for the web admin (thread-safe snapshots; call them on the running service instance):
  registrations() -> [{"extension", "contact", "source", "expires_in", "user_agent"}]
  active_calls()  -> [{"id", "state" (setup|connected), "caller", "caller_name", "dialled", "callee",
                       "direction" (internal|inbound|outbound), "trunk", "started", "answered" (epoch or None),
                       "on_hold", "relay": {party: {"packets", "bytes", "forwarded", "rtcp", "lost", "loss_pct",
                       "jitter_ms"}}}]
  call_media()    -> {call id: the "relay" dict above}
  Call events: topics pbx.call / pbx.device on appliance.bus (services/pbx/events.py), the live view of
  calls (retained per call until cleared) without polling. Call control: pbx.command.<service> (cti_commands.py).
  trunks()        -> [{"name", "host", "port", "resolved", "register", "registered", "last_status",
                       "channels_in_use", "max_channels"}]
  bans()          -> [{"source", "seconds_left"}];  unban(ip)
  cdr_query(since=None, until=None, party=None, disposition=None, direction=None, trunk=None,
            limit=100, offset=0) -> [row dicts, newest first]; columns: services/pbx/cdr.py COLUMNS
            (disposition: answered|missed|busy|failed|transferred; times are epoch seconds)
  cdr_csv(**same filters) -> str (CSV with a header row)
  accounting_usage(since, until, timezone) -> outgoing trunk calls with their cost per month, extension, trunk
  accounting_spend(since) -> {extension: cost}  (services/pbx/accounting.py; tariffs in pbx.accounting)
  summary(day_start) -> {"registered_extensions", "active_calls", "calls_today", "calls_per_hour": [24 counts
            from day_start (epoch of the box's midnight)], "trunks": trunks()}, for the dashboard
  conference_rooms() -> [{"name", "number", "title", "adhoc", "max_participants", "pin", "participants":
            [{"id", "label", "name", "joined", "muted"}]}];  conference_mute(room, id, muted) -> bool;
            conference_remove(room, id) -> bool (services/pbx/conference)
  status() -> Status(figures: registrations, active_calls, relay_ports_in_use, relayed_packets, bans, ...)
  voicemail_box(ext) -> {"folders": {INBOX|Old|Saved: [{"id", "caller", "caller_name", "time", "duration",
            "size", "forwarded_by"}, newest first]}, "greetings": {kind: bool}, "used", "limits"} (voicemail/web.py)
  voicemail_audio(ext, id, offset) -> {"data": base64, "size", "next"} | None;  voicemail_act(ext, id,
            "heard"|"save"|"delete") -> bool;  voicemail_greeting_put(ext, kind, base64 WAV);
            voicemail_greeting_remove(ext, kind) -> bool. The PBX must be running (they read its files).
  recordings(extension=None, limit=50, offset=0) -> CDR rows with a kept recording (only the calls of
            `extension` if given), newest first
  recording_row(name, extension=None) -> that row or None (None too if `extension` took no part in it)
  recording_chunk(name, offset, size, extension=None) -> {"data": base64, "total": bytes} or None
The CDR methods work even when the service is stopped (they read state_dir("pbx")/cdr.sqlite).
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from appliance.apply import FieldError
from appliance.certs import box_certificate, box_names
from appliance.contributions import Endpoint, FeatureCode, Line, Listener
from appliance.service import ApplyError, ChildSpec, Service, Status

from . import accounting, changes, secretary  # noqa: F401 (secretary registers its change kind, "screening")
from .cdr import CdrStore, csv_text
from .config import ExtensionSettings, PbxConfig
from .cti_commands import register_changes
from .loopcall import call_on
from .recording.store import RecordingStore
from .sip.trace import SipTrace
from .voicemail import changes as _voicemail_changes  # noqa: F401 (registers its kinds)

register_changes()

if TYPE_CHECKING:
    from appliance.schema import CoreConfig

log = logging.getLogger("officebox.pbx")
PUBLIC_WEB_CONNECTIONS = 16  # connections one address may hold at once on the public pages' port


class PbxService(Service):
    name = "pbx"
    title = "Telephony (PBX)"
    Config = PbxConfig
    depends_on = ("system", "network", "users")
    lab_host = "127.0.0.1"  # tests may move an instance to another loopback address (a carrier)
    change_requests = changes.KINDS  # what a phone may change (services/pbx/changes.py)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.core = None
        self.commands = None
        self.sip_port: int | None = None
        self.ws_port: int | None = None  # SIP over WebSocket (browsers), when served
        self.sip_trace = SipTrace()  # the installer's capture (sip/trace.py), fed by the transport's tap
        self._bound: tuple | None = None

    @classmethod
    def contributes(cls, config: "CoreConfig", lab: bool) -> list:
        """SIP from the trunks' addresses and RTP on the WAN (names are not resolved here: list their
        addresses in firewall.sip_peers); the SIP endpoint phones are provisioned with."""
        cfg: PbxConfig = config.pbx
        peers = []
        for trunk in cfg.trunks:
            try:
                peers.append(str(ipaddress.ip_address(trunk.host)))
            except ValueError:
                continue
        sip = cfg.lab_sip_port if lab else cfg.sip_port
        rtp = (cfg.lab_rtp_port_min, cfg.lab_rtp_port_max) if lab else (cfg.rtp_port_min, cfg.rtp_port_max)
        protos = ("udp", "tcp") if cfg.tcp else ("udp",)
        wan = tuple(sorted(set(peers))) or None
        found = [Endpoint("sip", sip, protos)]
        found += [Listener("sip", proto, (sip, sip), wan, "SIP trunks") for proto in protos]
        found.append(Listener("rtp", "udp", rtp, () if wan else None, "RTP"))
        ws = cfg.lab_ws_port if lab else cfg.ws_port
        if cfg.websocket and ws:
            found.append(Listener("sip-ws", "tcp", (ws, ws), None, "SIP over WebSocket (browser phones)"))
            if cfg.webrtc:
                media = (cfg.lab_webrtc_port_min, cfg.lab_webrtc_port_max) if lab else \
                    (cfg.webrtc_port_min, cfg.webrtc_port_max)
                found.append(Listener("webrtc", "udp", media, None, "WebRTC media (browser phones)"))
                from .webrtc import turn
                port = turn.LAB_PORT if lab else turn.PORT
                found += [Listener("turn", proto, (port, port), None, "TURN relay (browser phones)")
                          for proto in ("udp", "tcp")]
                tls = turn.LAB_TLS_PORT if lab else turn.TLS_PORT
                found.append(Listener("turns", "tcp", (tls, tls), None, "TURN relay over TLS (browser phones)"))
        if cfg.public_web:  # served by the web admin's process (webadmin/publicsite.py), open to anyone
            port = cfg.lab_public_web_port if lab else cfg.public_web_port
            found.append(Listener("public-web", "tcp", (port, port), (), "public call-centre pages",
                                  per_source_limit=PUBLIC_WEB_CONNECTIONS))
        return found + lines(config) + [FeatureCode(name, getattr(cfg.feature_codes, name))
                                        for name in ("pickup", "directed_pickup")]

    # -- life cycle -------------------------------------------------------------------------------
    def _settings(self, config: "CoreConfig"):
        cfg: PbxConfig = config.pbx
        realm = cfg.realm or config.system.domain
        if self.ctx.lab:
            host, port, rtp = self.lab_host, cfg.lab_sip_port, (cfg.lab_rtp_port_min, cfg.lab_rtp_port_max)
        else:
            host, port, rtp = "0.0.0.0", cfg.sip_port, (cfg.rtp_port_min, cfg.rtp_port_max)
        return cfg, realm, host, port, rtp

    def validate(self, config: "CoreConfig") -> list[FieldError]:
        """Cross-field checks, each at the exact field (pbx.groups.2.members), so forms show it there."""
        cfg: PbxConfig = config.pbx
        errors = []
        extensions = {u.extension for u in config.users if u.extension}
        groups = {g.number for g in cfg.groups}
        for kind, key, items in (("ring group", "groups", cfg.groups), ("paging group", "paging_groups",
                                                                        cfg.paging_groups)):
            for i, g in enumerate(items):
                at = f"pbx.{key}.{i}"
                if g.number in extensions:
                    errors.append(FieldError(f"{at}.number", f"{kind} {g.number} uses an extension number"))
                for m in (m for m in g.members if m not in extensions):
                    errors.append(FieldError(f"{at}.members", f"{kind} {g.number}: {m} is not an extension"))
                if getattr(g, "overflow", None) == g.number:
                    errors.append(FieldError(f"{at}.overflow", f"ring group {g.number} overflows to itself"))
        taken = [n for n in cfg.park.numbers() if n in extensions | groups]
        if taken:
            errors.append(FieldError("pbx.park.first_slot",
                                     f"park slots {', '.join(taken)} are also extension or ring group numbers"))
        for i, d in enumerate(cfg.dids):
            if d.destination not in extensions | groups and ":" not in d.destination:
                errors.append(FieldError(f"pbx.dids.{i}.destination",
                                         f"DID {d.number} goes to {d.destination}, which is neither an extension nor "
                                         "a group (nor an application such as app:echo)"))
        for ext, settings in cfg.extensions.items():
            if ext not in extensions:
                errors.append(FieldError(f"pbx.extensions.{ext}", f"settings for {ext}, which is not an extension"))
            for name in ("forward_always", "forward_busy", "forward_no_answer"):
                if getattr(settings, name) == ext:
                    errors.append(FieldError(f"pbx.extensions.{ext}.{name}", f"extension {ext} forwards to itself"))
        errors += _queue_errors(cfg, extensions, groups)
        for i, room in enumerate(cfg.conference_rooms):
            if room.number in extensions:
                errors.append(FieldError(f"pbx.conference_rooms.{i}.number",
                                         f"conference room {room.number} uses an extension number"))
        for i, pair in enumerate(cfg.secretaries):
            for name in ("manager", "secretary"):
                if (ext := getattr(pair, name)) not in extensions:
                    errors.append(FieldError(f"pbx.secretaries.{i}.{name}", f"{ext} is not an extension"))
        for ext in (e for e in cfg.recording.extensions if e not in extensions):
            errors.append(FieldError("pbx.recording.extensions", f"{ext} is not an extension"))
        logins = {u.login for u in config.users}
        errors += _accounting_errors(cfg, logins)
        for login in cfg.permissions:
            if login not in logins:
                errors.append(FieldError(f"pbx.permissions.{login}", f"permission class for unknown user {login!r}"))
        if cfg.public_web and cfg.public_web_port in (config.system.admin_port, cfg.ws_port, cfg.sip_port):
            errors.append(FieldError("pbx.public_web_port", "the public pages need a port of their own (not the web "
                                     "admin's, SIP's or the web phone's)"))
        from .attendant import validate as attendant_errors
        return errors + attendant_errors(config)

    # -- the TURN server of browser phones (webrtc/turn.py): coturn, a supervised child ---------------
    def _turn(self, config: "CoreConfig") -> bool:
        return config.pbx.websocket and config.pbx.webrtc

    def render(self, config: "CoreConfig") -> dict[str, str]:
        if not self._turn(config):
            return {}
        from .webrtc import turn
        cfg, realm, host, _port, _rtp = self._settings(config)
        lab = self.ctx.lab
        peers = [host] if lab else sorted({n for n in box_names(config) if _is_address(n)})
        # behind another router (pbx.public_address): relay candidates carry the public address, and the
        # gateway's candidate for outside browsers is that address too (the router sends it back to the box)
        public = str(cfg.public_address) if cfg.public_address else ""
        wan = config.network.wan
        private = "" if lab or wan.mode != "static" or not public else str(wan.address.ip)
        if public:
            peers = sorted({*peers, public, *([private] if private else [])})
        state = self.ctx.state_dir(self.name)
        text = turn.render(turn.secret(state), realm, host if lab else "", turn.LAB_PORT if lab else turn.PORT,
                           turn.LAB_RELAY_PORTS if lab else turn.RELAY_PORTS, peers, lab, state / "turn",
                           turn.LAB_TLS_PORT if lab else turn.TLS_PORT,
                           box_certificate(self.ctx.data_dir, config.system.hostname), public, private)
        return {"turnserver.conf": text}

    def processes(self, config: "CoreConfig") -> list[ChildSpec]:
        files = self.render(config)
        if not files:
            return []
        from appliance.serviceusers import daemon_prefix

        from .webrtc import turn
        # the PBX's user, no capability (its ports are above 1024), the TLS group for TURN over TLS
        conf, work = self.ctx.etc_dir(self.name) / "turnserver.conf", self.ctx.state_dir(self.name) / "turn"
        argv = (*daemon_prefix(self.name), *turn.launcher(conf, files["turnserver.conf"], work))
        return [ChildSpec("turnserver", argv, stop_timeout=5.0)]

    async def start(self, config: "CoreConfig") -> None:
        from .core import PbxCore
        cfg, realm, host, port, rtp = self._settings(config)
        from appliance.bus import appliance_bus

        from . import callername, features
        features.configure(cfg)
        core = PbxCore(cfg, list(config.users), realm, self.cdr_path, host, rtp, appliance_bus(self.ctx))
        callername.attach(core, self.ctx.data_dir)
        try:
            self.sip_port = await core.start(host, port)
        except BaseException:
            await core.stop()
            raise
        self.core = core
        core.stack.transports.tap = self.sip_trace.tap
        core.cdr.rate = accounting.rater(cfg.accounting)
        self._bound = (host, port, cfg.tcp, self._ws_settings(config))
        from .cti_commands import CommandHandler
        self.commands = CommandHandler(core)  # call control over the bus (pbx.command.<service>)
        if cfg.websocket:
            try:
                await self._start_ws(config, host)
            except BaseException:
                await self.stop()
                raise
        from .attendant import clock
        clock.set_zone(config.system.timezone)
        from .voicemail import for_core
        for_core(core).publish_all()  # message waiting knows every box's counts from the start
        from . import acd
        await asyncio.to_thread(acd.for_core(core).seed)  # the call centre: queues, agents, today's figures
        for_core(core).configure_mail(config, self.ctx.lab)
        from . import recording
        core._spawn(recording.for_core(core).housekeeping())  # retention and the disk limit
        log.info("PBX listening on %s:%s", host, self.sip_port)
        if not self.ctx.lab:  # the box: prompts and hold music made now (lab runs and tests: on first use)
            from .moh import prepare_voice
            prepare_voice(self.ctx.data_dir, cfg.prompt_language)

    async def reload(self, config: "CoreConfig") -> None:
        if self.core is None:
            if self.enabled(config):
                await self.start(config)
            return
        if not self.enabled(config):
            await self.stop()
            return
        cfg, realm, host, port, rtp = self._settings(config)
        if (host, port, cfg.tcp, self._ws_settings(config)) != self._bound:
            await self.stop()
            await self.start(config)
            return
        from . import features
        features.configure(cfg)
        await self.core.reconfigure(cfg, list(config.users), realm, host, rtp)
        self.core.cdr.rate = accounting.rater(cfg.accounting)
        from .voicemail import for_core
        for_core(self.core).configure_mail(config, self.ctx.lab)
        ws = self.core.stack.transports.ws
        if ws is not None:  # the box's names or addresses changed: its origins and certificate follow
            ws.origins = set(web_origins(config, self.ctx.lab))
            ws.reload_certificate(*await asyncio.to_thread(box_certificate, self.ctx.data_dir,
                                                           config.system.hostname))
        from .attendant import clock
        clock.set_zone(config.system.timezone)

    def _ws_settings(self, config: "CoreConfig") -> tuple:
        cfg: PbxConfig = config.pbx
        return (cfg.websocket, cfg.lab_ws_port if self.ctx.lab else cfg.ws_port, cfg.webrtc,
                cfg.lab_webrtc_port_min, cfg.lab_webrtc_port_max, cfg.webrtc_port_min, cfg.webrtc_port_max)

    async def _start_ws(self, config: "CoreConfig", host: str) -> None:
        from .sip.ws import tls_context
        cert, key = await asyncio.to_thread(box_certificate, self.ctx.data_dir, config.system.hostname)
        context = await asyncio.to_thread(tls_context, cert, key)
        self.ws_port = await self.core.stack.start_ws(host, self._ws_settings(config)[1], context,
                                                      web_origins(config, self.ctx.lab))
        cfg: PbxConfig = config.pbx
        if cfg.webrtc:
            from .webrtc.gateway import WebRtcGateway
            from .webrtc.watchdog import end_browser_calls
            ports = (cfg.lab_webrtc_port_min, cfg.lab_webrtc_port_max) if self.ctx.lab else \
                (cfg.webrtc_port_min, cfg.webrtc_port_max)
            relay_host = self.core.relay.host
            gateway = WebRtcGateway(self.core.stack.local_ip, relay_host if relay_host != "0.0.0.0" else "127.0.0.1",
                                    *ports)
            gateway.watchdog.on_lost = lambda: end_browser_calls(self.core)
            self.core.stack.transports.ws.gateway = gateway  # its process starts with the first browser call
        log.info("SIP over WebSocket on wss://%s:%s/ws", host, self.ws_port)

    async def stop(self) -> None:
        self.ws_port = None
        if self.commands is not None:
            self.commands.close()
            self.commands = None
        if self.core is not None:
            core, self.core = self.core, None
            from . import acd
            running = acd.existing(core)
            if running is not None:
                running.close()
            from .voicemail import for_core
            for_core(core).mailer.stop()
            await core.stop()

    @property
    def cdr_path(self):
        return self.ctx.state_dir("pbx") / "cdr.sqlite"

    # -- public API for the web admin -------------------------------------------------------------
    def registrations(self) -> list[dict]:
        return self.core.location.snapshot() if self.core else []

    def active_calls(self) -> list[dict]:
        return [c.snapshot() for c in list(self.core.calls.values())] if self.core else []

    def end_call(self, call_id: str) -> bool:
        """The admin ends a call in progress: both sides are hung up, its record says "ended_by_admin".
        False if there is no such call (any more)."""
        if not self.core or not isinstance(call_id, str):
            return False

        def end() -> bool:
            call = self.core.calls.get(call_id)
            if call is None or call.state == "ended":
                return False
            call.media_down("ended_by_admin")
            return True
        return call_on(self.core.loop, end)

    def call_media(self) -> dict[str, dict]:
        """{call id: the "relay" figures of active_calls()}, for views that follow the pbx.call events."""
        return {c.id: c.snapshot()["relay"] for c in list(self.core.calls.values())} if self.core else {}

    def trunks(self) -> list[dict]:
        return self.core.trunk_status() if self.core else []

    def webphone(self, login: str = "") -> dict:
        """What the browser phone connects to: {"ws_port": the SIP WebSocket's port, or None if not served,
        "turn": {"port", "tls_port", "username", "credential", "ttl"} for `login`, or None without TURN}."""
        ws_port = self.ws_port if self.core is not None and self.core.stack.transports.ws else None
        relay = None
        if ws_port and login and self.core.stack.transports.ws.gateway is not None:
            from .webrtc import turn
            relay = {"port": turn.LAB_PORT if self.ctx.lab else turn.PORT,
                     "tls_port": turn.LAB_TLS_PORT if self.ctx.lab else turn.TLS_PORT,
                     **turn.credentials(turn.secret(self.ctx.state_dir(self.name)), login)}
        return {"ws_port": ws_port, "turn": relay}

    def bans(self) -> list[dict]:
        return self.core.guard.bans() if self.core else []

    def sip_trace_start(self, seconds: int, packets: int, extension: str, ip: str) -> dict:
        """A new capture: {"state"} or {"error": why the limits or filters are refused}."""
        try:
            return {"state": self.sip_trace.start(seconds, packets, extension, ip)}
        except (TypeError, ValueError) as exc:
            return {"error": str(exc)}

    def sip_trace_stop(self) -> dict:
        return self.sip_trace.stop()

    def sip_trace_view(self) -> dict:
        return self.sip_trace.snapshot()

    def sip_trace_export(self, kind: str) -> str:
        """The capture as text, or as a pcap file in base64 (kind "pcap")."""
        if kind != "pcap":
            return self.sip_trace.text()
        local = self.core.stack.local_ip if self.core else (lambda peer: "127.0.0.1")
        return base64.b64encode(self.sip_trace.pcap(local, self.sip_port or 5060)).decode()

    def unban(self, ip: str) -> None:
        if self.core:
            self.core.guard.unban(ip)

    def _cdr(self) -> CdrStore:
        return self.core.cdr if self.core else CdrStore(self.cdr_path)

    def cdr_query(self, **filters) -> list[dict]:
        return self._cdr().query(**filters)

    def cdr_csv(self, **filters) -> str:
        return self._cdr().csv(**filters)

    def cdr_page(self, filters: dict) -> list[dict]:
        """cdr_query for the web admin's client (JSON: the filters as one object)."""
        return self.cdr_query(**filters)

    def cdr_csv_page(self, filters: dict, header: bool) -> dict:
        """{"csv": the rows of cdr_query(**filters) as CSV (with the header row if asked), "rows": how many}."""
        rows = self.cdr_query(**filters)
        return {"csv": csv_text(rows, header), "rows": len(rows)}

    def conference_rooms(self) -> list[dict]:
        if self.core is None:
            return []
        from .conference import run_on_loop, snapshot
        return run_on_loop(self.core, lambda confs: snapshot(self.core, confs))

    def conference_mute(self, room: str, participant: int, muted: bool) -> bool:
        """Mute or unmute a participant; False if not (or no longer) in the room."""
        from .conference import run_on_loop
        return bool(self.core) and run_on_loop(
            self.core, lambda confs: confs is not None and confs.mute(str(room), int(participant), bool(muted)))

    def conference_remove(self, room: str, participant: int) -> bool:
        """Hang up a participant; False if not (or no longer) in the room."""
        from .conference import run_on_loop
        return bool(self.core) and run_on_loop(
            self.core, lambda confs: confs is not None and confs.kick(str(room), int(participant)))
    # -- call recordings (services/pbx/recording) --------------------------------------------------
    def recordings(self, extension: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        return self._cdr().recordings(extension, limit, offset)

    def recording_row(self, name: str, extension: str | None = None) -> dict | None:
        rows = [r for r in self._cdr().recording_rows([name]) if not r["recording_removed"]]
        if extension is not None:
            rows = [r for r in rows if extension in (r["caller"], r["dialled"], r["callee"], r["transferred_to"])]
        return rows[0] if rows else None

    def recording_chunk(self, name: str, offset: int, size: int, extension: str | None = None) -> dict | None:
        """Up to `size` bytes (at most 1 MiB) of a recording's WAV from `offset`, base64."""
        import base64
        if self.recording_row(name, extension) is None:
            return None
        try:
            path = RecordingStore(self.ctx.state_dir("pbx") / "recordings", None).path(name)
            with open(path, "rb") as f:
                total = f.seek(0, 2)
                f.seek(max(0, int(offset)))
                data = f.read(max(0, min(int(size), 1 << 20)))
        except (OSError, ValueError):
            return None
        return {"data": base64.b64encode(data).decode(), "total": total}

    def summary(self, day_start: float) -> dict:
        per_hour = [0] * 24
        for row in self._cdr().query(since=day_start, until=day_start + 86400, limit=100000):
            per_hour[min(23, max(0, int((row["start"] - day_start) // 3600)))] += 1
        regs = self.registrations()
        return {"registered_extensions": len({r["extension"] for r in regs}), "active_calls": len(self.active_calls()),
                "calls_today": sum(per_hour), "calls_per_hour": per_hour, "trunks": self.trunks()}

    # -- call accounting (services/pbx/accounting.py) ------------------------------------------------
    def accounting_usage(self, since: float, until: float, timezone: str = "UTC") -> list[dict]:
        """Outgoing trunk calls started in [since, until) summed per month, extension and trunk
        (accounting.usage): [{"month", "extension", "trunk", "calls", "answered", "seconds", "cost", "unrated"}]."""
        rows = self._cdr().query(since=since, until=until, direction="outbound", limit=100000)
        return accounting.usage(rows, timezone)

    def accounting_spend(self, since: float) -> dict[str, float]:
        """{caller extension: cost of its outgoing calls started since `since`}, for the budgets."""
        return accounting.spend(self._cdr().query(since=since, direction="outbound", limit=100000))

    # -- the call centre (services/pbx/acd) ------------------------------------------------------------
    def _acd(self):
        from . import acd
        return acd.existing(self.core) if self.core else None

    def acd_wallboard(self, day_start: float) -> dict:
        """{"time", "queues": [{"name", "number", "title", "waiting", "callbacks_waiting", "longest_wait",
        "agents": {state: count}, "answered", "abandoned", "service_level" (% or None),
        "service_level_seconds"}], "agents": [{"extension", "name", "status", "reason", "since", "calls",
        "queues"}]}: today (from `day_start`, the box's midnight) and now."""
        running = self._acd()
        if running is None:
            return {"time": time.time(), "decisions": 0, "agents": [], "queues": [], "calls": []}  # stopped
        return running.snapshot(day_start)

    def acd_agent(self, extension: str) -> dict:
        """An agent's state: {"extension", "status", "reason", "since", "calls", "queues"}."""
        running = self._acd()
        if running is None:
            return {"extension": extension, "status": "logged_out", "reason": "", "since": None, "calls": 0,
                    "queues": []}
        return running._on_loop(lambda: running.agent_view(extension))

    def acd_agent_action(self, extension: str, action: str, reason: str = "") -> dict:
        """login, logout, pause (with a reason), resume: {"status": the new state} or {"error": why}."""
        running = self._acd()
        if running is None:
            return {"error": "the PBX is not running"}
        try:
            return {"status": running.action(extension, action, reason)}
        except ValueError as exc:
            return {"error": str(exc)}

    def acd_supervise(self, supervisor: str, agent: str, mode: str) -> dict:
        """The wallboard's Listen / Whisper / Barge: ring `supervisor`'s phone and join it to `agent`'s call
        in `mode` (monitor, whisper, barge): {"status": "ringing"} or {"error": mode, not_allowed, no_call,
        supervised, no_phone, down}."""
        running = self._acd()
        if running is None:
            return {"error": "down"}
        why = running.supervise(supervisor, agent, mode)
        return {"error": why} if why else {"status": "ringing"}

    def acd_web_callback(self, queue: str, number: str, name: str = "", subject: str = "") -> dict:
        """A call-back request from the public page: {"position", "id"} or {"error", "reason"}."""
        running = self._acd()
        if running is None:
            return {"error": "the PBX is not running", "reason": "down"}
        return running.web_callback(queue, number, name, subject)

    # text chat from the public page (services/pbx/acd/chat.py): {"error", "reason": "down"} while stopped
    def _chat(self, fn):
        running = self._acd()
        if running is None:
            return {"error": "the PBX is not running", "reason": "down"}
        from .acd import chat
        return running._on_loop(lambda: fn(chat.desk(running)))

    def acd_chat_start(self, queue: str, name: str, email: str, text: str, mail: bool = False,
                       language: str = "en") -> dict:
        """A visitor starts a chat (`mail`: the transcript mailed at close, in `language`): {"token", "id"} or
        {"error", "reason": queue, text, email, no_agent, full}."""
        return self._chat(lambda desk: desk.start(queue, name, email, text, bool(mail), str(language)))

    def acd_chat_visitor(self, token: str, after: int = 0) -> dict:
        """The visitor's chat (messages numbered after `after`), or {"error", "reason": "gone"}."""
        out = self._chat(lambda desk: desk.visitor_view(token, int(after)))
        return out if out is not None else {"error": "no such chat", "reason": "gone"}

    def acd_chat_say(self, token: str, text: str, close: bool = False) -> dict:
        """The visitor writes (or closes): {"count"} or {"error", "reason"}."""
        return self._chat(lambda desk: desk.visitor_say(token, text, bool(close)))

    def acd_chat_agent(self, extension: str) -> dict:
        """{"offered": [chat], "open": [chat], "limit"} for an agent's page."""
        out = self._chat(lambda desk: desk.agent_view(extension))
        return {"offered": [], "open": [], "limit": 0} if "error" in out else out

    def acd_chat_act(self, extension: str, action: str, chat_id: int, text: str = "") -> dict:
        """An agent's accept, reply or close: {"status"} or {"error", "reason"}."""
        if action not in ("accept", "reply", "close"):
            return {"error": f"unknown chat action {action!r}", "reason": "action"}
        return self._chat(lambda desk: desk.agent_act(extension, action, int(chat_id), text))

    def acd_chat_transcripts(self, extension: str, limit: int = 20) -> list[dict]:
        """The agent's last closed chats, newest first: [{queue, name, email, started, ended, closed_by,
        messages}] (chat.sqlite, read in the caller's thread)."""
        running = self._acd()
        if running is None:
            return []
        from .acd import chat
        desk = running._on_loop(lambda: chat.desk(running))
        return desk.store.recent(extension, max(1, min(int(limit), 100)))

    def _acd_store(self):
        from .acd.store import AcdStore
        running = self._acd()
        return running.store if running is not None else AcdStore(self.cdr_path.with_name("acd.sqlite"))

    def acd_report(self, since: float, until: float, by: str, timezone: str = "UTC", queue: str = "") -> list[dict]:
        """Figures per `by` (queue, agent, hour, day) of the queue calls entered in [since, until):
        services/pbx/acd/store.py report()."""
        from .acd.store import report
        store = self._acd_store()
        if not store.path.exists():
            return []
        return report(store.calls(since, until, queue or None), by, timezone)

    def acd_chat_report(self, since: float, until: float, by: str, timezone: str = "UTC",
                        queue: str = "") -> list[dict]:
        """Chat figures per `by` (queue, agent, hour, day) of the chats started in [since, until) and closed:
        services/pbx/acd/store.py chat_report() on chat.sqlite."""
        from .acd.chat import TranscriptStore
        from .acd.store import chat_report
        path = self.cdr_path.with_name("chat.sqlite")
        if not path.exists():
            return []
        return chat_report(TranscriptStore(path).rows(since, until, queue), by, timezone)

    def acd_agent_log(self, since: float, extension: str = "") -> list[dict]:
        """Agent state changes since `since`, newest first: {"time", "agent", "state", "reason"}."""
        store = self._acd_store()
        return store.agent_log(since, extension or None) if store.path.exists() else []

    # -- the staff voicemail page (voicemail/web.py) ----------------------------------------------
    def _box(self, ext: str):
        if self.core is None:
            raise ApplyError("the PBX is not running: voicemail is back when it is")
        from .voicemail import for_core
        if ext not in self.core.users:
            raise ValueError(f"{ext!r} is not an extension")
        return for_core(self.core).box(ext)

    def voicemail_box(self, ext: str) -> dict:
        from .voicemail import web
        return web.box_summary(self._box(ext))

    def voicemail_audio(self, ext: str, ident: str, offset: int) -> dict | None:
        from .voicemail import web
        return web.audio_piece(self._box(ext), ident, offset)

    def voicemail_act(self, ext: str, ident: str, action: str) -> bool:
        from .voicemail import web
        return web.act(self._box(ext), ident, action)

    def voicemail_greeting_put(self, ext: str, kind: str, data: str) -> None:
        from .voicemail import web
        web.put_greeting(self._box(ext), kind, data)

    def voicemail_greeting_remove(self, ext: str, kind: str) -> bool:
        return self._box(ext).remove_greeting(kind)

    def status(self) -> Status:
        core = self.core
        if core is None:
            return Status("down", "not running")
        regs = core.location.snapshot()
        calls = list(core.calls.values())
        relayed = sum(leg.side.stats.forwarded - leg.side.stats.reported for c in calls for leg in c.legs if leg.side)
        figures = {
            "sip_port": self.sip_port, "ws_port": self.ws_port, "registrations": len(regs),
            "registered_extensions": len({r["extension"] for r in regs}), "active_calls": len(calls),
            "connected_calls": sum(1 for c in calls if c.state == "connected"),
            "relay_ports_in_use": 2 * len(core.relay.in_use), "relayed_packets_active_calls": relayed,
            "relayed_packets_total": core.counters["relayed_packets"] + relayed,
            "relay_lost_packets_total": core.counters["relay_lost_packets"],
            "bans": len(core.guard.bans()), "auth_failures": core.counters["auth_failures"],
            "calls_total": core.counters["calls"], "malformed_messages": core.stack.counters["malformed"],
            "trunks_registered": sum(1 for t in core.trunks.values() if t.registered),
        }
        ws = core.stack.transports.ws
        if ws is not None and ws.gateway is not None:
            figures.update({f"webrtc_gateway_{k}": v for k, v in ws.gateway.status().items()})
        down = [t.trunk.name for t in core.trunks.values() if t.trunk.registration and not t.registered]
        health = "degraded" if down else "ok"
        summary = f"{figures['registered_extensions']} extensions registered, {len(calls)} calls"
        if down:
            summary += f"; trunk not registered: {', '.join(down)}"
        return Status(health, summary, figures)


def _queue_errors(cfg: PbxConfig, extensions: set[str], groups: set[str]) -> list[FieldError]:
    """Call queues: agents must be extensions, a queue's number no extension, group or application number."""
    errors = []
    for i, q in enumerate(cfg.queues):
        at = f"pbx.queues.{i}"
        if q.number in extensions | groups or q.number in cfg.application_numbers \
                or q.number in cfg.feature_codes.destinations():
            errors.append(FieldError(f"{at}.number", f"queue {q.number} uses the number of an extension, a ring "
                                     "group or another application"))
        agents = [m.agent for m in q.members]
        for agent in sorted({a for a in agents if a not in extensions}):
            errors.append(FieldError(f"{at}.members", f"queue {q.name}: unknown agent {agent} (not an extension)"))
        if len(set(agents)) != len(agents):
            errors.append(FieldError(f"{at}.members", f"queue {q.name}: an agent is listed twice"))
        if q.overflow in (q.number, f"queue:{q.name}"):
            errors.append(FieldError(f"{at}.overflow", f"queue {q.name} overflows to itself"))
    return errors


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def web_origins(config: "CoreConfig", lab: bool) -> list[str]:
    """The origins of the box's own web admin pages (every name and address of its certificate), and
    pbx.ws_origins: the only pages that may open the SIP WebSocket."""
    port = config.system.lab_admin_port if lab else config.system.admin_port
    suffix = "" if port == 443 else f":{port}"
    return [f"https://{name.lower()}{suffix}" for name in box_names(config)] + list(config.pbx.ws_origins)


def _accounting_errors(cfg: PbxConfig, logins: set[str]) -> list[FieldError]:
    """Tariffs name known trunks, budgets known users."""
    trunks = {t.name for t in cfg.trunks}
    errors = [FieldError(f"pbx.accounting.tariffs.{i}.trunk", f"tariff {t.prefix or '(any)'}: unknown trunk "
                         f"{t.trunk!r}")
              for i, t in enumerate(cfg.accounting.tariffs) if t.trunk and t.trunk not in trunks]
    errors += [FieldError(f"pbx.accounting.budgets.{login}", f"budget for unknown user {login!r}")
               for login in cfg.accounting.budgets if login not in logins]
    return errors


SERVICE = PbxService


def lines(config: "CoreConfig") -> list[Line]:
    """The phone line of every enabled user's extension, with its call handling (contributions.Line)."""
    cfg: PbxConfig = config.pbx
    groups: dict[str, list[str]] = {}
    for group in cfg.groups:
        for member in group.members:
            groups.setdefault(member, []).append(group.number)
    found = []
    for user in config.users:
        if not (user.enabled and user.extension):
            continue
        s = cfg.extensions.get(user.extension) or ExtensionSettings()
        found.append(Line(user.extension, s.forward_always or "", s.forward_busy or "", s.forward_no_answer or "",
                          s.dnd, s.blf_watchers, tuple(groups.get(user.extension, ()))))
    return found
