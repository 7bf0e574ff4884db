"""The proxy with the real Squid (and the real nft for transparent mode) in namespaces.

The box runs Squid through the real supervisor and apply engine; the LAN PC fetches through it with
curl; the "Internet" host serves files. Names resolve through the proxy's own hosts file.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zoneinfo
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.apply import ApplyError
from appliance.users import hash_password
from services.firewall.service import FirewallService
from services.proxy.config import DAYS
from services.proxy.service import ProxyService
from tests.netns import needs_netns
from tests.services.firewall.topology import INET, LAN_BOX, LAN_PC, WAN_BOX, Appliance, Edge, fetch

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
PROXY = f"http://{LAN_BOX}:3128"
SECOND_PC = "192.0.2.11"
HOSTS = [{"name": n, "address": INET} for n in ("allowed.test", "blocked.test", "files.test")]


@pytest.fixture(scope="module")
def edge():
    net = Edge()
    net.pc.run("ip", "addr", "add", f"{SECOND_PC}/24", "dev", net.pc_if)
    files = Path(tempfile.mkdtemp(prefix="ob-files-"))
    (files / "logo.txt").write_text("cacheable " * 500)
    ten_days_ago = time.time() - 10 * 86400
    os.utime(files / "logo.txt", (ten_days_ago, ten_days_ago))  # heuristic freshness: 2 days
    server = net.inet.popen([sys.executable, "-m", "http.server", "8001", "--bind", INET, "--directory", str(files)])
    net.procs.append(server)
    net.serve(net.inet, INET, 80)  # for transparent mode
    yield net
    net.close()
    shutil.rmtree(files, ignore_errors=True)


@contextmanager
def appliance(edge, services: dict | None = None):
    # Squid drops to the proxy user: its tree must be reachable (pytest's tmp dirs are 0700)
    top = Path(tempfile.mkdtemp(prefix="ob-proxy-"))
    top.chmod(0o711)
    services = services or {"firewall": FirewallService, "proxy": ProxyService}
    app = Appliance(top / "var", services, edge.box.name)
    try:
        yield app
    finally:
        app.close()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def running(edge):
    """One appliance with Squid for the module; each test applies its own proxy section."""
    with appliance(edge) as app:
        app.boot(document(edge))
        wait_until_serving(edge)
        yield app


@pytest.fixture
def box(running, edge):
    configure(running, edge)
    return running


def document(edge, **proxy) -> dict:
    return edge.document({}, proxy={"hosts": HOSTS, "dns_servers": [INET], "cache_mb": 20, **proxy})


def configure(box, edge, **proxy) -> None:
    section = document(edge, **proxy)["proxy"]
    box.engine.update("admin", "proxy settings", lambda d: d.update(proxy=section))  # nothing left from before


def wait_until_serving(edge, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = fetch(edge.pc, "http://allowed.test:8000/", proxy=PROXY)
        if code == 0 and body.startswith("from"):
            return
        time.sleep(0.3)
    raise AssertionError("squid did not start serving")


def wait_for_pid(box, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if box.services["proxy"].running():
            return int(box.services["proxy"].paths.pid.read_text())
        time.sleep(0.2)
    raise AssertionError("squid did not start")


def access_log(box, until=None, timeout: float = 5.0) -> list[str]:
    """The access log's lines; with `until`, waits (bounded) for a line it accepts: squid writes a
    request's line when the transaction ends, which may be just after the client got its last byte."""
    deadline = time.monotonic() + timeout
    while True:
        lines = box.services["proxy"].paths.access_log.read_text().splitlines()
        if until is None or any(until(line) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_blocked_site_gets_the_block_page_allowed_one_passes(edge, box):
    configure(box, edge, blocked_domains=["blocked.test"], blocked_patterns=[r"/ads/"])
    code, body = fetch(edge.pc, "http://allowed.test:8000/page", proxy=PROXY)
    assert code == 0 and body == f"from {WAN_BOX}"   # fetched by the box from its WAN address
    code, body = fetch(edge.pc, "http://www.blocked.test:8000/news", proxy=PROXY)
    assert "Blocked by your company's Internet policy" in body
    assert "<code>www.blocked.test</code>" in body and "list of blocked sites" in body
    code, body = fetch(edge.pc, "http://allowed.test:8000/ads/banner", proxy=PROXY)
    assert "Blocked by your company's Internet policy" in body and "matches a blocked pattern" in body


def test_outside_allowed_hours_is_refused_for_that_group_only(edge, box):
    zone = zoneinfo.ZoneInfo(box.store.current().config.system.timezone)
    today = DAYS[dt.datetime.now(zone).weekday()]
    other_days = [d for d in DAYS if d != today]
    group = {"name": "interns", "sources": [f"{LAN_PC}/32"],
             "allowed_hours": [{"days": other_days, "start": "00:00", "end": "24:00"}]}
    box.engine.update("admin", "interns: not today", lambda d: d["proxy"]["groups"].append(group))
    code, body = fetch(edge.pc, "http://allowed.test:8000/", proxy=PROXY)
    assert "Blocked by your company's Internet policy" in body and "(group interns)" in body
    assert "web access is only allowed" in body
    code, body = fetch(edge.pc, "http://allowed.test:8000/", proxy=PROXY, source=SECOND_PC)
    assert code == 0 and body == f"from {WAN_BOX}"
    # allowed today: passes again after the reconfigure
    box.engine.update("admin", "interns: every day",
                      lambda d: d["proxy"]["groups"][0]["allowed_hours"][0].update(days=list(DAYS)))
    assert fetch(edge.pc, "http://allowed.test:8000/", proxy=PROXY)[1] == f"from {WAN_BOX}"


def fetch_as(host, url: str, login: str | None = None) -> tuple[str, str]:
    """(HTTP status, body) through the explicit proxy, signed in as login:password when given."""
    argv = ["curl", "-s", "-m", "5", "-x", PROXY, "-w", "\n%{http_code}", url]
    if login:
        argv[1:1] = ["--proxy-user", login]
    out = host.run(*argv, check=False, timeout=15).stdout
    body, _, code = out.rpartition("\n")
    return code, body


def test_sign_in_and_groups_by_login(edge, box):
    staff = [{"login": login, "full_name": login.title(), "password_hash": hash_password(f"{login}-main-word"),
              "proxy_password_hash": hash_password(f"{login}-pass-word")} for login in ("ann", "bob")]
    box.engine.update("admin", "staff", lambda d: d["users"].extend(
        u for u in staff if u["login"] not in {x["login"] for x in d["users"]}))
    configure(box, edge, sign_in=True,
              groups=[{"name": "sales", "users": ["ann"], "blocked_domains": ["blocked.test"]}])
    assert fetch_as(edge.pc, "http://allowed.test:8000/")[0] == "407"  # not signed in
    assert fetch_as(edge.pc, "http://allowed.test:8000/", "ann:wrong-password")[0] == "407"
    # the main password never crosses the LAN in clear: it does not open the proxy
    assert fetch_as(edge.pc, "http://allowed.test:8000/", "bob:bob-main-word")[0] == "407"
    assert fetch_as(edge.pc, "http://allowed.test:8000/", "ann:ann-pass-word") == ("200", f"from {WAN_BOX}")
    code, body = fetch_as(edge.pc, "http://blocked.test:8000/", "ANN:ann-pass-word")
    assert code == "403" and "(group sales)" in body and "list of blocked sites" in body
    assert fetch_as(edge.pc, "http://blocked.test:8000/", "bob:bob-pass-word") == ("200", f"from {WAN_BOX}")
    signin = box.services["proxy"].signin
    assert signin.checked >= 3 and any(" ann " in line for line in access_log(box, lambda line: " ann " in line))
    box.services["proxy"].collect()
    users = {u["login"]: u for u in box.services["proxy"].stats.top_users(time.time() - 3600)}
    assert users["ann"]["requests"] >= 2 and users["ann"]["denied"] >= 1 and users["bob"]["requests"] >= 1


def test_second_fetch_is_a_cache_hit_and_statistics_count_both_clients(edge, box):
    url = "http://files.test:8001/logo.txt"
    first = fetch(edge.pc, url, proxy=PROXY)
    second = fetch(edge.pc, url, proxy=PROXY, source=SECOND_PC)
    assert first == second and first[1].startswith("cacheable")
    lines = [line for line in access_log(box, lambda line: line.count(url) and "HIT/" in line) if url in line]
    assert len(lines) == 2 and "TCP_MISS/200" in lines[0]
    assert lines[1].split()[3] in ("TCP_MEM_HIT/200", "TCP_HIT/200"), lines[1]

    proxy = box.services["proxy"]
    assert proxy.collect() >= 2  # at least this test's two fetches
    since = time.time() - 3600
    clients = {row["client"]: row for row in proxy.stats.top_clients(since)}
    assert set(clients) == {LAN_PC, SECOND_PC}
    assert clients[SECOND_PC]["bytes"] >= 5000 and clients[LAN_PC]["bytes"] >= 5000
    sites = {row["domain"]: row for row in proxy.stats.top_sites(since)}
    assert sites["files.test"]["requests"] == 2 and sites["files.test"]["bytes"] >= 10000
    cache = proxy.stats.cache(since)
    assert cache["hits"] >= 1 and cache["hit_ratio"] > 0
    assert sum(h["requests"] for h in proxy.stats.per_hour(since)) == cache["requests"]
    assert proxy.collect() == 0  # nothing counted twice


def test_access_log_rotation_keeps_every_line_counted_once(edge, box):
    proxy = box.services["proxy"]
    proxy.collect()
    before = proxy.stats.cache(0)["requests"]
    for i in range(3):
        fetch(edge.pc, f"http://allowed.test:8000/before-rotation-{i}", proxy=PROXY)
    proxy.rotate_bytes = 1
    try:
        assert proxy.rotate_logs()
    finally:
        proxy.rotate_bytes = 64 * 1024 * 1024
    rotated = proxy.paths.access_log.with_name("access.log.1")
    assert "before-rotation-2" in rotated.read_text()
    fetch(edge.pc, "http://allowed.test:8000/after-rotation", proxy=PROXY)
    deadline = time.monotonic() + 10
    while "after-rotation" not in proxy.paths.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "after-rotation" in proxy.paths.access_log.read_text()  # Squid writes to the new file
    proxy.collect()
    assert proxy.stats.cache(0)["requests"] == before + 4


def test_a_configuration_squid_refuses_is_never_applied(edge, box):
    configure(box, edge, blocked_domains=["blocked.test"])
    current = (box.ctx.etc_root / "current").readlink()
    good = box.store.current_id()
    # valid for Python, not a POSIX regular expression: only Squid's own parser can tell
    with pytest.raises(ApplyError, match="Squid refused"):
        box.engine.update("admin", "bad pattern", lambda d: d["proxy"]["blocked_patterns"].append("(?i)casino"))
    assert (box.ctx.etc_root / "current").readlink() == current
    assert box.store.current_id() == good
    assert "blocked.test" in fetch(edge.pc, "http://blocked.test:8000/", proxy=PROXY)[1]
    assert fetch(edge.pc, "http://allowed.test:8000/", proxy=PROXY)[0] == 0  # still the old one serving


def test_transparent_mode_redirects_lan_web_traffic(edge, box):
    configure(box, edge, blocked_domains=["blocked.test"], transparent=True)
    code, body = fetch(edge.pc, f"http://{INET}/direct")
    assert code == 0 and body == f"from {WAN_BOX}"
    wanted = lambda line: f"{LAN_PC} " in line and f"http://{INET}/direct" in line  # noqa: E731
    assert any(wanted(line) for line in access_log(box, wanted))
    result = edge.pc.run("curl", "-s", "--noproxy", "*", "-m", "5", "-H", "Host: blocked.test",
                         f"http://{INET}/", check=False)
    assert "Blocked by your company's Internet policy" in result.stdout


def test_squid_is_stopped_with_the_appliance(edge, running):
    with appliance(edge, {"proxy": ProxyService}) as box:  # a second Squid beside the module's one
        box.boot(document(edge, port=3138, intercept_port=3139))
        pid = wait_for_pid(box)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists()
    assert not list(Path("/dev/shm").glob(f"{box.services['proxy'].instance}-*"))  # no shared memory left
    assert subprocess.run(["pgrep", "-f", f"squid -N -n {box.services['proxy'].instance}"]).returncode != 0
