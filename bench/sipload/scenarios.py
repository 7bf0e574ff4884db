"""The three loads: registrations/s, call setups/s, concurrent relayed calls with RTP.

Every scenario is closed-loop with a fixed number of workers and a fixed duration (bounded), against
`Target` (the PBX address, the SIP domain, caller and callee accounts). Callers authenticate every
INVITE and BYE (answering 401/407); callees are registered at one UAS endpoint that answers
100 / 180 / 200. Results are plain dicts of measured numbers (nothing is estimated).
"""
from __future__ import annotations

import asyncio
import itertools
import secrets
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.sipload import sip
from bench.sipload.endpoint import Endpoint, Failed
from bench.sipload.rtp import Stream, pump


@dataclass
class Target:
    server: tuple[str, int]
    domain: str
    callers: list[tuple[str, str]]           # (extension, secret)
    callees: list[tuple[str, str]]
    users_for_register: list[tuple[str, str]] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def register(ep: Endpoint, target: Target, user: str, password: str, call_id: str, cseq: int,
                   contact_host: str | None = None, expires: int = 3600) -> sip.Msg:
    aor = f"sip:{user}@{target.domain}"
    return await ep.request("REGISTER", f"sip:{target.domain}", [
        ("From", f"<{aor}>;tag={sip.new_tag()}"), ("To", f"<{aor}>"), ("Call-ID", call_id),
        ("Contact", f"<sip:{user}@{contact_host or ep.hostport}>"), ("Expires", str(expires)),
        ("User-Agent", "sipload")], auth=(user, password), cseq=cseq)


async def register_load(target: Target, seconds: float = 5.0, workers: int = 20) -> dict:
    users = target.users_for_register or target.callers
    ep = await Endpoint.open(server=target.server)
    ids = {u: (sip.new_tag() + "-reg", itertools.count(1, 2)) for u, _ in users}
    pool = itertools.cycle(users)
    done, failures, latencies = 0, Counter(), []
    stop_at = time.monotonic() + seconds

    async def worker():
        nonlocal done
        while time.monotonic() < stop_at:
            user, password = next(pool)
            call_id, cseqs = ids[user]
            t0 = time.monotonic()
            try:
                resp = await register(ep, target, user, password, call_id, next(cseqs))
            except Failed:
                failures["timeout"] += 1
                continue
            if resp.status == 200:
                done += 1
                latencies.append(time.monotonic() - t0)
            else:
                failures[str(resp.status)] += 1
    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        ep.close()
    elapsed = time.monotonic() - started
    return {"ok": done, "failed": sum(failures.values()), "failures": dict(failures), "seconds": elapsed,
            "rate": done / elapsed, "p50_ms": _percentile(latencies, 0.5) * 1000,
            "p95_ms": _percentile(latencies, 0.95) * 1000, "retransmits": ep.stats["retransmits"]}


class Caller:
    """One call from an authenticated extension: INVITE (challenge, retry) ... 200, ACK; later BYE."""

    def __init__(self, ep: Endpoint, target: Target, user: str, password: str, callee: str) -> None:
        self.ep, self.target, self.user, self.password, self.callee = ep, target, user, password, callee
        self.call_id = secrets.token_hex(10) + "@sipload"
        self.from_hdr = f"<sip:{user}@{target.domain}>;tag={sip.new_tag()}"
        self.ringing = False
        self.answer: sip.Msg | None = None

    async def invite(self, sdp_body: str) -> float:
        """Returns the setup time (first INVITE to 200) in seconds; raises Failed."""
        uri = f"sip:{self.callee}@{self.target.domain}"
        t0 = time.monotonic()
        resp = await self.ep.request("INVITE", uri, [
            ("From", self.from_hdr), ("To", f"<{uri}>"), ("Call-ID", self.call_id),
            ("Contact", f"<sip:{self.user}@{self.ep.hostport}>"), ("User-Agent", "sipload")],
            sdp_body, auth=(self.user, self.password), on_provisional=self._provisional)
        setup = time.monotonic() - t0
        if resp.status != 200:
            if resp.status >= 300 and resp.status not in (401, 407):
                self.ep._ack_error(resp, uri, resp.cseq[0], self.target.server)
            raise Failed(f"INVITE {resp.status}")
        self.answer = resp
        self.ep.ack(resp, resp.cseq[0], self.target.server)
        return setup

    def _provisional(self, msg: sip.Msg) -> None:
        if msg.status in (180, 183):
            self.ringing = True

    async def bye(self) -> None:
        resp = self.answer
        target = sip.uri_of(resp.get("contact")) or f"sip:{self.callee}@{self.target.domain}"
        routes = [("Route", r) for r in reversed(resp.all("record-route"))]
        final = await self.ep.request("BYE", target, [
            *routes, ("From", resp.get("from")), ("To", resp.get("to")), ("Call-ID", self.call_id)],
            auth=(self.user, self.password), cseq=resp.cseq[0] + 1)
        if final.status != 200:
            raise Failed(f"BYE {final.status}")


async def _callee_endpoint(target: Target, uas: Endpoint | None) -> tuple[Endpoint, bool]:
    """The callees' UAS, registered at the target; or `uas` itself (self-test: it is the target)."""
    if uas is not None:
        return uas, False
    uas = await Endpoint.open(server=target.server)
    for user, password in target.callees:
        resp = await register(uas, target, user, password, sip.new_tag() + "-uas", 1)
        if resp.status != 200:
            uas.close()
            raise Failed(f"callee {user} could not register: {resp.status}")
    return uas, True


