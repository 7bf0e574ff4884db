"""Driver for real baresip user agents (Debian package `baresip`, tested with 1.0.0) in tests.

Each `Baresip` writes a private config dir (config + accounts) under a temp dir, starts
`baresip -f <dir>` on loopback or inside a network namespace (`tests.netns.Host`), and talks to it
over two local control channels: ctrl_tcp (JSON netstrings: long commands, responses and events)
and cons (UDP: single-key commands such as hold 'x' / resume 'X'). Audio: ausine (440 Hz tone) as
source, an unconnected aubridge device as player; codecs PCMU/PCMA (+ telephone-event for DTMF).

    with Baresip("alice", user="100", password="s3cret", registrar="127.0.0.1:5060") as alice, \\
         Baresip("bob", user="101", password="pw", registrar="127.0.0.1:5060") as bob:
        alice.register(); bob.register()             # waits for REGISTER_OK, raises BaresipError
        alice.dial("101")                            # or a full URI "sip:101@127.0.0.1:5060"
        bob.answer()                                 # waits for CALL_INCOMING, then accepts
        alice.wait_for("CALL_ESTABLISHED")           # returns the event dict, bounded timeout
        alice.wait_rtp(rx=50, tx=50)                 # waits until packet counters reach the values
        alice.rtp_stats()                            # {"tx": n, "rx": n, "dir": "sendrecv", ...}
        alice.hold(); alice.resume()                 # re-INVITE sendonly / sendrecv
        alice.send_dtmf("123#")                      # RFC 4733; the peer sees bob.dtmf_received
        alice.transfer("102")                        # blind transfer (REFER) of the current call
                                                     # (baresip 1.0.0 cannot start an attended one)
        alice.hangup()                               # BYE / CANCEL / reject (486) of the current call

Constructor: Baresip(name, user=None, password=None, registrar=None, *, addr="127.0.0.1",
host=None, transport="udp", display_name=None, auto_answer=False, domain=None, regint=60,
codecs=("pcmu", "pcma") (also "g722"), timeout=10.0). Without `registrar` the UA does not register and is
reachable directly at `ua.uri` (peer-to-peer). `host` runs it inside that namespace; `addr` must
then be the namespace's address. `domain` (default: registrar host) is the AOR domain; the
registrar is always used as outbound proxy, so no DNS is involved.

Methods (every wait is bounded by `timeout`, raising BaresipError on expiry):
  start() / stop() (or the context manager); stop() kills the process and removes its files.
  command(cmd, params="") -> str         any long command (e.g. "reginfo"); raises if not ok.
  register(timeout) / unregister()        register: wait for REGISTER_OK (raise on REGISTER_FAIL).
  dial(uri) -> None                       uri: "sip:..." or a number/user (completed by baresip).
  answer(timeout), hangup(), reject()     on the current call.
  hold(), resume(), transfer(uri), send_dtmf(digits).
  wait_for(event_type, timeout, **match) -> dict   first not-yet-consumed event of that type whose
                                          fields equal `match` (e.g. id=call_id); consumes it.
  events -> list[dict]                    every event received so far (ctrl_tcp JSON).
  call_state() -> str | None              last call event type of the newest call, e.g.
                                          "CALL_RINGING", "CALL_ESTABLISHED", "CALL_CLOSED".
  calls() -> list[str]                    baresip's "listcalls" lines.
  rtp_stats() -> dict                     current call's audio stream: tx/rx RTP packets, dir,
                                          codec (parsed from "audio_debug"); {} if no call.
  wait_rtp(tx=0, rx=0, timeout)           wait until the counters reach at least these values.
  dtmf_received -> str                    digits received (CALL_DTMF_START events).
  log() -> str                            baresip's stdout/stderr so far (for failure messages).
  aio                                     the same methods as coroutines (run in a thread), for
                                          async tests where the PBX shares the event loop:
                                          `await ua.aio.register()`, `await ua.aio.wait_for(...)`.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Self

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
MODULE_PATH = "/usr/lib/baresip/modules"
CALL_END = "CALL_CLOSED"


class BaresipError(RuntimeError):
    pass


def have_baresip() -> bool:
    return os.path.exists(BARESIP) and os.path.exists(f"{MODULE_PATH}/ctrl_tcp.so")


def _free_port(addr: str) -> int:
    """A port free for both UDP and TCP on addr (binds port 0, then checks the other protocol)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((addr, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((addr, port))
                except OSError:
                    continue
        return port
    raise BaresipError("no free port")


class Baresip:
    def __init__(self, name: str, user: str | None = None, password: str | None = None,
                 registrar: str | None = None, *, addr: str = "127.0.0.1", host=None,
                 transport: str = "udp", display_name: str | None = None, auto_answer: bool = False,
                 domain: str | None = None, regint: int = 60, codecs=("pcmu", "pcma"),
                 timeout: float = 10.0) -> None:
        self.name = name
        self.user = user or name
        self.password = password
        self.registrar = registrar
        self.addr = addr
        self.host = host
        self.transport = transport
        self.display_name = display_name
        self.auto_answer = auto_answer
        self.domain = domain or (registrar.rsplit(":", 1)[0] if registrar else None)
        self.regint = regint if registrar else 0
        self.codecs = tuple(codecs)
        self.timeout = timeout
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.sip_port = self.ctrl_port = self.cons_port = 0
        self.events: list[dict] = []
        self.dtmf_received = ""
        self.aio = _Async(self)
        self._consumed: set[int] = set()
        self._cond = threading.Condition()
        self._responses: dict[str, dict] = {}
        self._token = 0
        self._send_lock = threading.Lock()
        self._ctrl: socket.socket | None = None
        self._cons: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._log = None

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """Where peers reach this UA directly (its contact)."""
        return f"sip:{self.user}@{self.addr}:{self.sip_port}" + (
            ";transport=tcp" if self.transport == "tcp" else "")

    @property
    def aor(self) -> str:
        host = self.domain or f"{self.addr}:{self.sip_port}"
        return f"sip:{self.user}@{host}"

    def _netns(self):
        return self.host.enter() if self.host is not None else nullcontext()

    def _account_line(self) -> str:
        if self.registrar:
            uri = f"sip:{self.user}@{self.domain}"
        else:
            uri = f"sip:{self.user}@{self.addr}:{self.sip_port}"
        if self.transport == "tcp":
            uri += ";transport=tcp"
        line = f"<{uri}>"
        if self.display_name:
            line = f'"{self.display_name}" {line}'
        params = [f"regint={self.regint}", "answermode=" + ("auto" if self.auto_answer else "manual"),
                  "audio_codecs=" + ",".join("g722/16000/1" if c.lower() == "g722" else c for c in self.codecs),
                  "mwi=no", "call_transfer=yes"]
        if self.registrar:
            params.append(f'outbound="sip:{self.registrar};transport={self.transport}"')
        if self.password is not None:
            params += [f"auth_user={self.user}", f"auth_pass={self.password}"]
        return line + ";" + ";".join(params) + "\n"

    def _config(self) -> str:
        return "\n".join([
            "poll_method epoll",
            f"sip_listen {self.addr}:{self.sip_port}",
            f"net_interface {self.addr}",
            "call_local_timeout 120",
            "call_max_calls 4",
            f"audio_player aubridge,play-{self.name}",
            "audio_source ausine,440",
            f"audio_alert aubridge,alert-{self.name}",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            "audio_buffer 20-160",
            "jitter_buffer_delay 5-10",
            "rtp_stats no",
            "rtcp_mux no",
            f"module_path {MODULE_PATH}",
            "module g711.so",
            *(["module g722.so"] if any(c.lower().startswith("g722") for c in self.codecs) else []),
            "module ausine.so",
            "module aubridge.so",
            "module ctrl_tcp.so",
            "module cons.so",
            "module_app account.so",
            "module_app menu.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"cons_listen 127.0.0.1:{self.cons_port}",
            "",
        ])

    def start(self) -> Self:
        if not have_baresip():
            raise BaresipError("baresip is not installed (apt-get install baresip)")
        if self.proc is not None and self.proc.poll() is None:
            raise BaresipError(f"{self.name} is already running")  # a second process would outlive the test
        for attempt in (1, 2):   # a second try with fresh ports if another process took one meanwhile
            self.dir = Path(tempfile.mkdtemp(prefix=f"baresip-{self.name}-"))
            try:
                self._spawn()
                self._connect()
                self.command("uanew", self._account_line().strip())
                return self
            except BaresipError:
                self.stop()
                if attempt == 2:
                    raise
                self.events.clear()
                self._consumed.clear()
                self._responses.clear()
            except BaseException:
                self.stop()
                raise
        return self

    def _spawn(self) -> None:
        with self._netns():
            self.sip_port = _free_port(self.addr)
            self.ctrl_port = _free_port("127.0.0.1")
            self.cons_port = _free_port("127.0.0.1")
        (self.dir / "config").write_text(self._config())
        acc = self.dir / "accounts"   # the account is added by "uanew" once events can be seen
        acc.write_text("")
        acc.chmod(0o600)
        (self.dir / "contacts").write_text("")
        self._log = open(self.dir / "baresip.log", "wb")  # noqa: SIM115 (closed in stop)
        argv = [BARESIP, "-f", str(self.dir)]
        kw = {"stdin": subprocess.DEVNULL, "stdout": self._log, "stderr": subprocess.STDOUT}
        self.proc = self.host.popen(argv, **kw) if self.host is not None else subprocess.Popen(argv, **kw)

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"baresip {self.name} exited ({self.proc.returncode}): {self.log()}")
            try:
                with self._netns():
                    self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                    self._cons = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    self._cons.bind(("127.0.0.1", 0))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"baresip {self.name}: no control socket: {self.log()}") from None
                time.sleep(0.05)
        self._ctrl.settimeout(None)
        self._cons.settimeout(2)
        self._reader = threading.Thread(target=self._read_loop, name=f"baresip-{self.name}", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        for sock in (self._ctrl, self._cons):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self._ctrl = self._cons = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(3)
            self.proc = None
        if self._reader is not None:
            self._reader.join(2)
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            self._last_log = self.log()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        if self.dir is None:
            return getattr(self, "_last_log", "")
        try:
            return (self.dir / "baresip.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ---- control channel -------------------------------------------------------------------
    def _read_loop(self) -> None:
        sock, buf = self._ctrl, b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while True:
                colon = buf.find(b":")
                if colon < 0 or not buf[:colon].isdigit():
                    break
                size = int(buf[:colon])
                if len(buf) < colon + 1 + size + 1:
                    break
                body, buf = buf[colon + 1:colon + 1 + size], buf[colon + 2 + size:]
                self._dispatch(body)
        with self._cond:
            self._cond.notify_all()

    def _dispatch(self, body: bytes) -> None:
        try:
            msg = json.loads(body)
        except ValueError:
            return
        with self._cond:
            if msg.get("event"):
                self.events.append(msg)
                if msg.get("type") == "CALL_DTMF_START":
                    self.dtmf_received += msg.get("param", "")
            elif msg.get("response"):
                self._responses[str(msg.get("token"))] = msg
            self._cond.notify_all()

    def _wait(self, predicate, timeout: float | None, what: str):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._cond:
            while True:
                result = predicate()
                if result is not None:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self.proc is None or self.proc.poll() is not None:
                    raise BaresipError(f"{self.name}: timed out waiting for {what}; "
                                       f"events: {[e.get('type') for e in self.events[-12:]]}")
                self._cond.wait(min(left, 0.2))

    def command(self, cmd: str, params: str = "", timeout: float | None = None) -> str:
        if self._ctrl is None:
            raise BaresipError(f"{self.name} is not running")
        with self._send_lock:
            self._token += 1
            token = f"{self.name}-{self._token}"
            body = json.dumps({"command": cmd, "params": params, "token": token}).encode()
            self._ctrl.sendall(b"%d:%s," % (len(body), body))
        resp = self._wait(lambda: self._responses.pop(token, None), timeout, f"response to {cmd}")
        if not resp.get("ok"):
            raise BaresipError(f"{self.name}: {cmd} {params}: {resp.get('data')}")
        return resp.get("data") or ""

    def key(self, keys: str) -> str:
        """Send single-key commands over the cons UDP console; returns its reply (may be empty)."""
        if self._cons is None:
            raise BaresipError(f"{self.name} is not running")
        self._cons.sendto(keys.encode(), ("127.0.0.1", self.cons_port))
        try:
            return self._cons.recv(65536).decode(errors="replace")
        except OSError:
            return ""

    # ---- events ----------------------------------------------------------------------------
    def wait_for(self, event_type: str, timeout: float | None = None, **match) -> dict:
        def find():
            for i, ev in enumerate(self.events):
                if i in self._consumed or ev.get("type") != event_type:
                    continue
                if all(ev.get(k) == v for k, v in match.items()):
                    self._consumed.add(i)
                    return ev
            if event_type != CALL_END and "id" in match:
                for ev in self.events:   # the awaited call is already gone
                    if ev.get("type") == CALL_END and ev.get("id") == match["id"]:
                        raise BaresipError(f"{self.name}: call closed ({ev.get('param')}) "
                                           f"while waiting for {event_type}")
            return None
        return self._wait(find, timeout, event_type)

    def call_state(self) -> str | None:
        with self._cond:
            calls = [e for e in self.events if e.get("class") == "call" and e.get("id")]
            if not calls:
                return None
            newest = calls[-1]["id"]
            states = [e["type"] for e in calls if e["id"] == newest and e["type"].startswith("CALL_")
                      and e["type"] not in ("CALL_RTCP", "CALL_DTMF_START", "CALL_DTMF_END")]
            return states[-1] if states else None

    def calls(self) -> list[str]:
        return [ln.strip() for ln in self.command("listcalls").splitlines() if "[line" in ln]

    # ---- registration ----------------------------------------------------------------------
    def register(self, timeout: float | None = None) -> dict:
        """Wait until registered; the UA registers by itself at start (regint > 0)."""
        if not self.registrar:
            raise BaresipError(f"{self.name} has no registrar")

        def outcome():
            for i, ev in enumerate(self.events):
                if i not in self._consumed and ev.get("type") in ("REGISTER_OK", "REGISTER_FAIL"):
                    self._consumed.add(i)
                    return ev
            return None
        ev = self._wait(outcome, timeout, "REGISTER_OK")
        if ev["type"] != "REGISTER_OK":
            raise BaresipError(f"{self.name}: registration failed: {ev.get('param')}")
        return ev

    def unregister(self) -> None:
        self.command("uadel", self.aor)

    # ---- calls -----------------------------------------------------------------------------
    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def answer(self, timeout: float | None = None) -> dict:
        ev = self.wait_for("CALL_INCOMING", timeout)
        self.command("callfind", ev["id"])
        self.command("accept")
        return ev

    def hangup(self) -> None:
        self.command("hangup")

    reject = hangup

    def hold(self) -> str:
        return self.key("x")

    def resume(self) -> str:
        return self.key("X")

    def transfer(self, uri: str) -> None:
        self.command("transfer", uri)

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        for digit in digits:
            self.command("sndcode", digit)
            time.sleep(gap)

    def select(self, call_id: str) -> None:
        """Make call_id the current call (for hangup/hold/... with several calls)."""
        self.command("callfind", call_id)

    # ---- media -----------------------------------------------------------------------------
    def rtp_stats(self) -> dict:
        try:
            text = self.command("audio_debug")
        except BaresipError:
            return {}
        if "Audio stream" not in text:
            return {}
        tx = re.search(r"TX: packets=(\d+)", text)
        direction = re.search(r"audio dir=(\w+)", text)
        codec = re.search(r"encode: (\S+)", text)
        remote = re.search(r"remote: (\S+?)/", text)
        return {
            "tx": int(tx.group(1)) if tx else 0,
            "rx": sum(int(n) for n in re.findall(r"rcvd=(\d+)", text)),
            "dir": direction.group(1) if direction else "",
            "codec": codec.group(1) if codec else "",
            "remote": remote.group(1) if remote else "",
        }

    def wait_rtp(self, tx: int = 0, rx: int = 0, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            stats = self.rtp_stats()
            if stats and stats["tx"] >= tx and stats["rx"] >= rx:
                return stats
            if time.monotonic() > deadline:
                raise BaresipError(f"{self.name}: RTP counters {stats} did not reach tx={tx} rx={rx}")
            time.sleep(0.1)


class _Async:
    """`ua.aio.<method>(...)`: the blocking method run in a worker thread, as a coroutine."""

    def __init__(self, ua: Baresip) -> None:
        self._ua = ua

    def __getattr__(self, name: str):
        fn = getattr(self._ua, name)

        async def run(*args, **kw):
            return await asyncio.to_thread(fn, *args, **kw)
        return run
