"""The web proxy service: a Squid controller.

render -> `squid -k parse` in check() (a configuration Squid refuses, or warns about, is never applied)
-> Squid runs as a supervised child (`processes()`, through services.proxy.launch) -> configuration
changes are taken with `squid -k reconfigure`. Usage statistics are read from access.log every minute
(and on demand, `collect()`) into state/proxy/usage.db; `stats` answers the web pages' queries.

`netns` (tests): Squid runs in that network namespace on the real ports, as on the box. In lab mode
without it, Squid listens on 127.0.0.1 on the lab ports.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.aio import cancel_and_wait
from appliance.apply import FieldError
from appliance.contributions import Redirect
from appliance.service import ApplyError, ChildSpec, Service, Status
from services.proxy.config import ProxyConfig
from services.proxy.files import clean_shm, publish_pages
from services.proxy.signin import SignInServer
from services.proxy.squidconf import Paths, render
from services.proxy.stats import UsageStats

log = logging.getLogger("officebox.proxy")
COLLECT_EVERY = 60.0
RECONFIGURE_WAIT = 15.0
ROTATE_BYTES = 64 * 1024 * 1024
PARSE_PROBLEMS = re.compile(r"\b(FATAL|ERROR|WARNING)\b:?|unrecognized|Bungled|empty ACL|is a subdomain of")


class ProxyService(Service):
    name = "proxy"
    title = "Web proxy and cache"
    Config = ProxyConfig

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        """Transparent mode: the inside zones' web traffic (port 80) lands on the intercept port."""
        proxy: ProxyConfig = config.proxy
        return [Redirect("proxy", 80, proxy.intercept_port, "transparent proxy")] if proxy.transparent else []

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self.instance = "ob" + hashlib.sha1(str(ctx.data_dir).encode()).hexdigest()[:10]
        self._stats: UsageStats | None = None
        self._task: asyncio.Task | None = None
        self._config = None
        self.signin: SignInServer | None = None
        self.rotate_bytes = ROTATE_BYTES
        self._log_lock = threading.Lock()  # a rotation and a collect never interleave

    @property
    def paths(self) -> Paths:
        return Paths(etc=self.ctx.etc_dir(self.name), work=self.ctx.state_dir(self.name) / "squid",
                     run=self.ctx.run_dir(self.name))

    @property
    def lab_ports(self) -> bool:
        return self.ctx.lab and self.netns is None

    @property
    def stats(self) -> UsageStats:
        if self._stats is None:
            self._stats = UsageStats(self.ctx.state_dir(self.name) / "usage.db", self.paths.access_log)
        return self._stats

    def listen_port(self, config) -> int:
        px: ProxyConfig = config.proxy
        return px.lab_port if self.lab_ports else px.port

    # -- Service interface ------------------------------------------------------------------------
    def validate(self, config) -> list[FieldError]:
        px: ProxyConfig = config.proxy
        errors = []
        if px.enabled and config.system.admin_port in (px.port, px.intercept_port):
            field = "port" if px.port == config.system.admin_port else "intercept_port"
            errors.append(FieldError(f"proxy.{field}", f"the proxy cannot use port {config.system.admin_port}: "
                                                       "the web admin listens there"))
        logins = {u.login for u in config.users}
        for g, group in enumerate(px.groups):
            unknown = [u for u in group.users if u not in logins]
            if unknown:
                errors.append(FieldError(f"proxy.groups.{g}.users", f"group {group.name}: no user with the login "
                                                                    f"{', '.join(unknown)}"))
        return errors

    def render(self, config) -> dict[str, str]:
        return render(config, self.paths, self.lab_ports)

    async def check(self, config, staged: Path) -> None:
        probe_work = staged / ".check"
        try:
            publish_pages(staged, probe_work)
            text = (staged / "squid.conf").read_text().replace(str(self.paths.pages), str(probe_work / "pages"))
            probe = probe_work / "squid.conf"
            probe.write_text(text)
            result = await asyncio.to_thread(
                subprocess.run, ["squid", "-k", "parse", "-f", str(probe)], capture_output=True, text=True,
                timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplyError(f"could not run squid to check the configuration: {exc}") from exc
        finally:
            shutil.rmtree(probe_work, ignore_errors=True)
        problems = [line.split("| ", 1)[-1] for line in (result.stdout + result.stderr).splitlines()
                    if "Processing:" not in line and PARSE_PROBLEMS.search(line)]
        if result.returncode != 0 or problems:
            detail = "; ".join(problems[:5]) or f"squid -k parse exited with {result.returncode}"
            raise ApplyError(f"Squid refused the proxy configuration: {detail}")

    def processes(self, config) -> list[ChildSpec]:
        px: ProxyConfig = config.proxy
        argv = (sys.executable, "-m", "services.proxy.launch", str(self.paths.etc / "squid.conf"),
                self.instance, str(self.paths.work), "--cache-mb", str(px.cache_mb))
        if self.netns:
            argv = ("ip", "netns", "exec", self.netns, *argv)
        return [ChildSpec("squid", argv, env=(("TZ", config.system.timezone),), stop_timeout=15.0)]

    async def start(self, config) -> None:
        self._config = config
        self._task = asyncio.create_task(self._collect_loop(), name="proxy:stats")
        self.signin = SignInServer(self.paths.auth_socket, lambda: self._config.users,
                                   use_login_password=lambda: self._config.proxy.sign_in_password == "login")
        try:
            await self.signin.start()
        except OSError as exc:
            raise ApplyError(f"proxy sign-in: cannot listen on {self.paths.auth_socket}: {exc}") from exc

    async def reload(self, config) -> None:
        self._config = config
        await asyncio.to_thread(publish_pages, self.paths.etc, self.paths.work)
        if not self.running():
            return  # Squid reads the new files when the supervisor (re)starts it
        cache_log = self.paths.logs / "cache.log"
        offset = cache_log.stat().st_size if cache_log.exists() else 0
        result = await asyncio.to_thread(self._squid, "-k", "reconfigure")
        if result.returncode != 0:
            raise ApplyError(f"squid -k reconfigure failed: {result.stderr.strip()[-500:]}")
        # Squid closes and reopens its ports while reconfiguring: return once it accepts again
        deadline = time.monotonic() + RECONFIGURE_WAIT
        while time.monotonic() < deadline:
            with open(cache_log, "rb") as log_file:
                log_file.seek(offset)
                if b"Accepting HTTP Socket connections" in log_file.read():
                    return
            await asyncio.sleep(0.1)
        log.warning("squid did not report its ports open again within %.0f s", RECONFIGURE_WAIT)

    async def stop(self) -> None:
        if not self.running():  # the supervisor stops Squid first; it leaves its shared memory behind
            clean_shm(self.instance)
        if self.signin is not None:
            await self.signin.close()
            self.signin = None
        if self._task:
            with contextlib.suppress(Exception):  # a failed statistics pass must not stop the stop
                await cancel_and_wait(self._task)
            self._task = None
        if self._stats is not None:
            with contextlib.suppress(Exception):
                self._stats.collect()
            self._stats.close()
            self._stats = None

    def status(self) -> Status:
        if self._config is None:
            return Status("starting", "starting")
        day = self.stats.cache(time.time() - 86400)
        figures = {"requests (24 h)": day["requests"], "cache hit ratio": f"{day['hit_ratio']:.0%}",
                   "blocked (24 h)": day["denied"]}
        if self._config.proxy.sign_in and self.signin is not None:
            figures["sign-ins checked"], figures["sign-ins refused"] = self.signin.checked, self.signin.refused
        mode = "transparent and explicit" if self._config.proxy.transparent else "explicit"
        return Status("ok", f"{mode} proxy on port {self.listen_port(self._config)}", figures)

    def usage(self, since: float, top: int) -> dict:
        """Usage figures since `since` (the web pages; JSON, so it crosses to the appliance unchanged)."""
        self.collect()
        stats = self.stats
        return {"sites": stats.top_sites(since, top), "clients": stats.top_clients(since, top),
                "users": stats.top_users(since, top), "per_hour": stats.per_hour(since),
                "cache": stats.cache(since)}

    # -- helpers ----------------------------------------------------------------------------------
    def _squid(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["squid", *args, "-n", self.instance, "-f", str(self.paths.etc / "squid.conf")],
                              capture_output=True, text=True, timeout=60)

    def running(self) -> bool:
        """Squid itself serving (not `squid -z`, which writes the same pid file while it prepares)."""
        try:
            pid = int(self.paths.pid.read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return False
        return bool(argv) and argv[0].endswith(b"squid") and b"-z" not in argv and b"-k" not in argv

    def collect(self) -> int:
        """Read what Squid logged since last time (the web pages call this before querying)."""
        with self._log_lock:
            return self.stats.collect()

    def rotate_logs(self) -> bool:
        """When access.log is over `rotate_bytes`: count it, move it to access.log.1, make Squid reopen
        its logs (`-k rotate`, logfile_rotate 0), then count the old file's tail. True if rotated."""
        log_path = self.paths.access_log
        try:
            if log_path.stat().st_size < self.rotate_bytes or not self.running():
                return False
        except FileNotFoundError:
            return False
        with self._log_lock:
            return self._rotate(log_path)

    def _rotate(self, log_path: Path) -> bool:
        self.stats.collect()
        old = log_path.with_name("access.log.1")
        log_path.replace(old)
        result = self._squid("-k", "rotate")
        if result.returncode != 0:
            log.warning("squid -k rotate failed: %s", result.stderr.strip()[-300:])
        deadline = time.monotonic() + 10
        while not log_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stats.collect(old)
        return True

    async def _collect_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.collect)
                await asyncio.to_thread(self.rotate_logs)
                if self._config is not None:
                    await asyncio.to_thread(self.stats.prune, self._config.proxy.keep_days)
            except Exception:
                log.exception("reading the proxy access log failed")
            await asyncio.sleep(COLLECT_EVERY)
