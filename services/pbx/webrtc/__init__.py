"""WebRTC media for browser phones: a gateway process owned by the PBX turns each browser call leg into a
plain RTP endpoint, so call control (calls.py), the relay and the media engine stay as they are.

    browser --WSS/SIP--> sip/ws.py --(SDP rewritten by gateway.py)--> SipStack / calls.py
    browser <--SRTP, ICE-lite, DTLS--> engine.py <--plain RTP, loopback--> media engine (relay side)

Why our own small gateway rather than aiortc (evaluated for this):
  - aiortc (maintained, 1.x) is a full WebRTC peer: its codecs go through PyAV (an FFmpeg build in its wheel,
    ~30 MB) and every frame is decoded and re-encoded in Python, which costs a few % of a core per call; it
    also brings aioice, pylibsrtp, pyee and google-crc32c as new pins, of which Buildroot carries none
    (nor PyAV): the box image could not ship it without new Buildroot packages.
  - what a browser leg needs here is much less: ICE-lite (the browser is always the controlling agent:
    we only answer its authenticated STUN checks, stun.py), DTLS-SRTP key agreement (pyOpenSSL, already
    pinned: DTLS_METHOD, use_srtp, export_keying_material), SRTP (libsrtp2, Debian libsrtp2-1 and
    Buildroot's libsrtp, through ctypes: srtp.py). No crypto of our own.
  - every browser implements PCMU, PCMA (RFC 7874) and G.722: the gateway keeps those in the SDP it
    passes on (and offers browsers only those), so media passes through with its payload untouched, no
    per-frame codec work. Transcoding is needed only for a browser that offers Opus alone: then the PBX
    is offered PCMU/PCMA and the gateway decodes and encodes each frame (libopus through ctypes, opus.py;
    G.711 of the media engine's dsp.py), telephone-event not carried across in that case.
Per packet the gateway does one SRTP operation and one sendto (plus two codec calls when transcoding),
in its own process (one epoll loop), so the PBX's event loop never sees media (bench/bench_webrtc.py).
The box is ICE-lite and its candidate is the address the browser reached it by. The browser, always the
controlling agent, sends every check to that address; the gateway answers each to where it came from and
sends media to the address of the nominated check (the browser's peer-reflexive address, RFC 8445 7.3.1.3),
so a NAT in front of the browser needs nothing more (tests/services/pbx/test_webrtc_nat.py). For a network
that lets no UDP through to the box's media ports (or only TCP out), the box runs a TURN server, coturn
(turn.py), which relays only to the box's own media addresses: the page gets it in its iceServers with
short-lived TURN REST credentials, over UDP, TCP or TLS (turns:, for networks that let only TLS out). A box
behind a router of its own (pbx.public_address): browsers outside get that address as the gateway's candidate
(SipStack.local_ip) and coturn announces it in its relay candidates (external-ip), the router forwarding the
ports to the box.
ICE or DTLS that never complete end the session after engine.SETUP_TIMEOUT, counted
(gateway.counters) with a log line naming the reason. Sessions are opened only for authenticated
requests (or for our own offers), at most gateway.MAX_SESSIONS, MAX_PER_FLOW per browser connection.
"""
