"""The edge test network: a LAN PC, the box, an "Internet" host; all in fresh namespaces.

    pc 192.0.2.10 --- 192.0.2.1 [box] 198.51.100.2 --- 198.51.100.1 internet

The box is configured by appliance.network.apply_network (the code under test), the PC routes via the
box, the Internet host has no route back to the LAN (so only NAT lets replies return).
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from appliance import schema
from appliance.apply import ApplyEngine
from appliance.context import Context
from appliance.network import apply_network, stop_network
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor
from appliance.users import hash_password
from tests.netns import Lab

ADMIN_HASH = hash_password("not used: only the apply engine signs in here")

LAN_PC, LAN_BOX, WAN_BOX, INET = "192.0.2.10", "192.0.2.1", "198.51.100.2", "198.51.100.1"

# answers every GET with the client's address, e.g. "from 198.51.100.2"
ECHO_SERVER = """
import http.server, socketserver, sys
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):  # no getfqdn(): no DNS lookups from the namespaces
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"from {self.client_address[0]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


class Edge:
    def __init__(self) -> None:
        self.lab = Lab()
        self.procs: list[subprocess.Popen] = []
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self) -> None:
        lab = self.lab
        self.box, self.pc, self.inet = lab.host("box"), lab.host("pc"), lab.host("inet")
        self.lan_if, self.pc_if = lab.link(self.box, None, self.pc, f"{LAN_PC}/24")
        self.wan_if, _ = lab.link(self.box, None, self.inet, f"{INET}/24")
        self.pc.run("ip", "route", "add", "default", "via", LAN_BOX)
        self.network_doc = {
            "lan": {"interface": self.lan_if, "address": f"{LAN_BOX}/24"},
            "wan": {"interface": self.wan_if, "mode": "static", "address": f"{WAN_BOX}/24", "gateway": INET},
        }
        self.report = apply_network(schema.parse({"network": self.network_doc}), netns=self.box.name)
        self.serve(self.inet, INET, 8000)      # the "Internet" web server
        self.serve(self.pc, LAN_PC, 8080)      # a LAN server for port forwards
        self.serve(self.box, "0.0.0.0", 443)   # stands in for the admin web port

    def serve(self, host, addr: str, port: int) -> None:
        proc = host.popen([sys.executable, "-c", ECHO_SERVER, addr, str(port)])
        self.procs.append(proc)
        for _ in range(50):
            if host.run("python3", "-c", f"import socket; socket.create_connection(('{addr}', {port}), 1)",
                        check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"test server on {addr}:{port} did not start")

    def document(self, firewall: dict | None = None, **sections) -> dict:
        """A box past its first-boot wizard (commit-confirm starts then), with this network."""
        admin = {"login": "admin", "full_name": "Admin", "role": "admin", "password_hash": ADMIN_HASH}
        return {"network": self.network_doc, "firewall": firewall or {}, "users": [admin],
                "system": {"initialized": True}, **sections}

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)
        if hasattr(self, "box"):
            stop_network(self.box.name)
        self.lab.close()


class Appliance:
    """The store, the apply engine and the real supervisor on their own loop, with only the given
    services (each built with the test namespace); `runtime` is what the services see."""

    def __init__(self, data_dir, service_classes: dict, netns: str) -> None:
        self.ctx = Context(data_dir, lab=True)
        self.store = ConfigStore(self.ctx.db_path)
        self.services = {name: cls(self.ctx, netns=netns) for name, cls in service_classes.items()}
        self.engine = ApplyEngine(self.ctx, self.store, self.services)
        for service in self.services.values():
            service.runtime = SimpleNamespace(engine=self.engine, store=self.store)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.supervisor = Supervisor(self.ctx, self.services)

    def boot(self, document: dict) -> None:
        self.engine.apply(document, "test", "initial")
        self.start()

    def start(self) -> None:
        """What the runtime does at each start: the services on the stored configuration, then a
        change that was awaiting confirmation goes on waiting (or expires)."""
        self.engine.recover()
        asyncio.run_coroutine_threadsafe(self.supervisor.start(self.store.current().config), self.loop).result(30)
        self.engine.live = self.supervisor
        self.engine.confirmation.resume()

    def close(self) -> None:
        self.engine.confirmation.close()
        asyncio.run_coroutine_threadsafe(self.supervisor.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()


def fetch(host, url: str, timeout: float = 2.0, proxy: str | None = None,
          source: str | None = None) -> tuple[int, str]:
    """curl in `host`: (curl exit code, body). Exit code 28 = timed out (dropped packets)."""
    argv = ["curl", "-s", "-m", str(timeout), *(["-x", proxy] if proxy else ["--noproxy", "*"])]
    if source:
        argv += ["--interface", source]
    argv.append(url)
    result = host.run(*argv, check=False, timeout=timeout + 10)
    return result.returncode, result.stdout
