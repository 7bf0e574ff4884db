"""Typed clients: how the web admin (and tools) talk to the services, whichever process runs them.

    runtime.client("dhcp").leases()        # -> list of lease dicts
    runtime.client("dns").flush_cache()

A client method names one exposed method or attribute of the service (EXPOSED, the allow-list the
child process answers). A service in its own process (appliance.servicehost.IsolatedService) is
called over its RPC socket, with a timeout; an in-process one, or any service of a runtime that is
not serving (tools, tests), directly on its object. While an isolated service's process is not ready
(down, restarting, or up but its service not started yet: a restart takes a second or two), the appliance's
own never-started copy answers reads: nothing live (no leases, no fetches), never stale data. An action
(`actions`: unban, flush, retry...) waits up to ACTION_WAIT s for a process that is starting, then goes to it,
or is refused with ServiceRestarting ("try again"): the idle copy, or a process that has not started its
service (which refuses it too), would take it and drop it. Results crossing processes are JSON (dicts,
lists, strings, numbers); a client that composes several calls says it is in-process only.
"""
from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

from appliance.service import ApplyError, Service, Status

ACTION_WAIT = 5.0  # seconds an action waits for a process that is starting (about 1 s after a crash)
CSV_PAGE = 5000  # call records per RPC answer of a CSV export
RECORDING_PIECE = 512 * 1024  # bytes of a call recording per RPC answer


class ServiceRestarting(ApplyError):
    """An action asked of an isolated service while its process is down (restarting)."""


class ServiceClient:
    exposed: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()  # exposed methods that change the running service
    blocking: tuple[str, ...] = ()  # exposed methods that wait on a daemon: the child runs them off its loop
    store_reads: tuple[str, ...] = ()  # reads of the service's own files: only its process may make them

    def __init__(self, service: Service) -> None:
        self.service = service
        self.name: str = service.name
        self.title: str = service.title

    @property
    def isolated(self) -> bool:
        return hasattr(self.service, "call") and hasattr(self.service, "inner")

    @property
    def reachable(self) -> bool:
        """Whether calls reach the running service (in-process, or its process has started it)."""
        return not self.isolated or bool(getattr(self.service, "ready", False))

    def _call(self, method: str, *args: Any) -> Any:
        if method not in self.exposed:
            raise AttributeError(f"{self.name} does not expose {method}")
        if self.isolated and method in self.actions:
            if self.service.alive and not self.reachable:  # spawned, starting: worth a short wait
                deadline = time.monotonic() + ACTION_WAIT
                while self.service.alive and not self.reachable and time.monotonic() < deadline:
                    time.sleep(0.05)
            if not self.reachable:
                raise ServiceRestarting(f"{self.title} is restarting; try again in a moment")
            return self.service.call(method, *args)  # ServiceRestarting if its process went meanwhile
        if self.reachable and self.isolated:
            try:
                return self.service.call(method, *args)
            except ServiceRestarting:
                if method in self.store_reads:  # never read the service's own store from here
                    raise
                # its process went meanwhile: a live read gets the "nothing live" answer, as before it started
        target = self.service.inner if self.isolated else self.service
        value = getattr(target, method)
        return value(*args) if callable(value) else value

    def enabled(self, config: Any) -> bool:
        return self.service.enabled(config)

    def status(self) -> Status:
        return self.service.status()


class DhcpClient(ServiceClient):
    exposed = ("leases",)

    def leases(self) -> list[dict]:
        """The bound leases: ip, mac, hostname, network, expires, remaining."""
        return self._call("leases")


class DnsClient(ServiceClient):
    exposed = ("flush_cache",)
    actions = ("flush_cache",)

    def flush_cache(self) -> None:
        self._call("flush_cache")


class ProvisioningClient(ServiceClient):
    exposed = ("last_fetch", "recent_requests")

    def last_fetch(self, mac: str) -> Any:
        return self._call("last_fetch", mac)

    def recent_requests(self, count: int) -> list:
        return self._call("recent_requests", count)


