"""The WAN RTP range, open only toward the media addresses of the calls in progress.

The PBX publishes, per call, every address its parties may send media from (bus topic `pbx.media`,
see services/pbx/events.py; the firewall knows the topic by name only and never imports the PBX):
SDP connection addresses and signalling sources. Carriers often send media from other addresses than
their signalling, so the SIP peers alone would cut audio. The firewall keeps these addresses in the nft
sets media4/media6, and the WAN rules of the "rtp" Listener accept sources in them and the SIP peers
(trunks, firewall.sip_peers) only; the rest of the WAN's RTP is dropped by a counted rule.

Each element carries a timeout (ELEMENT_TIMEOUT): the sets are written again every REFRESH seconds while
calls live and at once on every change, so a call's addresses leave when it is cleared, and expire by
themselves if the PBX dies without a word. A full ruleset load recreates the table (and empties the
sets): the service writes them again right after each load.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from appliance.bus import Bus, Event

log = logging.getLogger("officebox.firewall")
TOPIC = "pbx.media"
SETS = {4: "media4", 6: "media6"}
SET_SIZE = 16384
PER_CALL = 16  # addresses one call may bring (its parties' SDP and signalling addresses; the PBX caps at 16)
ELEMENT_TIMEOUT = 300  # seconds
REFRESH = 60.0  # seconds between rewrites while nothing changes


def set_definitions() -> str:
    return "".join(f"\tset {name} {{\n\t\ttype ipv{v}_addr\n\t\tsize {SET_SIZE}\n\t\tflags timeout\n\t}}\n"
                   for v, name in SETS.items())


def wan_rules(wan: str, dport: str, comment: str, sip_peers: str) -> list[str]:
    """The WAN's RTP rules on interface `wan` (quoted), for the Listener's `dport` match: from the SIP
    peers (`sip_peers`, an nft address or set: trunks send media from their signalling address too),
    from the calls' media addresses, and a counted drop for the rest."""
    return [f'iifname {wan} ip saddr {sip_peers} {dport} counter accept comment "{comment} from SIP peers"',
            f'iifname {wan} ip saddr @{SETS[4]} {dport} counter accept comment "{comment} from call media peers"',
            f'iifname {wan} ip6 saddr @{SETS[6]} {dport} counter accept comment "{comment} from call media peers"',
            f'iifname {wan} {dport} counter drop comment "{comment} from others"']


def script(table: str, addresses: set[str]) -> str:
    """One nft transaction: both sets emptied and refilled with fresh timeouts (atomic for packets)."""
    lines = [f"flush set inet {table} {name}" for name in SETS.values()]
    for v, name in SETS.items():
        mine = sorted(a for a in addresses if ipaddress.ip_address(a).version == v)
        if mine:
            elements = ", ".join(f"{a} timeout {ELEMENT_TIMEOUT}s" for a in mine)
            lines.append(f"add element inet {table} {name} {{ {elements} }}")
    return "\n".join(lines) + "\n"


def _valid(data: dict | None) -> set[str]:
    found: set[str] = set()
    values = (data or {}).get("addresses")
    for value in values[:PER_CALL] if isinstance(values, list) else []:
        if not isinstance(value, str):
            continue
        try:
            found.add(str(ipaddress.ip_address(value)))
        except (TypeError, ValueError):
            continue  # a host name in an SDP, garbage: never an nft element
    return found


class MediaPeers:
    """Follows the bus topic and has `write(addresses)` called from a worker thread of its own, at
    once after a change and every REFRESH seconds."""

    def __init__(self, bus: Bus, write: Callable[[set[str]], None], refresh: float = REFRESH) -> None:
        self.bus, self.write, self.refresh = bus, write, refresh
        self.calls: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._off = None
        self._thread: threading.Thread | None = None
        self._written: set[str] | None = None  # what the last write put in the sets

    def addresses(self) -> set[str]:
        with self._lock:
            found = set().union(*self.calls.values()) if self.calls else set()
        return set(sorted(found)[:SET_SIZE])

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._off = self.bus.subscribe(TOPIC, self._event)
        for key, data in self.bus.retained(TOPIC).items():
            self._event(Event(TOPIC, key, data))
        self._thread = threading.Thread(target=self._run, name="firewall-media", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._off:
            self._off()
            self._off = None
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join(10)
            self._thread = None

    def _event(self, event: Event) -> None:
        if event.topic != TOPIC:
            return
        with self._lock:
            if event.data is None:
                self.calls.pop(event.key, None)
            else:
                self.calls[event.key] = _valid(event.data)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.refresh)
            self._wake.clear()
            if self._stopping:
                return
            addresses = self.addresses()
            if not addresses and self._written == set():
                continue  # nothing to refresh
            try:
                self.write(addresses)
                self._written = addresses
            except Exception as exc:  # nft refused or could not run: the next change or refresh retries
                log.warning("could not write the media address sets: %s", exc)
