"""SDP (RFC 4566) parsing/serializing and offer/answer (RFC 3264) for PCMU, PCMA, G722, telephone-event."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}
SUPPORTED = {"PCMU", "PCMA", "G722", "TELEPHONE-EVENT"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_SDP = 65535  # as large as a SIP message: WebRTC-style offers with many candidates pass 16 KB
MAX_MEDIA = 32  # m= sections
MAX_KEPT = 64  # other a= lines kept per m= section (what we forward stays bounded)
_IPV4_CHARS = re.compile(r"[0-9.]+")
# attributes that describe the original transport addresses: meaningless once the relay rewrites them
DROPPED = {"rtcp", "candidate", "ice-ufrag", "ice-pwd", "ice-options", "remote-candidates",
           "end-of-candidates", "crypto", "rtcp-mux"}


class SdpError(ValueError):
    pass


@dataclass
class Media:
    kind: str
    port: int
    proto: str
    formats: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # pt -> "name/rate"
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    connection: str | None = None
    other: list[str] = field(default_factory=list)  # other a= lines, kept as is

    def codec(self, pt: int) -> str:
        if pt in self.rtpmap:
            return self.rtpmap[pt].split("/")[0].upper()
        return STATIC.get(pt, ("?", 0))[0]

    def clock_rate(self, pt: int) -> int:
        if pt in self.rtpmap:
            parts = self.rtpmap[pt].split("/")
            return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 8000
        return STATIC.get(pt, ("?", 8000))[1]


@dataclass
class Sdp:
    origin_user: str = "-"
    session_id: str = "0"
    version: int = 0
    origin_addr: str = "0.0.0.0"
    name: str = "-"
    connection: str = "0.0.0.0"
    media: list[Media] = field(default_factory=list)
    direction: str | None = None

    @classmethod
    def parse(cls, data: bytes | str) -> "Sdp":
        if isinstance(data, bytes):
            if len(data) > MAX_SDP:
                raise SdpError("SDP too large")
            data = data.decode("utf-8", "replace")
        sdp = cls()
        current: Media | None = None
        seen_v = False
        for raw in data.splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"bad SDP line {line[:30]!r}")
            key, value = line[0], line[2:]
            if key == "v":
                seen_v = True
            elif key == "o":
                parts = value.split()
                if len(parts) != 6:
                    raise SdpError("bad o= line")
                sdp.origin_user, sdp.session_id = parts[0], parts[1]
                sdp.version = int(parts[2]) if parts[2].isdigit() else 0
                sdp.origin_addr = parts[5]
            elif key == "s":
                sdp.name = value or "-"
            elif key == "c":
                parts = value.split()
                if len(parts) != 3 or parts[0] != "IN" or parts[1] != "IP4":
                    raise SdpError("only IN IP4 connections are supported")
                addr = parts[2].split("/")[0]
                if not _IPV4_CHARS.fullmatch(addr):
                    raise SdpError("bad connection address")
                if current:
                    current.connection = addr
                else:
                    sdp.connection = addr
            elif key == "m":
                parts = value.split()
                if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
                    raise SdpError("bad m= line")
                fmts = [int(f) for f in parts[3:] if f.isdigit() and int(f) < 128]
                port = int(parts[1].split("/")[0])
                if port > 65535:
                    raise SdpError("bad media port")
                current = Media(parts[0], port, parts[2], fmts)
                sdp.media.append(current)
                if len(sdp.media) > MAX_MEDIA:
                    raise SdpError("too many m= sections")
            elif key == "a":
                name, _, arg = value.partition(":")
                if name in DIRECTIONS:
                    if current:
                        current.direction = name
                    else:
                        sdp.direction = name
                elif current and name in ("rtpmap", "fmtp"):
                    pt, _, rest = arg.partition(" ")
                    if pt.isdigit():
                        (current.rtpmap if name == "rtpmap" else current.fmtp)[int(pt)] = rest.strip()
                elif current and name not in DROPPED and len(current.other) < MAX_KEPT:
                    current.other.append(value)
        if not seen_v:
            raise SdpError("no v= line")
        if sdp.direction:
            for m in sdp.media:
                if m.direction == "sendrecv":
                    m.direction = sdp.direction
        return sdp

    def copy(self) -> "Sdp":
        media = [Media(m.kind, m.port, m.proto, list(m.formats), dict(m.rtpmap), dict(m.fmtp), m.direction,
                       m.connection, list(m.other)) for m in self.media]
        return Sdp(self.origin_user, self.session_id, self.version, self.origin_addr, self.name, self.connection,
                   media, self.direction)

    def audio(self) -> Media | None:
        for m in self.media:  # a loop, not next(genexpr): called several times per call event
            if m.kind == "audio" and m.port:
                return m
        return None

    def address(self, media: Media) -> str:
        return media.connection or self.connection

    def to_bytes(self) -> bytes:
        lines = ["v=0", f"o={self.origin_user} {self.session_id} {self.version} IN IP4 {self.origin_addr}",
                 f"s={self.name}", f"c=IN IP4 {self.connection}", "t=0 0"]
        for m in self.media:
            lines.append(f"m={m.kind} {m.port} {m.proto} {' '.join(str(f) for f in m.formats)}")
            if m.connection and m.connection != self.connection:
                lines.append(f"c=IN IP4 {m.connection}")
            for pt in m.formats:
                if pt in m.rtpmap:
                    lines.append(f"a=rtpmap:{pt} {m.rtpmap[pt]}")
                if pt in m.fmtp:
                    lines.append(f"a=fmtp:{pt} {m.fmtp[pt]}")
            lines.extend(f"a={o}" for o in m.other)
            if m.port:
                lines.append(f"a={m.direction}")
        return ("\r\n".join(lines) + "\r\n").encode()


def filter_offer(offer: Sdp, allowed: list[str]) -> Sdp:
    """Keep only the audio codecs we relay (in the offerer's order) plus telephone-event.

    Other media streams are kept with port 0 (rejected) so m-line positions stay stable.
    Raises SdpError when no codec is left (-> 488).
    """
    names = {c.upper() for c in allowed} | {"TELEPHONE-EVENT"}
    audio_seen = False
    for m in offer.media:
        if m.kind != "audio" or audio_seen or m.proto not in ("RTP/AVP", "RTP/SAVP", "RTP/AVPF"):
            m.port = 0
            continue
        if m.proto != "RTP/AVP":
            m.port = 0
            continue
        keep = [pt for pt in m.formats if m.codec(pt) in names]
        if not any(m.codec(pt) != "TELEPHONE-EVENT" for pt in keep):
            raise SdpError("no common codec")
        m.formats = keep
        m.rtpmap = {pt: v for pt, v in m.rtpmap.items() if pt in keep}
        m.fmtp = {pt: v for pt, v in m.fmtp.items() if pt in keep}
        audio_seen = True
    if not audio_seen:
        raise SdpError("no audio stream")
    return offer


def answer(offer: Sdp, local_codecs: list[str], address: str, port: int, session_id: str = "1") -> Sdp:
    """Build our answer to `offer` (RFC 3264 section 6): first common codec + telephone-event."""
    ans = Sdp(session_id=session_id, origin_addr=address, connection=address)
    wanted = [c.upper() for c in local_codecs]
    audio_done = False
    for m in offer.media:
        if m.kind != "audio" or not m.port or audio_done or m.proto != "RTP/AVP":
            ans.media.append(Media(m.kind, 0, m.proto, m.formats[:1]))
            continue
        chosen = next((pt for pt in m.formats if m.codec(pt) in wanted), None)
        if chosen is None:
            raise SdpError("no common codec")
        fmts = [chosen] + [pt for pt in m.formats if m.codec(pt) == "TELEPHONE-EVENT"][:1]
        reply = Media("audio", port, "RTP/AVP", fmts,
                      {pt: m.rtpmap.get(pt) or f"{m.codec(pt)}/{m.clock_rate(pt)}" for pt in fmts},
                      {pt: m.fmtp[pt] for pt in fmts if pt in m.fmtp})
        reply.direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(m.direction, m.direction)
        ans.media.append(reply)
        audio_done = True
    if not audio_done:
        raise SdpError("no audio stream")
    return ans


def terminated_answer(offer: Sdp, allowed: list[str], terminable: list[str]) -> Sdp:
    """The answer of a media endpoint of the box: the first offered codec it can terminate (of the
    allowed ones, or of all it terminates if none of those was offered), telephone-event, 20 ms packets.
    The address is a placeholder: the call's sdp_for() puts the relay side's in."""
    allowed_up = {c.upper() for c in allowed}
    usable = [c for c in terminable if c in allowed_up] or list(terminable)
    ans = answer(offer, usable, "127.0.0.1", 9)
    for m in ans.media:
        if m.port:
            m.other.append("ptime:20")
    return ans


def is_hold(sdp: Sdp) -> bool:
    m = sdp.audio()
    if m is None:
        return False
    return m.direction in ("sendonly", "inactive") or sdp.address(m) == "0.0.0.0"
