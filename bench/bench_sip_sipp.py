"""SIP under SIPp (Debian `sip-tester`): our PBX and Kamailio (Debian `kamailio`) in the same run, same tool.

Both servers get the same SIPp scenarios (bench/sipp/), from the same 100 callers (injection file),
on loopback, one after the other:

- REGISTER with digest auth (REGISTER, 401, REGISTER with credentials, 200), closed loop: at most
  CONCURRENCY registrations in flight for PHASE_SECONDS (the figure is the server's capacity);
- authenticated calls (INVITE, 407, ACK, INVITE with credentials, 180, 200, ACK, BYE, 200) to a SIPp
  UAS registered as extension 3000, closed loop likewise;
- the same calls open loop at OPEN_LOAD of the capacity just measured: kernel drops there mean drops
  before the CPU is saturated; then at OVERLOAD of it: how much still gets through when more is offered
  than the server can take (retransmissions snowballing, or calls refused cheaply).

What each side does per call: the PBX is a B2BUA (challenge, digest check, dial plan, a second call
leg to the callee with its own dialog and transactions, an RTP relay allocated for the call, CDR);
Kamailio (bench/kamailio.cfg, `children=1`: one UDP worker) challenges, checks the digest against a
db_text subscriber table, looks the callee up in its in-memory location table and relays the INVITE
statefully (tm), record-routed so ACK and BYE pass through it too; no media, no second dialog.

Per row: calls (registrations) per second, CPU ms per call of the server (all its processes, from
/proc/<pid>/stat: Kamailio's session; the PBX and its media engine, whose shares the note gives apart),
failed calls, SIPp's retransmissions (caller and callee side), the kernel's drops on the server's socket
(`ss -u -m`, skmem d) and UDP receive-buffer errors of the whole host (/proc/net/snmp RcvbufErrors, which
includes SIPp's own sockets). Kamailio is always stopped.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_pbx import PbxProcess, _users

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "sipp"
PHASE_SECONDS = 6.0
CONCURRENCY = 50
MAX_RATE = 5000  # closed loop: SIPp opens calls as fast as CONCURRENCY allows (it stalls on absurd rates)
OPEN_LOAD = 0.8
OVERLOAD = 1.5
CALLEE = "3000"
AREA = "sip_sipp"
SIPP_BUFFER = 4 * 1024 * 1024  # SIPp's own socket buffers (64 KB by default: it dropped answers itself)


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": value, "unit": unit, "note": note}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_by_pid(pids: list[int]) -> dict[int, tuple[float, float]]:
    """User and system seconds of each of these processes (every thread of each) still running."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return found


def cpu_of(pids: list[int]) -> tuple[float, float]:
    """User and system seconds of these processes (every thread of each)."""
    figures = cpu_by_pid(pids).values()
    return sum(u for u, _ in figures), sum(s for _, s in figures)


def socket_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:port (ss skmem d<count>)."""
    out = subprocess.run(["ss", "-u", "-a", "-n", "-m", "sport", "=", f":{port}"], capture_output=True,
                         text=True, timeout=5).stdout
    return sum(int(d) for d in re.findall(r"skmem:\([^)]*\bd(\d+)", out))


def rcvbuf_errors() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def injection(path: Path, users: list[tuple[str, str]]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(
        f"{user};[authentication username={user} password={secret}]\n" for user, secret in users))
    return path


class Sipp:
    """One SIPp process on a scenario; stop() ends it softly (SIGUSR1: no new calls, running ones finish)."""

    def __init__(self, workdir: Path, name: str, scenario: str, args: list[str], port: int | None = None) -> None:
        self.stat = workdir / f"{name}.csv"
        self.errors = workdir / f"{name}-errors.log"
        self.port = port or free_port()
        argv = ["sipp", *args, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(self.port),
                "-mp", str(free_port()), "-buff_size", str(SIPP_BUFFER), "-nostdin",
                "-trace_stat", "-stf", str(self.stat), "-fd", "1",
                "-trace_err", "-error_file", str(self.errors)]
        self.proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()
        self.stopped: float | None = None

    def wait(self, timeout: float) -> dict:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.figures()

    def stop(self, grace: float = 10.0) -> dict:
        self.stopped = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
        return self.wait(grace)

    def figures(self) -> dict:
        elapsed = (self.stopped or time.monotonic()) - self.started  # the load's duration
        if not self.stat.exists():
            raise RuntimeError(f"SIPp wrote no statistics: {self.proc.stderr.read()[-300:]}")
        lines = [line for line in self.stat.read_text().splitlines() if line.strip()]
        stats = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
        return {"ok": int(stats["SuccessfulCall(C)"]), "failed": int(stats["FailedCall(C)"]),
                "retransmits": int(stats["Retransmissions(C)"]), "seconds": elapsed,
                "setup_ms": _duration_ms(stats.get("ResponseTimesetup(C)", "")),
                "killed": self.proc.returncode == -signal.SIGKILL}


def _duration_ms(value: str) -> float:
    """SIPp's HH:MM:SS:uuuuuu as milliseconds."""
    parts = value.split(":")
    if len(parts) != 4:
        return float("nan")
    h, m, s, us = (int(p) for p in parts)
    return ((h * 60 + m) * 60 + s) * 1000 + us / 1000


