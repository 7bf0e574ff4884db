"""PBX benchmark: the real PBX service (own process, fresh lab data dir, generated users) under sipload.

Loads, in order (about 45 s in all): registrations/s with digest auth, full call cycles/s
(INVITE-407-ACK-INVITE-100-180-200-ACK-BYE-200, callers authenticated, callees registered UAS), then
CALLS concurrent relayed G.711 calls with 20 ms RTP both ways for MEDIA_SECONDS, loss and jitter
measured at our receivers. Targets from issue 3: >= 500 call setups/s, >= 200 concurrent relayed
calls with < 0.5 % loss. Also reported: the generator's own capacity against its own UAS (no PBX),
so a low PBX figure can be told apart from a slow generator; the CPU of the PBX's signalling process
and of its media engine process apart; and the media engines without SIP (bench/media_engines.py).
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import media_engines
from bench.sipload import scenarios
from bench.sipload.endpoint import Endpoint

ROOT = Path(__file__).resolve().parent.parent
CALLERS, CALLEES = 100, 100
CALLS = 200
MEDIA_SECONDS = 10.0
RTP_RANGE = (46000, 47999)       # away from the default lab range other tests use


def _users() -> tuple[list[dict], list[tuple[str, str]], list[tuple[str, str]]]:
    users, callers, callees = [], [], []
    for i in range(CALLERS):
        ext, secret = f"2{i:03d}", f"callersecret{i:03d}"
        users.append({"login": f"caller{i:03d}", "full_name": f"Caller {i}", "extension": ext, "sip_secret": secret})
        callers.append((ext, secret))
    for i in range(CALLEES):
        ext, secret = f"3{i:03d}", f"calleesecret{i:03d}"
        users.append({"login": f"callee{i:03d}", "full_name": f"Callee {i}", "extension": ext, "sip_secret": secret})
        callees.append((ext, secret))
    return users, callers, callees


class PbxProcess:
    """services/pbx SERVICE started on a fresh lab Context by bench/pbx_server.py."""

    def __init__(self, users: list[dict], **pbx) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-pbx-")
        doc = {"users": users, "pbx": {
            "lab_sip_port": 0, "lab_rtp_port_min": RTP_RANGE[0], "lab_rtp_port_max": RTP_RANGE[1],
            "abuse": {"trusted": ["127.0.0.1"], "max_requests": 100000, "request_window": 1}, **pbx}}
        cfg = Path(self.tmp.name) / "config.json"
        cfg.write_text(json.dumps(doc))
        self.log = open(Path(self.tmp.name) / "pbx.log", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pbx_server", str(Path(self.tmp.name) / "var"), str(cfg)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self._readline(20)
        self.port = json.loads(line)["port"]

    def _readline(self, timeout: float) -> str:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError(f"PBX process did not answer in {timeout} s: {self.log_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"PBX process exited: {self.log_tail()}")
        return line

    def log_tail(self) -> str:
        self.log.flush()
        return (Path(self.tmp.name) / "pbx.log").read_text(errors="replace")[-600:]

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline(10))

    def status(self) -> dict:
        return self.ask("status")["figures"]

    def cpu_seconds(self, pid: int | None = None) -> float:
        fields = Path(f"/proc/{pid or self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def engine_cpu_seconds(self) -> float:
        """CPU of the PBX's child processes (its media engine)."""
        children = [int(pid) for task in Path(f"/proc/{self.proc.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        return sum(self.cpu_seconds(pid) for pid in children)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        self.tmp.cleanup()


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": "pbx", "metric": metric, "value": value, "unit": unit, "note": note}


def _failures(result: dict) -> str:
    return f", failures {result['failures']}" if result.get("failures") else ""


def _measured(pbx: PbxProcess, coro):
    """Run one load; returns (result, PBX CPU % over its duration)."""
    cpu0, t0 = pbx.cpu_seconds(), time.monotonic()
    result = asyncio.run(coro)
    return result, 100.0 * (pbx.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def pbx_rows(target: scenarios.Target, pbx: PbxProcess) -> list[dict]:
    rows = []
    reg, cpu = _measured(pbx, scenarios.register_load(target, seconds=5, workers=20))
    rows.append(_row("registrations/s (digest MD5)", reg["rate"], "1/s",
                     f"{reg['ok']} ok / {reg['failed']} failed in {reg['seconds']:.1f} s, p95 {reg['p95_ms']:.0f} ms,"
                     f" PBX CPU {cpu:.0f}%{_failures(reg)}"))
    calls, cpu = _measured(pbx, scenarios.call_load(target, seconds=8, workers=40))
    rows.append(_row("call setups/s (full cycle)", calls["rate"], "1/s",
                     f"target >= 500; {calls['ok']} ok / {calls['failed']} failed, 180 seen {calls['ringing']},"
                     f" setup p50 {calls['setup_p50_ms']:.0f} ms p95 {calls['setup_p95_ms']:.0f} ms,"
                     f" retransmits {calls['retransmits']}, PBX CPU {cpu:.0f}%{_failures(calls)}"))
    relay: dict = {}
    engine0, t0 = pbx.engine_cpu_seconds(), time.monotonic()
    media, cpu = _measured(pbx, scenarios.media_load(target, calls=CALLS, seconds=MEDIA_SECONDS,
                                                     after_media=lambda: relay.update(pbx.ask("relay"))))
    engine = 100.0 * (pbx.engine_cpu_seconds() - engine0) / (time.monotonic() - t0)
    rows += media_rows(media, f"through the PBX relay, PBX signalling process CPU {cpu:.0f}%,"
                              f" media engine process CPU {engine:.0f}%")
    if relay:
        sent = media["packets_sent"]
        rows.append(_row("RTP lost on the way to the relay", 100.0 * (sent - relay["received"]) / sent if sent
                         else math.nan, "%", f"relay received {relay['received']} of {sent} sent"
                         f" (its counters over {relay['calls']} calls), forwarded {relay['forwarded']}"))
    figures = pbx.status()
    rows.append(_row("calls handled by the PBX", figures.get("calls_total", math.nan), "calls",
                     f"malformed {figures.get('malformed_messages')}, auth failures {figures.get('auth_failures')},"
                     f" active at the end {figures.get('active_calls')}"))
    return rows


def media_rows(media: dict, where: str) -> list[dict]:
    ok = media["established"]
    note = (f"{media['established']}/{media['requested']} calls up ({media['setup_seconds']:.1f} s),"
            f" {media['packets_sent']} packets sent, {media['packets_lost']} lost"
            f" ({media['lost_caller_to_callee']} caller->callee, {media['lost_callee_to_caller']} back),"
            f" {media['silent_streams']} silent streams, {media['bye_failed']} BYE failed, {where}{_failures(media)}")
    return [
        _row(f"relayed calls, concurrent ({MEDIA_SECONDS:g} s G.711)", ok, "calls", f"target >= {CALLS}; {note}"),
        _row("relayed RTP loss", media["loss_pct"], "%", "target < 0.5 %"),
        _row("relayed RTP jitter, mean (RFC 3550)", media["jitter_mean_ms"], "ms",
             f"max {media['jitter_max_ms']:.1f} ms; worst send lateness {media['send_lateness_max_ms']:.1f} ms"),
    ]


async def _baseline() -> dict:
    users = {f"2{i:03d}": "pw-caller" for i in range(10)} | {f"3{i:03d}": "pw-callee" for i in range(10)}
    uas = await Endpoint.open(users=users, realm="baseline")
    target = scenarios.Target(uas.addr, "127.0.0.1", [(u, p) for u, p in users.items() if u[0] == "2"],
                              [(u, p) for u, p in users.items() if u[0] == "3"])
    try:
        return await scenarios.call_load(target, seconds=3, workers=40, uas=uas)
    finally:
        uas.close()


def run() -> list[dict]:
    load = os.getloadavg()[0]
    rows = [_row("host load average before the run", load, "",
                 f"{os.cpu_count()} CPUs; the PBX, the generator and anything else share them")]
    base = asyncio.run(_baseline())
    rows.append(_row("generator baseline: call cycles/s", base["rate"], "1/s",
                     "sipload UAC against its own UAS, no PBX (upper bound of what this generator can drive)"))
    users, callers, callees = _users()
    pbx = PbxProcess(users)
    try:
        target = scenarios.Target(("127.0.0.1", pbx.port), "127.0.0.1", callers, callees)
        rows += pbx_rows(target, pbx)
    finally:
        pbx.close()
    return rows + media_engines.run()


if __name__ == "__main__":
    for r in run():
        print(r)
