"""Render the nftables ruleset (one `inet officebox` table) from the configuration.

Chains: input (to the box), forward (between zones), prerouting/postrouting (port forwards, transparent
proxy, masquerade). Zones map to interfaces: lan = network.lan.interface, voice = its VLAN interface,
wan = network.wan.interface (in pppoe mode its PPPoE link, appliance.network.PPP_IFNAME), vpn =
firewall.vpn_interfaces / firewall.vpn_networks and the VPN service's Network records.
The file replaces the table in one transaction: `nft -f` loads all of it or nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from appliance.contributions import Listener, Network, Redirect, collect
from services.firewall import mediaset
from services.firewall.config import FirewallConfig, Rule, parse_ports

TABLE = "officebox"


@dataclass
class Ruleset:
    input: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    prerouting: list[str] = field(default_factory=list)
    postrouting: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)  # further named sets, whole declarations

    def text(self, rate: int, burst: int) -> str:
        def chain(name: str, hook: str, prio: str, policy: str, rules: list[str]) -> str:
            body = "".join(f"\t\t{r}\n" for r in rules)
            return f"\tchain {name} {{\n\t\ttype {hook} priority {prio}; policy {policy};\n{body}\t}}\n"

        sets = "".join(
            f"\tset flood{v} {{\n\t\ttype ipv{v}_addr\n\t\tsize 65536\n\t\tflags dynamic,timeout\n"
            f"\t\ttimeout 1m\n\t}}\n" for v in (4, 6)) + mediaset.set_definitions() + "".join(self.sets)
        return (
            "# OfficeBox firewall: generated, do not edit (replaced atomically by nft -f)\n"
            f"table inet {TABLE}\ndelete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n{sets}"
            + chain("input", "filter hook input", "filter", "drop", self.input)
            + chain("forward", "filter hook forward", "filter", "drop", self.forward)
            + chain("prerouting", "nat hook prerouting", "dstnat", "accept", self.prerouting)
            + chain("postrouting", "nat hook postrouting", "srcnat", "accept", self.postrouting)
            + "}\n"
        )


def quote(name: str) -> str:
    return f'"{name}"'


def nft_set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def ports_expr(text: str) -> str:
    return nft_set([f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in parse_ports(text)])


def voice_interface(config) -> str:
    from appliance.network import voice_interface as name

    return name(config.network)


def wan_ip_interface(config) -> str:
    from appliance.network import wan_ip_interface as name

    return name(config.network)


class Zones:
    """Match expressions per zone; a zone can need several alternatives (vpn: interfaces or networks)."""

    def __init__(self, config, fw: FirewallConfig) -> None:
        net = config.network
        self.ifaces: dict[str, list[str]] = {"lan": [net.lan.interface], "voice": [], "wan": [], "vpn": []}
        if net.voice.enabled:
            self.ifaces["voice"] = [voice_interface(config)]
        if net.wan.mode != "none":  # PPPoE: the link pppd brings up (the port itself carries no IP)
            self.ifaces["wan"] = [wan_ip_interface(config)]
        self.ifaces["vpn"] = list(fw.vpn_interfaces)
        self.vpn_networks = [str(n) for n in fw.vpn_networks]
        self.vpn_routed: list[tuple[str, str]] = []  # (interface, network) the VPN service brings
        for record in collect(config, Network):
            if not record.interface:
                self.vpn_networks.append(record.cidr)
            elif record.interface not in self.ifaces["vpn"]:
                self.vpn_routed.append((record.interface, record.cidr))

    def present(self, zone: str) -> bool:
        return bool(self.ifaces[zone]) or (zone == "vpn" and bool(self.vpn_networks or self.vpn_routed))

    def src(self, zone: str) -> list[str]:
        if zone == "any":
            return [""]
        out = [f"iifname {quote(i)}" for i in self.ifaces[zone]]
        if zone == "vpn" and self.vpn_networks:
            out.append(f"ip saddr {nft_set(self.vpn_networks)} meta secpath exists")
        if zone == "vpn":
            out += [f"iifname {quote(i)} ip saddr {n}" for i, n in self.vpn_routed]
        return out

    def dst(self, zone: str) -> list[str]:
        if zone == "any":
            return [""]
        out = [f"oifname {quote(i)}" for i in self.ifaces[zone]]
        if zone == "vpn" and self.vpn_networks:
            out.append(f"ip daddr {nft_set(self.vpn_networks)}")
        if zone == "vpn":
            out += [f"oifname {quote(i)} ip daddr {n}" for i, n in self.vpn_routed]
        return out


def join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def wan_listeners(config, fw: FirewallConfig) -> list[tuple[Listener, tuple[str, ...]]]:
    """The services' listeners open from the WAN, each with its allowed peers (() = anyone). The
    admin's extra SIP providers (firewall.sip_peers) join "sip"; "rtp" is wan_media's."""
    listeners = collect(config, Listener)
    extra = tuple(str(n) for n in fw.sip_peers)
    found = []
    for ls in listeners:
        if ls.name == "sip":
            peers = tuple(sorted(set((ls.wan_peers or ()) + extra)))
            if peers:
                found.append((ls, peers))
        elif ls.name == "rtp":
            continue
        elif ls.wan_peers is not None:
            found.append((ls, ls.wan_peers))
    return found


def wan_media(config, fw: FirewallConfig) -> list[tuple[Listener, tuple[str, ...]]]:
    """The "rtp" listeners when "sip" is open from the WAN, each with the SIP peers (trunks and
    firewall.sip_peers): open to those and to the calls' media addresses only (mediaset.py)."""
    sip = [peers for ls, peers in wan_listeners(config, fw) if ls.name == "sip"]
    if not sip:
        return []
    peers = tuple(sorted(set().union(*sip)))
    return [(ls, peers) for ls in collect(config, Listener) if ls.name == "rtp"]


