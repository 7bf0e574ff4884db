"""Test networks: network namespaces joined by veth pairs (root only). Everything is removed on close.

    with Lab() as lab:
        box = lab.host("box"); pc = lab.host("pc")
        lab.link(box, "192.0.2.1/24", pc, "192.0.2.10/24")
        pc.run("ping", "-c1", "192.0.2.1")
        proc = box.popen(["python", "-m", "..."])

Names carry a random suffix so parallel tests never collide. Use documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24) or 10.x inside namespaces only: nothing leaves the namespaces.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

import pytest


def have_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


needs_netns = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2 for network namespaces")


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20).stdout


class Host:
    def __init__(self, name: str) -> None:
        self.name = name
        ip("netns", "add", name)
        self.run("ip", "link", "set", "lo", "up")

    def cmd(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(argv), check=check, capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(self.cmd(argv), **kw)

    def enter(self):
        """A context manager that moves the calling thread into this namespace (for in-process servers)."""
        return _InNetns(self.name)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "pids", self.name], capture_output=True)
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open on `fd` (os.setns needs Python 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


def move_thread(name: str) -> None:
    """Move the calling thread into the named namespace for the rest of its life."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


class _InNetns:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self):
        self._old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            move_thread(self.name)
        except BaseException:
            os.close(self._old)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            setns(self._old)
        finally:
            os.close(self._old)


class Lab:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.hosts: list[Host] = []
        self._n = 0

    def host(self, role: str) -> Host:
        host = Host(f"ob-{role[:6]}-{self.tag}")
        self.hosts.append(host)
        return host

    def link(self, a: Host, a_addr: str | None, b: Host, b_addr: str | None) -> tuple[str, str]:
        """Join two hosts with a veth pair; returns the interface names (in a, in b)."""
        self._n += 1
        a_if, b_if = f"v{self.tag}{self._n}a", f"v{self.tag}{self._n}b"
        ip("link", "add", a_if, "type", "veth", "peer", "name", b_if)
        for host, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ip("link", "set", ifname, "netns", host.name)
            if addr:
                host.run("ip", "addr", "add", addr, "dev", ifname)
            host.run("ip", "link", "set", ifname, "up")
        return a_if, b_if

    def close(self) -> None:
        for host in reversed(self.hosts):
            host.delete()
        self.hosts.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def udhcpd(host: Host, workdir, interface: str, router: str = "198.51.100.1", dns: str | None = None,
           lease: int | None = None) -> subprocess.Popen:
    """A real DHCP server (busybox udhcpd) in `host` on `interface`, handing out 198.51.100.50-60 with
    `router` (and `dns`, `lease` seconds); its configuration and lease files in `workdir`. Called again with
    the same `workdir` (after stopping the first) it rewrites the configuration and keeps the leases."""
    conf = workdir / "udhcpd.conf"
    conf.write_text(f"start 198.51.100.50\nend 198.51.100.60\ninterface {interface}\n"
                    f"lease_file {workdir}/udhcpd.leases\npidfile {workdir}/udhcpd.pid\n"
                    f"option subnet 255.255.255.0\noption router {router}\n"
                    + (f"option dns {dns}\n" if dns else "") + (f"option lease {lease}\n" if lease else ""))
    (workdir / "udhcpd.leases").touch()
    return host.popen(["busybox", "udhcpd", "-f", str(conf)])
