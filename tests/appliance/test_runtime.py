"""`officebox run --lab` end to end: it starts every service, serves the web admin over HTTPS,
answers `officebox status`, takes a console change live, and stops cleanly on SIGTERM.

It runs inside a network namespace of its own, so its lab ports never collide with anything."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.netns import Lab, needs_netns

pytestmark = [needs_netns, pytest.mark.slow]


def officebox(data, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--lab", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})


def wait_for_line(proc, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} never printed; output:\n{''.join(seen)}")


def stop(proc) -> None:
    """SIGTERM: the appliance stops cleanly."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def reap(proc) -> None:
    """After a failed test: nothing left running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def run_lab_box(box, data):
    return box.popen([sys.executable, "-m", "appliance.cli", "--lab", "--data-dir", str(data), "run",
                      "--admin-port", "0"], text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_lab_appliance_runs_serves_and_stops(tmp_path):
    data = tmp_path / "var"
    with Lab() as lab:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            url = wait_for_line(proc, r"web admin: (https://127\.0\.0\.1:\d+/)").group(1)
            wait_for_line(proc, r"setup code: [A-Z2-9]{4}-[A-Z2-9]{4}  \(the first-boot wizard asks for it\)")
            assert (data / "setup-code.hash").stat().st_mode & 0o777 == 0o600
            head = box.run("curl", "-skI", url).stdout.lower()
            assert "\nserver:" not in head and "werkzeug" not in head, head
            page = box.run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", url)
            code, location = page.stdout.split(" ", 1)
            assert code == "302" and "/setup" in location  # a new box opens the first-boot wizard
            status = officebox(data, "status")
            assert status.returncode == 0 and url in status.stdout
            assert "down" not in status.stdout, status.stdout
            change = officebox(data, "config", "set", "system.company_name", "Live Change")
            assert change.returncode == 0, change.stderr
            history = officebox(data, "config", "history").stdout
            assert "Live Change" not in history and history.startswith("*#2")
            stop(proc)
            assert "OfficeBox stopping" in proc.stdout.read()
            left = box.run("ip", "netns", "pids", box.name, check=False)
            assert subprocess.run(["ip", "netns", "pids", box.name], capture_output=True,
                                  text=True).stdout.strip() == "", left.stdout
        finally:
            reap(proc)
    assert officebox(data, "status").returncode == 3


def test_restore_and_restart_of_a_running_appliance(tmp_path):
    data = tmp_path / "var"
    with Lab() as lab:
        proc = run_lab_box(lab.host("box"), data)
        try:
            wait_for_line(proc, r"web admin: ")
            assert officebox(data, "config", "set", "system.company_name", "Before").returncode == 0
            saved = tmp_path / "box.obbackup"
            assert officebox(data, "backup", str(saved)).returncode == 0
            assert officebox(data, "config", "set", "system.company_name", "After").returncode == 0
            broken = tmp_path / "broken.obbackup"
            broken.write_bytes(saved.read_bytes()[:-64])
            refused = officebox(data, "restore", str(broken))
            assert refused.returncode == 1 and "corrupt" in refused.stderr
            restore = officebox(data, "restore", str(saved))
            assert restore.returncode == 0 and "restarts to restore it" in restore.stdout
            wait_for_line(proc, r"OfficeBox restarting")
            wait_for_line(proc, r"web admin: ")
            shown = officebox(data, "config", "show", "--section", "system").stdout
            assert '"Before"' in shown, shown
            assert "restore of the backup made" in officebox(data, "config", "history").stdout
            assert officebox(data, "restart").returncode == 0
            wait_for_line(proc, r"OfficeBox restarting")
            wait_for_line(proc, r"web admin: ")
            stop(proc)
        finally:
            reap(proc)
    assert officebox(data, "restart").returncode == 3