class Kamailio:
    """Kamailio on bench/kamailio.cfg in its own session (all its processes are found and stopped by it)."""

    def __init__(self, workdir: Path, users: list[tuple[str, str]]) -> None:
        if not shutil.which("kamailio"):
            raise RuntimeError("kamailio is not installed (deps/debian-packages.txt, `make setup`)")
        self.dir = workdir / "kamailio"
        db = self.dir / "db"
        db.mkdir(parents=True)
        db.joinpath("version").write_text("id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n")
        db.joinpath("subscriber").write_text(
            "id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string)\n"
            + "".join(f"{n}:{user}:127.0.0.1:{secret}:-:-\n" for n, (user, secret) in enumerate(users, 1)))
        self.port = free_port()
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text((HERE / "kamailio.cfg").read_text().replace("@PORT@", str(self.port))
                       .replace("@DBDIR@", str(db)))
        argv = ["kamailio", "-DD", "-E", "-f", str(cfg), "-Y", str(self.dir), "-w", str(self.dir),
                "-m", "2048", "-M", "16"]  # MB of shared / private memory (64 ran out at 1500 calls/s; 512 at
        # 5500 offered in the overload phase, where its worker died of SIGSEGV and the phase read a negative CPU)
        check = subprocess.run([*argv, "-c"], capture_output=True, text=True, timeout=20)
        if check.returncode:
            raise RuntimeError(f"kamailio -c: {check.stderr[-400:]}")
        self.log = open(self.dir / "kamailio.log", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True, preexec_fn=_no_core_dumps)
        deadline = time.monotonic() + 10
        while not socket_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"kamailio did not start: {(self.dir / 'kamailio.log').read_text()[-400:]}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """Every process of Kamailio's session (main, the UDP worker, timers)."""
        return processes(lambda pid, fields: int(fields[3]) == self.proc.pid)

    def close(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                if not self.pids():
                    break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


def processes(match) -> list[int]:
    """Pids whose /proc/<pid>/stat fields after the command name (state, ppid, pgrp, session...) match."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if match(int(entry.name), fields):
                pids.append(int(entry.name))
    return pids


def with_children(pid: int) -> list[int]:
    """The PBX process and its children (the media engine)."""
    return processes(lambda p, fields: p == pid or int(fields[1]) == pid)


def _no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def socket_listening(port: int) -> bool:
    out = subprocess.run(["ss", "-u", "-a", "-n", "sport", "=", f":{port}"], capture_output=True, text=True,
                         timeout=5).stdout
    return f":{port}" in out


class Server:
    """What a phase needs of either server: its port and its processes."""

    def __init__(self, name: str, port: int, pids, main: int | None = None) -> None:
        self.name, self.port, self.pids = name, port, pids
        self.main = main  # the signalling process, whose share is reported apart (None: not split)

    def cpu(self) -> dict[int, tuple[float, float]]:
        return cpu_by_pid(self.pids())

    def main_cpu(self) -> float:
        return sum(cpu_of([self.main])) if self.main else 0.0


def phase(server: Server, workdir: Path, name: str, run) -> dict:
    """Run one load (run() -> SIPp figures) and add the server's CPU and the kernel's drops over it."""
    drops0, errors0, cpu0, main0 = socket_drops(server.port), rcvbuf_errors(), server.cpu(), server.main_cpu()
    figures = run()
    cpu1 = server.cpu()
    # per process: one that exited during the load takes its whole CPU out of a difference of sums
    # (seen as a negative CPU share for Kamailio at overload); one started during it counts from zero
    deltas = [(u - cpu0.get(pid, (0.0, 0.0))[0], s - cpu0.get(pid, (0.0, 0.0))[1]) for pid, (u, s) in cpu1.items()]
    figures["cpu_s"] = sum(u + s for u, s in deltas)
    figures["system_s"] = sum(s for _, s in deltas)
    figures["exited"] = len(cpu0.keys() - cpu1.keys())
    figures["main_cpu_s"] = server.main_cpu() - main0
    figures["drops"] = socket_drops(server.port) - drops0
    figures["host_rcvbuf_errors"] = rcvbuf_errors() - errors0
    return figures


def register_phase(server: Server, workdir: Path, callers: Path) -> dict:
    def run() -> dict:
        port = free_port()
        sipp = Sipp(workdir, f"{server.name}-register", "register.xml",
                    [f"127.0.0.1:{server.port}", "-inf", str(callers), "-key", "contact_port", str(port),
                     "-r", str(MAX_RATE), "-l", str(CONCURRENCY), "-m", "1000000"], port=port)
        time.sleep(PHASE_SECONDS)
        return sipp.stop()
    return phase(server, workdir, "register", run)


def call_phase(server: Server, workdir: Path, callers: Path, uas_port: int, tag: str, rate: float | None) -> dict:
    """Calls to the UAS: closed loop (rate None: CONCURRENCY in flight) or open loop at `rate` per second."""
    def run() -> dict:
        uas = Sipp(workdir, f"{server.name}-{tag}-uas", "call_uas.xml", [], port=uas_port)
        time.sleep(0.3)
        limit = ["-r", str(MAX_RATE), "-l", str(CONCURRENCY)] if rate is None else ["-r", f"{rate:.0f}", "-l", "5000"]
        uac = Sipp(workdir, f"{server.name}-{tag}-uac", "call_uac.xml",
                   [f"127.0.0.1:{server.port}", "-s", CALLEE, "-inf", str(callers), *limit, "-m", "1000000",
                    "-auth_uri", f"{CALLEE}@127.0.0.1:{server.port}"])  # the digest uri is the Request-URI
        time.sleep(PHASE_SECONDS)
        figures = uac.stop()
        callee = uas.stop(5)
        figures["retransmits"] += callee["retransmits"]
        return figures
    return phase(server, workdir, tag, run)


def register_callee(server: Server, workdir: Path, callee: Path, uas_port: int) -> None:
    sipp = Sipp(workdir, f"{server.name}-callee-register", "register.xml",
                [f"127.0.0.1:{server.port}", "-inf", str(callee), "-key", "contact_port", str(uas_port), "-m", "1"],
                port=uas_port)  # from the callee's own port: the PBX reaches a phone where its REGISTER came from
    figures = sipp.wait(15)
    if figures["ok"] != 1:
        raise RuntimeError(f"{server.name}: the SIPp callee could not register: {sipp.errors.read_text()[-300:]}"
                           if sipp.errors.exists() else f"{server.name}: the SIPp callee could not register")


def measure(server: Server, workdir: Path, callers: Path, callee: Path) -> dict:
    uas_port = free_port()
    register_callee(server, workdir, callee, uas_port)
    results = {"register": register_phase(server, workdir, callers)}
    results["calls"] = call_phase(server, workdir, callers, uas_port, "calls", None)
    capacity = results["calls"]["ok"] / results["calls"]["seconds"]
    results["open"] = call_phase(server, workdir, callers, uas_port, "open", max(10.0, OPEN_LOAD * capacity))
    results["open"]["offered"] = max(10.0, OPEN_LOAD * capacity)
    results["overload"] = call_phase(server, workdir, callers, uas_port, "overload", max(10.0, OVERLOAD * capacity))
    results["overload"]["offered"] = max(10.0, OVERLOAD * capacity)
    return results


def rate(figures: dict) -> float:
    return figures["ok"] / figures["seconds"]


def cpu_ms(figures: dict) -> float:
    return 1000.0 * figures["cpu_s"] / figures["ok"] if figures["ok"] else float("nan")


def note(figures: dict) -> str:
    return (f"{figures['ok']} ok / {figures['failed']} failed in {figures['seconds']:.1f} s,"
            f" CPU {100 * figures['cpu_s'] / figures['seconds']:.0f}% = {cpu_ms(figures):.2f} ms each"
            f" ({100 * figures['system_s'] / figures['cpu_s'] if figures['cpu_s'] else 0:.0f}% in the kernel"
            + (f"; signalling process {1000 * figures['main_cpu_s'] / figures['ok']:.2f} ms, media engine"
               f" {1000 * (figures['cpu_s'] - figures['main_cpu_s']) / figures['ok']:.2f} ms"
               if figures["main_cpu_s"] and figures["ok"] else "") + "),"
            f" retransmits {figures['retransmits']}, socket drops {figures['drops']},"
            f" host RcvbufErrors {figures['host_rcvbuf_errors']}"
            + ("; SIPp killed with calls still retransmitting after the stop" if figures["killed"] else "")
            + (f"; {figures['exited']} server process(es) exited during the load (their CPU is not counted)"
               if figures.get("exited") else ""))


def rows_of(name: str, results: dict) -> list[dict]:
    reg, calls, opened, over = results["register"], results["calls"], results["open"], results["overload"]
    return [
        _row(f"{name}: registrations/s (digest)", rate(reg), "1/s", note(reg)),
        _row(f"{name}: call setups/s (authenticated)", rate(calls), "1/s",
             f"{CONCURRENCY} in flight; setup mean {calls['setup_ms']:.1f} ms; {note(calls)}"),
        _row(f"{name}: CPU per call", cpu_ms(calls), "ms", "server CPU (all processes) / completed calls"),
        _row(f"{name}: call setups per CPU second", 1000.0 / cpu_ms(calls), "1/s",
             "what one core given to the server alone would carry at that cost"),
        _row(f"{name}: kernel drops at {OPEN_LOAD:.0%} load", opened["drops"], "datagrams",
             f"open loop at {opened['offered']:.0f} calls/s; {note(opened)}"),
        _row(f"{name}: call setups/s at {OVERLOAD:.0%} load", rate(over), "1/s",
             f"open loop at {over['offered']:.0f} calls/s; {note(over)}"),
    ]


def run() -> list[dict]:
    if not shutil.which("sipp"):
        raise RuntimeError("sipp is not installed (Debian sip-tester)")
    rows = [_row("host load average before the run", os.getloadavg()[0], "", f"{os.cpu_count()} CPUs shared by"
                 " the server, the SIPp caller and the SIPp callee")]
    users, callers, callees = _users()
    callee_user = [u for u in callees if u[0] == CALLEE]
    with tempfile.TemporaryDirectory(prefix="bench-sipp-") as tmp:
        workdir = Path(tmp)
        callers_csv = injection(workdir / "callers.csv", callers)
        callee_csv = injection(workdir / "callee.csv", callee_user)
        pbx = PbxProcess(users, digest_algorithms=["MD5"])  # SIPp 3.6 answers MD5 challenges only
        try:
            server = Server("pbx", pbx.port, lambda: with_children(pbx.proc.pid), pbx.proc.pid)
            ours = measure(server, workdir, callers_csv, callee_csv)
        finally:
            pbx.close()
        kamailio = Kamailio(workdir, callers + callee_user)
        try:
            theirs = measure(Server("kamailio", kamailio.port, kamailio.pids), workdir, callers_csv,
                             callee_csv)
        finally:
            kamailio.close()
    rows += rows_of("PBX", ours) + rows_of("Kamailio", theirs)
    rows.append(_row("PBX / Kamailio, call setups/s", rate(ours["calls"]) / rate(theirs["calls"]), "x",
                     "target >= 0.5 (Kamailio with one worker, same SIPp scenarios in the same run)"))
    rows.append(_row("PBX / Kamailio, call setups per CPU second", cpu_ms(theirs["calls"]) / cpu_ms(ours["calls"]),
                     "x", "the same ratio with each server on a core of its own (robust to a busy host)"))
    rows.append(_row("PBX / Kamailio, registrations/s", rate(ours["register"]) / rate(theirs["register"]), "x", ""))
    return rows


if __name__ == "__main__":
    from bench.__main__ import render_text
    print(render_text(run()))