def source_caps(config) -> tuple[list[str], list[str]]:
    """Sets and input rules for listeners with a per_source_limit: one address may hold that many
    connections at once (nft `ct count`), further ones get a TCP reset."""
    sets, rules = [], []
    for ls in collect(config, Listener):
        if ls.protocol != "tcp" or ls.per_source_limit <= 0:
            continue
        for v, saddr in ((4, "ip saddr"), (6, "ip6 saddr")):
            name = f"conn{v}_" + "".join(c if c.isalnum() else "_" for c in ls.name)
            sets.append(f"\tset {name} {{\n\t\ttype ipv{v}_addr\n\t\tsize 65536\n\t\tflags dynamic\n\t}}\n")
            rules.append(f"{dport(ls)} ct state new add @{name} {{ {saddr} ct count over {ls.per_source_limit} }} "
                         f'counter reject with tcp reset comment "{ls.comment or ls.name}: connections per address"')
    return sets, rules


def dport(ls: Listener) -> str:
    if ls.protocol in ("esp", "gre"):
        return f"meta l4proto {ls.protocol}"
    first, last = ls.ports
    return f"{ls.protocol} dport {first}" if first == last else f"{ls.protocol} dport {first}-{last}"


def rule_lines(rule: Rule, zones: Zones) -> list[str]:
    if not rule.enabled:
        return []
    if rule.source_zone != "any" and not zones.present(rule.source_zone):
        return []
    if rule.destination not in ("box", "any") and not zones.present(rule.destination):
        return []
    proto = "" if rule.protocol == "any" else ("ip protocol icmp" if rule.protocol == "icmp" else "")
    l4 = ""
    if rule.protocol in ("tcp", "udp"):
        l4 = f"{rule.protocol} dport {ports_expr(rule.ports)}" if rule.ports else f"meta l4proto {rule.protocol}"
    saddr = f"ip saddr {nft_set([str(n) for n in rule.sources])}" if rule.sources else ""
    daddr = f"ip daddr {nft_set([str(n) for n in rule.destinations])}" if rule.destinations else ""
    verdict = {"accept": "accept", "drop": "drop", "reject": "reject"}[rule.action]
    dsts = [""] if rule.destination in ("box", "any") else zones.dst(rule.destination)
    comment = f'comment "{rule.name}"'
    return [join(src, dst, saddr, daddr, proto, l4, "counter", verdict, comment)
            for src in zones.src(rule.source_zone) for dst in dsts]