class MailClient(ServiceClient):
    exposed = ("mailbox_usage", "queue_summary", "retry_now", "remove_queued")
    actions = ("retry_now", "remove_queued")

    def mailbox_usage(self, login: str) -> tuple[int, int]:
        """(messages, bytes) in the user's mailbox."""
        count, size = self._call("mailbox_usage", login)
        return count, size

    def queue_entries(self) -> list[dict]:
        """The outbound queue: id, sender, recipients, created, size, attempts, next_attempt, last_error."""
        return self._call("queue_summary")

    def retry_now(self, qid: str) -> bool:
        return bool(self._call("retry_now", qid))

    def delete_queued(self, qid: str) -> bool:
        """Raises services.mail.QueueBusy while the message is being delivered."""
        outcome = str(self._call("remove_queued", qid))
        if outcome.startswith("busy"):
            from services.mail import QueueBusy

            raise QueueBusy(outcome.removeprefix("busy: "))
        return outcome == "deleted"


class PbxClient(ServiceClient):
    exposed = ("registrations", "bans", "unban", "active_calls", "end_call", "call_media", "trunks", "cdr_page",
               "cdr_csv_page", "summary", "acd_wallboard", "acd_agent", "acd_agent_action", "acd_web_callback",
               "acd_report", "acd_chat_report",
               "acd_agent_log", "acd_supervise", "acd_chat_start", "acd_chat_visitor", "acd_chat_say",
               "acd_chat_agent", "acd_chat_act", "acd_chat_transcripts",
               "conference_rooms", "conference_mute", "conference_remove", "webphone", "accounting_usage",
               "accounting_spend", "voicemail_box", "voicemail_audio", "voicemail_act", "voicemail_greeting_put",
               "voicemail_greeting_remove", "recordings", "recording_row", "recording_chunk",
               "sip_trace_start", "sip_trace_stop", "sip_trace_view", "sip_trace_export")
    store_reads = ("acd_report", "acd_chat_report", "acd_agent_log", "accounting_usage", "accounting_spend", "summary",
                   "cdr_page", "cdr_csv_page", "recordings", "recording_row", "recording_chunk")
    actions = ("unban", "end_call", "acd_agent_action", "acd_web_callback", "acd_supervise", "acd_chat_start",
               "acd_chat_say", "acd_chat_act", "conference_mute", "conference_remove",
               "voicemail_act", "voicemail_greeting_put", "voicemail_greeting_remove", "sip_trace_start",
               "sip_trace_stop")

    def sip_trace_start(self, seconds: int, packets: int, extension: str = "", ip: str = "") -> dict:
        """Start a bounded SIP capture (services/pbx/sip/trace.py): {"state"} or {"error"}."""
        return self._call("sip_trace_start", seconds, packets, extension, ip)

    def sip_trace_stop(self) -> dict:
        return self._call("sip_trace_stop")

    def sip_trace(self) -> dict:
        """{"state": {running, started, until, limit, extension, ip, captured}, "messages": [{time,
        direction, transport, ip, port, first_line, text}]}, digest answers masked."""
        return self._call("sip_trace_view")

    def sip_trace_text(self) -> str:
        return self._call("sip_trace_export", "text")

    def sip_trace_pcap(self) -> bytes:
        return base64.b64decode(self._call("sip_trace_export", "pcap"))

    def acd_wallboard(self, day_start: float) -> dict:
        """The call centre now and today (services/pbx PbxService.acd_wallboard): queues and agents."""
        return self._call("acd_wallboard", day_start)

    def acd_agent(self, extension: str) -> dict:
        return self._call("acd_agent", extension)

    def acd_agent_action(self, extension: str, action: str, reason: str = "") -> dict:
        """login, logout, pause (reason), resume: {"status"} or {"error"}."""
        return self._call("acd_agent_action", extension, action, reason)

    def acd_supervise(self, supervisor: str, agent: str, mode: str) -> dict:
        """Ring the supervisor's phone into the agent's call (services/pbx/acd/monitor.py): {"status"} or {"error"}."""
        return self._call("acd_supervise", supervisor, agent, mode)

    def acd_web_callback(self, queue: str, number: str, name: str = "", subject: str = "") -> dict:
        """A visitor's call-back request (services/pbx/acd/callback.py): {"position", "id"} or {"error", "reason"}."""
        return self._call("acd_web_callback", queue, number, name, subject)

    def acd_chat_start(self, queue: str, name: str, email: str, text: str, mail: bool = False,
                       language: str = "en") -> dict:
        """A visitor's chat (services/pbx/acd/chat.py): {"token", "id"} or {"error", "reason"}."""
        return self._call("acd_chat_start", queue, name, email, text, mail, language)

    def acd_chat_visitor(self, token: str, after: int = 0) -> dict:
        return self._call("acd_chat_visitor", token, after)

    def acd_chat_say(self, token: str, text: str, close: bool = False) -> dict:
        return self._call("acd_chat_say", token, text, close)

    def acd_chat_agent(self, extension: str) -> dict:
        return self._call("acd_chat_agent", extension)

    def acd_chat_act(self, extension: str, action: str, chat_id: int, text: str = "") -> dict:
        """accept, reply, close: {"status"} or {"error", "reason"}."""
        return self._call("acd_chat_act", extension, action, chat_id, text)

    def acd_chat_transcripts(self, extension: str, limit: int = 20) -> list[dict]:
        return self._call("acd_chat_transcripts", extension, limit)

    def acd_report(self, since: float, until: float, by: str, timezone: str = "UTC", queue: str = "") -> list[dict]:
        """Queue figures per queue, agent, hour or day (services/pbx/acd/store.py report)."""
        self._records()
        return self._call("acd_report", since, until, by, timezone, queue)

    def acd_chat_report(self, since: float, until: float, by: str, timezone: str = "UTC",
                        queue: str = "") -> list[dict]:
        """Chat figures per queue, agent, hour or day (services/pbx/acd/store.py chat_report)."""
        self._records()
        return self._call("acd_chat_report", since, until, by, timezone, queue)

    def acd_agent_log(self, since: float, extension: str = "") -> list[dict]:
        self._records()
        return self._call("acd_agent_log", since, extension)

    def conference_rooms(self) -> list[dict]:
        """Conference rooms (configured, and live three-party ones) with their participants now."""
        return self._call("conference_rooms")

    def conference_mute(self, room: str, participant: int, muted: bool) -> bool:
        return self._call("conference_mute", room, participant, muted)

    def conference_remove(self, room: str, participant: int) -> bool:
        return self._call("conference_remove", room, participant)

    def webphone(self, login: str = "") -> dict:
        """{"ws_port": the SIP WebSocket's port for browser phones, or None when not served; "turn": the
        box's TURN port and short-lived credentials for `login`, or None}."""
        return self._call("webphone", login)

    def accounting_usage(self, since: float, until: float, timezone: str = "UTC") -> list[dict]:
        """Outgoing trunk calls per month, extension and trunk, with their cost (services/pbx accounting_usage)."""
        self._records()
        return self._call("accounting_usage", since, until, timezone)

    def accounting_spend(self, since: float) -> dict[str, float]:
        """{extension: cost of its outgoing calls since `since`}."""
        self._records()
        return self._call("accounting_spend", since)

    def registrations(self) -> list[dict]:
        return self._call("registrations")

    def bans(self) -> list:
        return self._call("bans")

    def unban(self, source: str) -> None:
        self._call("unban", source)

    def active_calls(self) -> list:
        return self._call("active_calls")

    def end_call(self, call_id: str) -> bool:
        """End a call in progress (both sides hung up); False if it is gone already."""
        return self._call("end_call", call_id)

    def call_media(self) -> dict:
        return self._call("call_media")

    def trunks(self) -> list[dict]:
        return self._call("trunks")

    def summary(self, day_start: float) -> dict:
        """The dashboard's figures (services/pbx summary): extensions registered, calls now, today, per hour, trunks."""
        self._records()
        return self._call("summary", day_start)

    def _records(self) -> None:
        if not self.reachable:  # the appliance must not open the PBX user's store
            raise ApplyError("the PBX is restarting: its call records are back in a moment")

    def cdr_query(self, **filters: Any) -> list[dict]:
        """Call records, newest first (filters: services/pbx/cdr.py CdrStore.query)."""
        self._records()
        return self._call("cdr_page", filters)

    def recordings(self, extension: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        """Call records with a recording still kept (of `extension`'s calls only, if given), newest first."""
        self._records()
        return self._call("recordings", extension, limit, offset)

    def recording_row(self, name: str, extension: str | None = None) -> dict | None:
        """The call record of a recording; None if there is none (or `extension` took no part in it)."""
        self._records()
        return self._call("recording_row", name, extension)

    def recording_audio(self, name: str, extension: str | None = None) -> tuple[int, Iterator[bytes]] | None:
        """(size, the WAV in pieces of RECORDING_PIECE bytes), or None as recording_row."""
        import base64
        self._records()
        first = self._call("recording_chunk", name, 0, RECORDING_PIECE, extension)
        if first is None:
            return None

        def pieces() -> Iterator[bytes]:
            data, offset = base64.b64decode(first["data"]), 0
            while data:
                yield data
                offset += len(data)
                if offset >= first["total"]:
                    return
                more = self._call("recording_chunk", name, offset, RECORDING_PIECE, extension)
                data = base64.b64decode(more["data"]) if more else b""
        return first["total"], pieces()

    def cdr_csv(self, **filters: Any) -> Iterator[str]:
        """The matching records as CSV, in pieces of CSV_PAGE rows (each call's answer stays small).
        `until` is fixed at the start, so records written meanwhile do not shift the pages."""
        self._records()
        limit, offset = int(filters.pop("limit", 100000)), int(filters.pop("offset", 0))
        filters["until"] = min(filters.get("until") or time.time(), time.time())

        def pieces() -> Iterator[str]:
            nonlocal limit, offset
            header = True
            while True:
                page = self._call("cdr_csv_page", {**filters, "limit": min(CSV_PAGE, limit), "offset": offset},
                                  header)
                yield page["csv"]
                limit, offset, header = limit - page["rows"], offset + page["rows"], False
                if page["rows"] < CSV_PAGE or limit <= 0:
                    return
        return pieces()


    # -- a user's own voicemail box (the staff page): services/pbx/voicemail/web.py ------------------
    def _live(self) -> None:
        if not self.reachable:  # the appliance must not open the PBX user's files
            raise ApplyError("the PBX is restarting: your voicemail is back in a moment")

    def voicemail_box(self, ext: str) -> dict:
        """{"folders": {INBOX|Old|Saved: [message dicts, newest first]}, "greetings", "used", "limits"}."""
        self._live()
        return self._call("voicemail_box", ext)

    def voicemail_audio(self, ext: str, ident: str) -> bytes | None:
        """The message's WAV (fetched in pieces), None for an id not in this box."""
        self._live()
        parts, offset = [], 0
        for _ in range(64):  # bounded: 64 pieces of 4 MiB is far above the longest message
            piece = self._call("voicemail_audio", ext, ident, offset)
            if piece is None:
                return None
            parts.append(base64.b64decode(piece["data"]))
            if piece["next"] is None:
                return b"".join(parts)
            offset = piece["next"]
        raise ApplyError("the voicemail message is too large")

    def voicemail_act(self, ext: str, ident: str, action: str) -> bool:
        """action: heard (to Old), save (to Saved), delete; False for an id not in this box."""
        self._live()
        return bool(self._call("voicemail_act", ext, ident, action))

    def voicemail_greeting_put(self, ext: str, kind: str, wav: bytes) -> None:
        """Store a converted greeting (ValueError with the reason when the PBX refuses it)."""
        self._live()
        self._call("voicemail_greeting_put", ext, kind, base64.b64encode(wav).decode())

    def voicemail_greeting_remove(self, ext: str, kind: str) -> bool:
        self._live()
        return bool(self._call("voicemail_greeting_remove", ext, kind))


class ProxyClient(ServiceClient):
    exposed = ("usage",)

    def usage(self, since: float, top: int) -> dict:
        """Usage since `since`: {"sites", "clients", "users": top rows, "per_hour": rows, "cache": figures}.
        ApplyError while its process restarts (the appliance's copy must not write the proxy user's store)."""
        if not self.reachable:
            raise ApplyError("the proxy is restarting: its figures are back in a moment")
        return self._call("usage", since, top)


class FirewallClient(ServiceClient):
    """Commit-confirm is the engine's (appliance/confirm.py), not the firewall's: only whether rules load."""
    exposed = ("live", "counters")
    blocking = ("counters",)  # runs nft

    def live(self) -> bool:
        return bool(self._call("live"))

    def counters(self) -> list[dict]:
        """The counted rules since the last load: [{"rule", "chain", "packets", "bytes"}]; [] when rules are not
        loaded (lab mode, or its process restarting)."""
        return [dict(row) for row in self._call("counters") or []]


class NetworkClient(ServiceClient):
    """The box's interfaces as its network process sees them (its namespace, its WAN DHCP client)."""
    exposed = ("state",)
    blocking = ("state",)  # pyroute2's blocking netlink calls

    def state(self) -> dict:
        """appliance.network.network_status(): {"lab", "interfaces": [{name, state, mac, addresses, rx_bytes,
        tx_bytes}], "routes": [{destination, gateway, interface}], "lease": the WAN DHCP lease or None,
        "dhcp_client": True running, False stopped, None not used, "pppoe": the PPPoE link in pppoe mode
        (network.pppoe_state: connected, interface, address, peer, dns, problem) or None}."""
        found = dict(self._call("state") or {})
        return {"lab": bool(found.get("lab")), "interfaces": [dict(i) for i in found.get("interfaces") or []],
                "routes": [dict(r) for r in found.get("routes") or []],
                "lease": dict(found["lease"]) if found.get("lease") else None,
                "dhcp_client": found.get("dhcp_client"),
                "pppoe": dict(found["pppoe"]) if found.get("pppoe") else None}


class CtiClient(ServiceClient):
    exposed = ("sessions", "mint_desk_token")
    actions = ("mint_desk_token",)

    def mint_desk_token(self, login: str) -> dict:
        """A JSON API token for the staff desk of `login` (own extension, desk_token_minutes):
        {"token", "expires", "extension", "port", "tls"}; {} while the CTI server is not running."""
        return dict(self._call("mint_desk_token", login) or {})

    def sessions(self) -> dict:
        """The CSTA server's figures: {"sessions", "signed_in", "monitors", "calls", "requests", "events_sent",
        "malformed", "login_failures", "dropped_events", "refused_connections", "tcp_port", "tls_port"};
        {} while it is not running."""
        return dict(self._call("sessions") or {})


class VpnClient(ServiceClient):
    """The VPN's live state (charon's SAs, WireGuard's peers), its action and the peer bundles it issues."""
    exposed = ("live", "disconnect", "ca_pem", "issue_bundle", "revoke_peer")
    actions = ("disconnect", "revoke_peer")
    blocking = ("live", "disconnect", "issue_bundle", "revoke_peer")

    def live(self) -> dict:
        """{"sas": charon's SAs (swanctl --list-sas), "sas_at": when listed, "peers": WireGuard's by public
        key, "issued": unrevoked branch certificates by tunnel, "pptp": the PPTP sessions, "pptp_at": when read};
        empty while not running.
        services/vpn/service.py makes the page's rows of them."""
        found = dict(self._call("live") or {})
        return {"sas": list(found.get("sas") or []), "sas_at": float(found.get("sas_at") or 0),
                "peers": dict(found.get("peers") or {}), "issued": dict(found.get("issued") or {}),
                "pptp": list(found.get("pptp") or []), "pptp_at": float(found.get("pptp_at") or 0)}

    def disconnect(self, unique_id: str) -> str:
        """End a remote-access client's IKE SA: the user it was, "" if no longer connected; ApplyError if not ended."""
        return str(self._call("disconnect", unique_id) or "")

    def ca_pem(self) -> str:
        """The remote-access certificate authority (PEM), "" before remote access was ever switched on."""
        return str(self._call("ca_pem") or "")

    def issue_bundle(self, tunnel: str) -> str:
        """A new peer bundle (PEM, a secret: key, certificate, this box's certificate and CA) for the branch of
        the running certificate tunnel `tunnel`; ApplyError when that tunnel does not issue one."""
        return str(self._call("issue_bundle", tunnel) or "")

    def revoke_peer(self, tunnel: str) -> list[str]:
        """Revoke every certificate this box issued to the branch of `tunnel` (their serials, hex); charon
        refuses them from now on and the tunnel's SAs end. ApplyError when there is none to revoke."""
        return [str(s) for s in self._call("revoke_peer", tunnel) or []]


CLIENTS: dict[str, type[ServiceClient]] = {
    "dhcp": DhcpClient, "dns": DnsClient, "provisioning": ProvisioningClient, "mail": MailClient,
    "pbx": PbxClient, "proxy": ProxyClient, "firewall": FirewallClient, "cti": CtiClient, "vpn": VpnClient,
    "network": NetworkClient,
}
EXPOSED: dict[str, tuple[str, ...]] = {name: cls.exposed for name, cls in CLIENTS.items()}
ACTIONS: dict[str, tuple[str, ...]] = {name: cls.actions for name, cls in CLIENTS.items()}
BLOCKING: dict[str, tuple[str, ...]] = {name: cls.blocking for name, cls in CLIENTS.items()}


def client_for(service: Service) -> ServiceClient:
    return CLIENTS.get(service.name, ServiceClient)(service)
