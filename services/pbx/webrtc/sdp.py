"""SDP rewritten both ways at the gateway: a browser's WebRTC description (UDP/TLS/RTP/SAVPF, ICE, DTLS
fingerprint) becomes a plain RTP/AVP one on the gateway's plain port, and a plain one from the PBX becomes
a WebRTC one on the gateway's browser-facing port (ICE-lite host candidate, our fingerprint, rtcp-mux).
What passes through untouched is kept: PCMU, PCMA, G722 and telephone-event/8000; a browser offering
none of them but Opus is offered to the PBX as PCMU/PCMA and transcoded (engine.Transcoder)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..sdp import DIRECTIONS, SdpError

KEPT = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "TELEPHONE-EVENT": 8000}
STATIC = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000"}
WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"


@dataclass
class Audio:
    """What the gateway needs of one audio description."""
    address: str = "0.0.0.0"
    port: int = 0
    proto: str = ""
    formats: list[int] = field(default_factory=list)
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    ufrag: str = ""
    pwd: str = ""
    fingerprint: str = ""  # "sha-256 AB:CD..." as in the SDP
    setup: str = ""
    mid: str = ""

    def codec(self, pt: int) -> str:
        return self.rtpmap.get(pt, STATIC.get(pt, "?/0")).split("/")[0].upper()

    def rate(self, pt: int) -> int:
        parts = self.rtpmap.get(pt, STATIC.get(pt, "?/0")).split("/")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def passthrough(self) -> list[int]:
        return [pt for pt in self.formats if KEPT.get(self.codec(pt)) == self.rate(pt)]

    def opus(self) -> int | None:
        """The payload type of Opus when no G.711 or G.722 is offered (the gateway then transcodes)."""
        if any(self.codec(pt) != "TELEPHONE-EVENT" for pt in self.passthrough()):
            return None
        return next((pt for pt in self.formats if self.codec(pt) == "OPUS" and self.rate(pt) == 48000), None)


def is_webrtc(body: bytes) -> bool:
    return WEBRTC_PROTO.encode() in body


def parse(body: bytes) -> Audio:
    """The first audio m= section (with the session-level ICE/DTLS attributes it inherits)."""
    audio, session, in_audio, seen_media = Audio(), Audio(), False, False
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if seen_media and in_audio:
                break  # only the first audio section
            seen_media = True
            parts = value.split()
            in_audio = parts[0] == "audio" and len(parts) >= 3
            if in_audio:
                if not parts[1].isdigit():
                    raise SdpError("bad m= port")
                audio.port, audio.proto = int(parts[1]), parts[2]
                audio.formats = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
            continue
        target = audio if in_audio else (session if not seen_media else None)
        if target is None:
            continue
        if kind == "c":
            target.address = value.split()[-1]
        elif kind == "a":
            name, _, rest = value.partition(":")
            if name == "rtpmap" and " " in rest:
                pt, codec = rest.split(" ", 1)
                if pt.isdigit():
                    target.rtpmap[int(pt)] = codec.strip()
            elif name == "fmtp" and " " in rest:
                pt, params = rest.split(" ", 1)
                if pt.isdigit():
                    target.fmtp[int(pt)] = params.strip()
            elif name in DIRECTIONS:
                target.direction = name
            elif name in ("ice-ufrag", "ice-pwd", "setup", "mid"):
                setattr(target, name.replace("ice-", ""), rest.strip())
            elif name == "fingerprint":
                target.fingerprint = rest.strip()
    if not audio.proto:
        raise SdpError("no audio")
    for name in ("ufrag", "pwd", "fingerprint", "setup"):
        if not getattr(audio, name):
            setattr(audio, name, getattr(session, name))
    if audio.address == "0.0.0.0" and session.address != "0.0.0.0":
        audio.address = session.address
    if audio.direction == "sendrecv" and session.direction != "sendrecv":
        audio.direction = session.direction
    return audio


def _codec_lines(audio: Audio, formats: list[int]) -> list[str]:
    lines = []
    for pt in formats:
        lines.append(f"a=rtpmap:{pt} {audio.rtpmap.get(pt, STATIC.get(pt, 'PCMU/8000'))}")
        if pt in audio.fmtp:
            lines.append(f"a=fmtp:{pt} {audio.fmtp[pt]}")
    return lines


def to_plain(browser: Audio, host: str, port: int, session_id: int, version: int) -> bytes:
    """The browser's description as a plain RTP endpoint at host:port (the gateway's plain side)."""
    formats = browser.passthrough()
    if browser.opus() is not None:
        formats = [0, 8]  # transcoded by the gateway
    elif not any(browser.codec(pt) != "TELEPHONE-EVENT" for pt in formats):
        raise SdpError("the browser offers no G.711, G.722 or Opus")
    lines = ["v=0", f"o=- {session_id} {version} IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(map(str, formats))}",
             *_codec_lines(browser if browser.opus() is None else Audio(), formats),
             "a=ptime:20", f"a={browser.direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def to_browser(plain: Audio, host: str, port: int, ice: dict, offer: bool, mid: str, session_id: int,
               version: int, opus: int | None = None) -> bytes:
    """The PBX's plain description for the browser, through the gateway's port host:port (as Opus on
    payload type `opus` when the gateway transcodes)."""
    formats = plain.passthrough()
    if opus is not None:
        formats = [opus]
        plain = Audio(rtpmap={opus: "opus/48000/2"}, fmtp={opus: "minptime=20;useinbandfec=0"},
                      direction=plain.direction, address=plain.address)
    direction = "inactive" if plain.address == "0.0.0.0" and plain.direction == "sendrecv" else plain.direction
    lines = ["v=0", f"o=- {session_id} {version} IN IP4 {host}", "s=-", "t=0 0", "a=ice-lite",
             f"a=group:BUNDLE {mid}",
             f"m=audio {port} {WEBRTC_PROTO} {' '.join(map(str, formats))}", f"c=IN IP4 {host}",
             f"a=rtcp:{port} IN IP4 {host}", f"a=mid:{mid}", f"a=ice-ufrag:{ice['ufrag']}", f"a=ice-pwd:{ice['pwd']}",
             f"a=fingerprint:sha-256 {ice['fingerprint']}", f"a=setup:{'actpass' if offer else 'passive'}",
             f"a={direction}", "a=rtcp-mux", *_codec_lines(plain, formats), "a=ptime:20",
             f"a=candidate:1 1 udp 2130706431 {host} {port} typ host", "a=end-of-candidates"]
    return ("\r\n".join(lines) + "\r\n").encode()