def build(config, fw: FirewallConfig) -> Ruleset:
    zones = Zones(config, fw)
    rs = Ruleset()
    admin = config.system.admin_port
    lan, wan = zones.ifaces["lan"][0], zones.ifaces["wan"]
    inside = [z for z in ("lan", "voice", "vpn") if zones.present(z)]

    # -- to the box ------------------------------------------------------------------------------
    rs.input += ["ct state established,related accept", "ct state invalid drop", 'iifname "lo" accept']
    if fw.anti_lockout:
        rs.input.append(f'iifname {quote(lan)} tcp dport {admin} accept comment "anti-lockout"')
    rs.input.append("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, "
                    "nd-router-solicit } ip6 hoplimit 255 accept")
    limit = f"limit rate over {fw.new_connections_per_second}/second burst {fw.burst} packets"
    not_lan = f"iifname != {quote(lan)}"
    rs.input.append(f"{not_lan} ct state new update @flood4 {{ ip saddr {limit} }} counter drop")
    rs.input.append(f"{not_lan} ct state new update @flood6 {{ ip6 saddr {limit} }} counter drop")
    rs.sets, caps = source_caps(config)
    rs.input += caps
    for rule in fw.rules:
        if rule.destination == "box":
            rs.input += rule_lines(rule, zones)
    for w in wan:
        w = quote(w)
        if fw.admin_from_wan:
            nets = nft_set([str(n) for n in fw.admin_from_wan])
            rs.input.append(f'iifname {w} ip saddr {nets} tcp dport {admin} accept comment "remote admin"')
        if config.network.wan.mode == "dhcp":
            rs.input.append(f"iifname {w} udp sport 67 udp dport 68 accept")
        if fw.ping_from_wan:
            rs.input.append(f"iifname {w} icmp type echo-request limit rate 5/second accept")
        for ls, peers in wan_listeners(config, fw):
            saddr = f"ip saddr {nft_set(list(peers))}" if peers else ""
            rs.input.append(join(f"iifname {w}", saddr, dport(ls), "accept", f'comment "{ls.comment or ls.name}"'))
        for ls, peers in wan_media(config, fw):
            rs.input += mediaset.wan_rules(w, dport(ls), ls.comment or ls.name, nft_set(list(peers)))
    for zone in inside:
        if getattr(fw, zone).box:
            rs.input += [f"{m} accept" for m in zones.src(zone)]

    # -- between zones -----------------------------------------------------------------------------
    if config.network.wan.mode == "pppoe":  # a PPPoE link's MTU is below Ethernet's: clamp the TCP MSS to it
        rs.forward += [f"oifname {quote(w)} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu "
                       'comment "PPPoE MSS clamping"' for w in wan]
    rs.forward += ["ct state established,related accept", "ct state invalid drop"]
    for rule in fw.rules:
        if rule.destination != "box":
            rs.forward += rule_lines(rule, zones)
    if wan:
        rs.forward.append('ct status dnat accept comment "port forwards"')
    for zone in inside:
        policy = getattr(fw, zone)
        targets = (["wan"] if policy.internet and wan else []) + [z for z in policy.reach if z in inside and z != zone]
        for target in targets:
            rs.forward += [f"{s} {d} accept" for s in zones.src(zone) for d in zones.dst(target)]

    # -- address translation -----------------------------------------------------------------------
    for w in wan:
        for fwd in fw.port_forwards:
            if not fwd.enabled:
                continue
            src = f"ip saddr {nft_set([str(n) for n in fwd.sources])}" if fwd.sources else ""
            to = f"{fwd.to_address}:{fwd.to_port or fwd.wan_port}"
            rs.prerouting.append(join(f"iifname {quote(w)}", src, f"{fwd.protocol} dport {fwd.wan_port}",
                                      f"dnat ip to {to}", f'comment "{fwd.name}"'))
        if fw.masquerade:
            rs.postrouting.append(f"oifname {quote(w)} masquerade")
    for redirect in collect(config, Redirect):
        for zone in ("lan", "voice"):
            for m in zones.src(zone) if zones.present(zone) else []:
                rs.prerouting.append(f"{m} tcp dport {redirect.port} fib daddr type != local "
                                     f'redirect to :{redirect.to_port} comment "{redirect.comment or redirect.name}"')
    return rs


def render(config) -> str:
    fw: FirewallConfig = config.firewall
    return build(config, fw).text(fw.new_connections_per_second, fw.burst)