async def call_load(target: Target, seconds: float = 8.0, workers: int = 40, uas: Endpoint | None = None) -> dict:
    """Full call cycles INVITE-407-ACK-INVITE-100-180-200-ACK-BYE-200 as fast as they complete."""
    uas, own_uas = await _callee_endpoint(target, uas)
    sink = await Stream.open()            # SDP target for this signalling-only load (no media sent)
    uas.answer_sdp = lambda call_id, offer: sip.sdp("127.0.0.1", sink.port, 2)
    uac = await Endpoint.open(server=target.server)
    pairs = zip(itertools.cycle(target.callers), itertools.cycle(target.callees))
    offer = sip.sdp("127.0.0.1", sink.port, 1)
    done, ringing, failures, setups = 0, 0, Counter(), []
    stop_at = time.monotonic() + seconds

    async def worker():
        nonlocal done, ringing
        while time.monotonic() < stop_at:
            (user, password), (callee, _) = next(pairs)
            call = Caller(uac, target, user, password, callee)
            try:
                setups.append(await call.invite(offer))
                await call.bye()
            except Failed as exc:
                failures[str(exc)] += 1
                continue
            done += 1
            ringing += call.ringing
    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.monotonic() - started
    finally:
        uac.close()
        sink.close()
        if own_uas:
            uas.close()
    return {"ok": done, "ringing": ringing, "failed": sum(failures.values()), "failures": dict(failures),
            "seconds": elapsed, "rate": done / elapsed, "setup_p50_ms": _percentile(setups, 0.5) * 1000,
            "setup_p95_ms": _percentile(setups, 0.95) * 1000,
            "retransmits": uac.stats["retransmits"] + uas.stats["retransmits"]}


async def media_load(target: Target, calls: int = 200, seconds: float = 10.0, setup_workers: int = 20,
                     uas: Endpoint | None = None, after_media=None) -> dict:
    """`calls` concurrent calls, G.711 20 ms RTP both ways for `seconds`; loss and jitter measured.

    `after_media()` (optional, quick) runs once the media stopped, before the calls are hung up."""
    uas, own_uas = await _callee_endpoint(target, uas)
    uac = await Endpoint.open(server=target.server)
    callee_streams: dict[str, Stream] = {}
    spare: list[Stream] = [await Stream.open() for _ in range(calls)]
    opened = list(spare)

    def answer(call_id: str, offer: str) -> str:
        stream = callee_streams.get(call_id)
        if stream is None:
            stream = callee_streams[call_id] = spare.pop()
            stream.remote = sip.sdp_media_address(offer)
        return sip.sdp("127.0.0.1", stream.port, 2)
    uas.answer_sdp = answer
    pairs = itertools.islice(zip(itertools.cycle(target.callers), itertools.cycle(target.callees)), calls)
    established: list[tuple[Caller, Stream]] = []
    failures: Counter = Counter()

    async def setup_worker():
        for (user, password), (callee, _) in pairs:
            stream = await Stream.open()
            opened.append(stream)
            call = Caller(uac, target, user, password, callee)
            try:
                await call.invite(sip.sdp("127.0.0.1", stream.port, 1))
            except Failed as exc:
                failures[str(exc)] += 1
                continue
            stream.remote = sip.sdp_media_address(call.answer.body)
            established.append((call, stream))
    try:
        t0 = time.monotonic()
        await asyncio.gather(*(setup_worker() for _ in range(setup_workers)))
        setup_seconds = time.monotonic() - t0
        await asyncio.sleep(0.5)       # let the last ACKs reach the callees
        # a B2BUA gives the callee leg its own Call-ID: count loss over all streams of each side
        caller_streams = [s for _, s in established]
        answered = list(callee_streams.values())
        all_streams = caller_streams + answered
        lateness = await pump(all_streams, seconds)
        await asyncio.sleep(1.0)       # packets still in flight (or queued behind a busy generator)
        sent = sum(s.sent for s in all_streams)
        lost_forward = max(0, sum(s.sent for s in caller_streams) - sum(s.received for s in answered))
        lost_back = max(0, sum(s.sent for s in answered) - sum(s.received for s in caller_streams))
        lost = lost_forward + lost_back
        jitters = [s.jitter_ms for s in all_streams if s.received > 1]
        if after_media is not None:
            after_media()
        byes = await asyncio.gather(*(c.bye() for c, _ in established), return_exceptions=True)
    finally:
        uac.close()
        if own_uas:
            uas.close()
        for stream in opened:
            stream.close()
    return {"requested": calls, "established": len(established), "media_streams": len(all_streams),
            "failures": dict(failures), "setup_seconds": setup_seconds, "packets_sent": sent,
            "packets_lost": lost, "lost_caller_to_callee": lost_forward, "lost_callee_to_caller": lost_back,
            "loss_pct": 100.0 * lost / sent if sent else float("nan"),
            "jitter_mean_ms": statistics.fmean(jitters) if jitters else float("nan"),
            "jitter_max_ms": max(jitters) if jitters else float("nan"),
            "send_lateness_max_ms": lateness,
            "bye_failed": sum(1 for b in byes if isinstance(b, BaseException)),
            "silent_streams": sum(1 for s in all_streams if s.received == 0)}
