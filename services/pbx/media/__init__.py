"""The media engine: RTP relaying off the signalling loop, in a process of its own (engine.py).

Why a process: the PBX's asyncio loop keeps SIP, timers and the web admin's snapshots; a busy media
path in it (or in a thread sharing its GIL) took CPU and latency from signalling. The engine has its own
clock (one epoll loop, a 250 ms tick for figures and silence checks) and only the standard library.

Why our Python process and not Debian's rtpengine (measured on the shared 2-core lab machine, 200 G.711
calls = 400 streams of 20 ms for 10 s; host load average 0.9 to 6 from other work, so jitter is noisy):
- through the PBX (bench_pbx), before, relay thread in the PBX process: 0 % loss, jitter 0.8 ms mean
  (load 0.9; 13.8 ms at load 3.8), PBX process 19-27 % CPU while relaying, 650 call setups/s.
  After, this process: 0 % loss, jitter 2.1-2.9 ms mean (load 2-6), PBX signalling process 4 % CPU,
  media engine process 18-19 %, 685-700 call setups/s.
- the engines alone (bench/media_engines.py, back to back, two runs): ours 20 % CPU both times,
  rtpengine 10.5 in userspace 17-20 % CPU (no kernel forwarding: rtpengine-kernel-dkms needs a module
  built for the box's kernel), both 0 % loss.
So rtpengine in userspace costs the same CPU, adds a daemon with 172 shared libraries (ffmpeg, glib,
spandsp...) to the image and a second control plane; its real advantages, kernel forwarding,
transcoding and WebRTC DTLS-SRTP, are not needed for relaying G.711/G.722. Strict source, latching and
the RTP timeout are a few lines here, and the timeout is the one we need: one watched party silent
ends the call (rtpengine's --timeout waits until every stream of a call is dead, which a vanished phone
never causes: its partner keeps sending). When transcoding or WebRTC come, this protocol (open/link/peer/
watch/close) maps onto rtpengine's offer/answer/delete, so an engine behind it can be swapped.

Control protocol: an AF_UNIX SOCK_SEQPACKET socket pair, the engine's end passed as fd argv[1]. One
message = one JSON object (message boundaries come from the socket type, so no framing); a datagram
may also hold a JSON array of messages, handled in order (the PBX sends what one turn of its loop
queued that way: services/pbx/control.py). After "config" with "batch": true the engine answers the same
way: the messages of one turn of its loop, as arrays.

PBX -> engine (requests carrying "id" are answered with {"re": id, ...} or {"re": id, "error": text}):
  {"op": "config", "host", "min", "max"[, "batch"]}
                                              address and port range for the next sides
  {"op": "open", "id", "count"}               -> {"re", "sides": [[side, port], ...]}; random even ports
  {"op": "link", "side", "to"}                forward between two sides (former partners are unlinked)
                                              ("to" = "side": reflect, the echo test app:echo)
  {"op": "transcode", "side", "to", "codecs": [[codec, pt, event_pt], [codec, pt, event_pt]], "oneway"}
                                              forward between two sides whose parties speak different
                                              codecs, each packet decoded and encoded (transcode.py)
  {"op": "peer", "side", "ip", "port", "rate", "source", "relatch", "new_party"}
                                              the party's SDP address, clock rate and signalling address:
                                              strict source, see engine.Side
  {"op": "watch", "side", "seconds"}          report the side once if its party sends nothing that long
  {"op": "close", "side"[, "closed"]}         release the ports; with "closed": true, a "closed" event
                                              follows the side's last play_done/record_done
  {"op": "ping", "id"}                        -> {"re", "sides": count, "pid"}
 local endpoints (terminal.py: the box itself is the side's party; a later "link" makes it a relay again):
  {"op": "local", "side", "codec", "pt", "event_pt", "send", "inband"}
                                              terminate the side in PCMU/PCMA/G722 on payload type pt,
                                              telephone-event on event_pt (or null); send false: on hold;
                                              inband: detect DTMF tones (null: if event_pt is null)
  {"op": "play", "side", "play", "file"}      play a WAV (16-bit mono PCM, 8 or 16 kHz), replacing a play
  {"op": "play", "side", "play", "tone": {"freqs", "seconds", "on", "off", "amplitude"} | {"key"}}
  {"op": "stop_play", "side"} / {"op": "stop_record", "side"}
  {"op": "record", "side", "record", "path", "max_seconds", "silence_stop"}
                                              what the party says into a WAV at the codec's rate
  {"op": "dtmf", "side", "keys"}              send keys as RFC 4733 events
engine -> PBX (events):
  {"ev": "stats", "sides": [[side, packets, bytes, forwarded, rtcp, lost, jitter_ms, rejected], ...]}
                                              every tick, sides whose figures changed
  {"ev": "silent", "side", "seconds"}         a watched side received nothing for its time (RTP timeout)
  {"ev": "error", "error"}                    a request it could not read
  {"ev": "dtmf", "side", "key", "source"}     a key from the party ("rfc4733" or "inband")
  {"ev": "play_done", "side", "play", "reason"[, "error"]}       reason: end, stopped, hangup, error
  {"ev": "record_done", "side", "record", "reason", "seconds", "path"[, "error"]}
                                              reason: max, silence, stopped, hangup, error
  {"ev": "local_stats", "sides": [[side, sent, late, malformed, unknown_pt, dtmf, dtmf_dropped,
                                   rtcp_sent], ...]}   every tick, local endpoints whose figures changed
  {"ev": "closed", "side"}                    after a close that asked for it
  {"ev": "local_error", "side", "error"}      a "local" request it cannot serve (codec)
 taps on relayed sides (tap.py: keys, tap_record, tap_stop, notice): keys, a stereo recording of a
 call and a notice mixed into what a party sends, while the media is relayed as before.
The engine exits when the PBX's end closes; the PBX (services/pbx/relay.py) restarts an engine that
dies and ends the calls it carried. A local endpoint (terminal.Terminal) stands where a side's relay
partner would, so strict source and the RTP timeout stay the side's; it is clocked from the engine loop
(epoll waits until the next 20 ms frame is due). Conference rooms of local endpoints: mixer.py
(ops conf_join, conf_mute, conf_leave, conf_tone, conf_stats).
"""
