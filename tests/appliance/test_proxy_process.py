"""The proxy's sign-in and statistics run in a process of their own, as Squid's user (`officebox run
--lab` in a namespace, real Squid and curl): sign-in with the proxy password works, a configuration
change reaches Squid (`squid -k reconfigure` from that process), the usage figures cross the RPC as
JSON, and the process has no capabilities and cannot read the configuration store."""
import json
import pwd
import sys

import pytest

from appliance import rpc
from appliance.users import hash_password
from tests.appliance.test_isolation import configure, service_pids, until
from tests.appliance.test_privileges import as_user, proc_status
from tests.appliance.test_runtime import officebox, reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns

pytestmark = [needs_netns, pytest.mark.slow]
ORIGIN = "10.9.0.2"


def test_proxy_sign_in_and_usage_from_its_own_process(data):
    with Lab() as lab:
        box, web = lab.host("box"), lab.host("web")
        lab.link(box, "10.9.0.1/24", web, f"{ORIGIN}/24")
        server = web.popen([sys.executable, "-m", "http.server", "8001", "--bind", ORIGIN, "--directory", "/etc/ssl"])
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            users = json.loads(officebox(data, "config", "show", "--show-secrets").stdout)["users"]
            users.append({"login": "ann", "full_name": "Ann", "password_hash": hash_password("ann-main-word"),
                          "proxy_password_hash": hash_password("ann-pass-word")})
            configure(data, ("users", json.dumps(users)), ("proxy.sign_in", "true"))  # squid -k reconfigure

            def fetch(*auth: str) -> str:
                out = box.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                              "-x", "http://127.0.0.1:13128", *(["-U", auth[0]] if auth else []),
                              f"http://{ORIGIN}:8001/", check=False)
                return out.stdout
            assert until(lambda: fetch("ann:ann-pass-word") == "200", 30, "no page through the proxy")
            assert fetch() == "407" and fetch("ann:wrong") == "407" and fetch("ann:ann-main-word") == "407"

            [pid] = service_pids(data, "proxy")
            status = proc_status(pid)
            assert status["Uid"].split() == [str(pwd.getpwnam("proxy").pw_uid)] * 4
            assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0 and status["NoNewPrivs"] == "1"
            attempt = as_user(status, sys.executable, "-c", f"open({str(data / 'officebox.db')!r}, 'rb')")
            assert "PermissionError" in attempt.stderr, attempt
            sock = data / "run" / "proxy" / "service.sock"
            usage = rpc.call_sync(sock, {"op": "call", "method": "usage", "args": [0, 10]}, 30)
            assert {u["login"]: u["requests"] for u in usage["users"]}.get("ann", 0) >= 1, usage
            assert usage["cache"]["requests"] >= 2
            sign_ins = rpc.call_sync(sock, {"op": "status"}, 10)["figures"]
            assert sign_ins["sign-ins checked"] >= 3, sign_ins
            stop(proc)
        finally:
            reap(proc)
            server.terminate()
            server.wait(10)
