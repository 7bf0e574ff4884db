"""One OfficeBox VM: QEMU (KVM where /dev/kvm exists, TCG otherwise) booting the OS image under OVMF.

Its two Ethernet ports are tap devices inside a network namespace the test made (tests/netns.py): the
first (lan0) is the namespace's `oblan` with 192.168.1.50/24, the box's default LAN being
192.168.1.1/24; the second (wan0) `obwan` has nothing behind it. The serial console goes to a file.
Commands run in the box through the QEMU guest agent (qemu-guest-agent is in the image); an update
file reaches the box as a read-only second disk, /dev/vdb.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
LAN_PC = "192.168.1.50/24"
BOX = "192.168.1.1"


def kvm_works() -> bool:
    """KVM where /dev/kvm exists and really runs a guest: some nested hosts (e.g. a PVM-only kvm
    module) open /dev/kvm but fail in the firmware's first instructions. OFFICEBOX_QEMU_ACCEL=tcg skips it."""
    if not os.access("/dev/kvm", os.W_OK) or os.environ.get("OFFICEBOX_QEMU_ACCEL") == "tcg":
        return False
    probe = subprocess.Popen(["qemu-system-x86_64", "-enable-kvm", "-machine", "q35", "-m", "256", "-display", "none",
                              "-monitor", "none", "-serial", "none", "-no-reboot",
                              "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        probe.wait(timeout=6)
        return False  # it stopped: KVM failed
    except subprocess.TimeoutExpired:
        probe.kill()
        # QEMU stays up with the guest paused after a KVM internal error
        return b"KVM internal error" not in probe.communicate()[1]


KVM = kvm_works()
SLOW = 1 if KVM else 3  # TCG is several times slower: every bound is stretched by this


class GuestError(Exception):
    pass


class VM:
    def __init__(self, disk: Path, host, work: Path) -> None:
        self.disk, self.host, self.work = disk, host, work
        self.console = work / "console.log"
        self.console.touch()
        self.qga = work / "qga.sock"
        self.vars = work / "OVMF_VARS.fd"
        if not self.vars.exists():
            shutil.copy(OVMF_VARS, self.vars)
        self.proc: subprocess.Popen | None = None
        for tap in ("oblan", "obwan"):
            if host.run("ip", "link", "show", tap, check=False).returncode != 0:
                host.run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
                host.run("ip", "link", "set", tap, "up")
        host.run("ip", "addr", "replace", LAN_PC, "dev", "oblan")

    def start(self, extra: dict[str, Path] | None = None) -> float:
        """Power on, `extra` ({name: file}) attached as read-only disks /dev/disk/by-id/virtio-<name>;
        returns the monotonic start time. The console file goes on growing across boots."""
        self.qga.unlink(missing_ok=True)
        argv = ["qemu-system-x86_64", "-machine", "q35", "-m", "1536", "-smp", "2", "-nographic",
                "-monitor", "none", "-chardev", f"file,id=con,path={self.console},append=on",
                "-serial", "chardev:con",
                *(["-enable-kvm"] if KVM else ["-accel", "tcg,thread=multi"]),
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={self.vars}",
                "-drive", f"file={self.disk},if=virtio,format=raw",
                "-netdev", "tap,id=lan,ifname=oblan,script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=lan,mac=52:54:00:0b:01:01",
                "-netdev", "tap,id=wan,ifname=obwan,script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=wan,mac=52:54:00:0b:01:02",
                "-chardev", f"socket,id=qga,path={self.qga},server=on,wait=off",
                "-device", "virtio-serial", "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"]
        for name, path in (extra or {}).items():
            argv += ["-drive", f"file={path},if=none,id={name},format=raw,readonly=on",
                     "-device", f"virtio-blk-pci,drive={name},serial={name}"]
        self.proc = self.host.popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.work / "qemu.err", "ab"))
        return time.monotonic()

    def kill(self) -> None:
        """Pull the plug: QEMU is killed, nothing is shut down."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def wait_down(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout * SLOW)
        self.proc = None

    def log(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_console(self, text: str, timeout: float, after: int = 0) -> float:
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if text in self.log()[after:]:
                return time.monotonic()
            if self.proc and self.proc.poll() is not None:
                raise GuestError(f"QEMU stopped before {text!r}: {self.tail()}")
            time.sleep(0.5)
        raise GuestError(f"no {text!r} on the console in {timeout * SLOW:.0f} s: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.log()[-n:]

    def web_admin_up(self, timeout: float) -> float:
        """Wait until https://192.168.1.1/ answers from the LAN side; returns the time it did."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            done = self.host.run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                                 f"https://{BOX}/", check=False)
            if done.stdout.strip() not in ("", "000"):
                return time.monotonic()
            if self.proc and self.proc.poll() is not None:
                raise GuestError(f"QEMU stopped: {self.tail()}")
            time.sleep(1)
        raise GuestError(f"the web admin did not answer in {timeout * SLOW:.0f} s: {self.tail()}")

    # the guest agent
    def _agent(self, command: str, arguments: dict | None = None, timeout: float = 10) -> dict:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout * SLOW)
            sock.connect(str(self.qga))
            token = int(time.time() * 1000) % 2**31
            sock.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": token}}).encode())
            reply = self._read(sock, lambda r: r.get("return") == token)
            message = {"execute": command, **({"arguments": arguments} if arguments else {})}
            sock.sendall(json.dumps(message).encode())
            reply = self._read(sock, lambda r: "return" in r or "error" in r)
        if "error" in reply:
            raise GuestError(f"{command}: {reply['error']}")
        return reply["return"]

    @staticmethod
    def _read(sock: socket.socket, done) -> dict:
        buffer = b""
        for _ in range(10000):
            chunk = sock.recv(65536)
            if not chunk:
                raise GuestError("the guest agent closed the connection")
            buffer += chunk
            for line in buffer.replace(b"\xff", b"\n").split(b"\n"):
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if done(reply):
                    return reply
        raise GuestError("no answer from the guest agent")

    def wait_agent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            try:
                self._agent("guest-ping", timeout=3)
                return
            except (OSError, GuestError):
                time.sleep(1)
        raise GuestError(f"the guest agent did not answer in {timeout * SLOW:.0f} s: {self.tail()}")

    def sh(self, script: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell script in the box as root (guest-exec); returns its exit code and output."""
        pid = self._agent("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            try:
                state = self._agent("guest-exec-status", {"pid": pid})
            except TimeoutError:  # a guest busy under TCG answers late: the command still runs
                continue
            if state.get("exited"):
                out = base64.b64decode(state.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(state.get("err-data", "")).decode(errors="replace")
                done = subprocess.CompletedProcess(script, state.get("exitcode", -1), out, err)
                if check and done.returncode != 0:
                    raise GuestError(f"{script!r} exited {done.returncode}: {out}{err}")
                return done
            time.sleep(0.5)
        raise GuestError(f"{script!r} did not finish in {timeout * SLOW:.0f} s")

    def close(self) -> None:
        self.kill()
