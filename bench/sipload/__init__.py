"""sipload: a SIP load generator of our own (asyncio, UDP, loopback).

- `sip`: lean parser/builders and digest answers (MD5, SHA-256), independent of services/pbx.
- `endpoint.Endpoint`: a UDP UAC (client transactions with retransmission, digest retry) and UAS
  (100/180/200, 200 retransmitted until ACK, BYE/CANCEL); with `users=` it challenges like a registrar.
- `rtp.Stream`: G.711 20 ms RTP sender/receiver with loss counting and RFC 3550 jitter.
- `scenarios`: register_load, call_load, media_load against a `Target` (see bench/bench_pbx.py).
"""
