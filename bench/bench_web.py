"""Web admin sign-in latency, quiet and under 200 hostile connections (idle TCP, TLS handshakes never
finished, slowloris headers), on Werkzeug's development server (the server before) and on the box's
server (webadmin/server.py), plus the time each takes to shut down while they are connected.

All on loopback, one lab data directory in a temporary folder.
"""
from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

from appliance.certs import ensure_certificate
from appliance.runtime import Runtime
from tests.webadmin.helpers import ADMIN, admin_client_for
from tests.webadmin.hostile import Hostile, sign_in
from webadmin import create_app
from webadmin.server import AdminServer

AREA = "web"
HOSTILE = 200
TRIES = 5
CLIENT_TIMEOUT = 15.0
SHUTDOWN_WAIT = 10.0


@contextlib.contextmanager
def _werkzeug(app, cert: Path, key: Path):
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(str(cert), str(key)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, server.shutdown


@contextlib.contextmanager
def _box_server(app, cert: Path, key: Path):
    server = AdminServer("127.0.0.1", 0, app, cert, key)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server.port, server.stop
    server.stop()


def _sign_ins(port: int) -> tuple[list[float], int]:
    """Seconds per successful sign-in, and how many got no answer (stops at the first)."""
    times, failed = [], 0
    for _ in range(TRIES):
        try:
            status, _, seconds = sign_in("127.0.0.1", port, ADMIN["login"], ADMIN["password"], CLIENT_TIMEOUT)
        except OSError:
            failed += 1
            break
        if status == 302:
            times.append(seconds)
        else:
            failed += 1
    return times, failed


def _rows(label: str, serve, app, cert: Path, key: Path) -> list[dict]:
    rows = []
    with serve(app, cert, key) as (port, shutdown):
        sign_in("127.0.0.1", port, ADMIN["login"], ADMIN["password"], CLIENT_TIMEOUT)  # warm-up
        quiet, _ = _sign_ins(port)
        rows.append(_row(f"{label}: sign-in, quiet", statistics.median(quiet), f"median of {len(quiet)}"))
        stopper = threading.Thread(target=shutdown, daemon=True)
        with Hostile("127.0.0.1", port, HOSTILE) as hostile:
            time.sleep(2)
            under, failed = _sign_ins(port)
            note = f"median of {len(under)}, {hostile.open_count()} hostile connections open"
            if failed:  # the client's timeout is a lower bound of the latency
                note = (f"at least: {failed} sign-in(s) got no answer within {CLIENT_TIMEOUT:.0f} s, "
                        f"{hostile.open_count()} hostile connections open")
            rows.append(_row(f"{label}: sign-in, {HOSTILE} hostile", statistics.median(under) if under
                             else CLIENT_TIMEOUT, note))
            started = time.monotonic()
            stopper.start()
            stopper.join(timeout=SHUTDOWN_WAIT)
            took, stuck = time.monotonic() - started, stopper.is_alive()
        rows.append(_row(f"{label}: shutdown with {HOSTILE} hostile", took,
                         f"at least: still running after {SHUTDOWN_WAIT:.0f} s" if stuck else ""))
    return rows


def _row(metric: str, value: float, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": round(value, 3), "unit": "s", "note": note}


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Path(tmp) / "var", lab=True)
        runtime.bootstrap()
        try:
            app = create_app(runtime)
            admin_client_for(runtime, app)
            cert, key = ensure_certificate(Path(tmp) / "tls", "officebox")
            return (_rows("werkzeug dev server (before)", _werkzeug, app, cert, key)
                    + _rows("box server (after)", _box_server, app, cert, key))
        finally:
            runtime.store.close()


if __name__ == "__main__":
    for r in run():
        print(f"{r['metric']:<55} {r['value']:>8} {r['unit']}  {r['note']}")
