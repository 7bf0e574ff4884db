"""officebox-boot, the box's launcher, with real firmware trees: a firmware that cannot start three
times in a row is rolled back to the previous one; if that one cannot start either, the factory
firmware runs. The appliance clears the count once it is up. Runs in a namespace of its own (lab ports)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.firmware import BoxFirmware
from images.factory import install_factory
from tests.netns import Lab, needs_netns

LAUNCHER = Path(__file__).resolve().parents[2] / "buildroot/package/officebox/officebox-boot"
BROKEN_CLI = 'raise SystemExit("this firmware cannot start")\n'
pytestmark = [needs_netns, pytest.mark.slow]


def read_until(proc, text, limit=400):
    seen = []
    for _ in range(limit):  # bounded: the appliance prints a dozen lines before this
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never printed:\n{''.join(seen)}")


def start_and_stop(box, env, restart=False):
    """Start the launcher, wait until the appliance is up, stop it (or ask it to restart: under the
    launcher the process ends and systemd starts it again); return what it printed."""
    proc = box.popen([str(LAUNCHER)], env=env, text=True, stderr=subprocess.STDOUT)
    try:
        out = read_until(proc, "web admin:")
        if restart:
            asked = box.run(sys.executable, "-m", "appliance.cli", "--data-dir", env["OFFICEBOX_DATA"], "restart",
                            env={**env, "PYTHONPATH": os.getcwd()})
            assert "restarting" in asked.stdout
        else:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failed_firmware_rolls_back_then_falls_back_to_factory(tmp_path, signing):
    keys, bundle = signing
    install_factory(bundle("0.1.0"), tmp_path / "rootfs", [keys])
    data = tmp_path / "var"
    (data / "trusted-keys").mkdir(parents=True)
    for pub in keys.glob("*.pub"):
        (data / "trusted-keys" / pub.name).write_text(pub.read_text())
    box_fw = BoxFirmware(data)
    box_fw.install(bundle("0.2.0"))
    box_fw.install(bundle("0.3.0", {"appliance/cli.py": BROKEN_CLI}))
    attempts = data / "firmware/boot-attempts"
    env = {"PATH": os.environ["PATH"], "OFFICEBOX_DATA": str(data), "OFFICEBOX_PYTHON": sys.executable,
           "OFFICEBOX_FACTORY": str(tmp_path / "rootfs/usr/lib/officebox/current"), "OFFICEBOX_ARGS": "--lab"}
    with Lab() as lab:
        box = lab.host("box")
        for n in (1, 2, 3):  # what systemd's Restart=always does
            failed = box.run(str(LAUNCHER), env=env, check=False)
            assert failed.returncode != 0 and "cannot start" in failed.stderr
            assert attempts.read_text().strip() == str(n)
        out = start_and_stop(box, env, restart=True)
        assert "firmware 0.3.0 did not start 3 times: rolled back" in out
        assert box_fw.slots.active() == "0.2.0" and not attempts.exists()  # up: count cleared
        attempts.write_text("3\n")  # 0.2.0 in turn fails three times
        out = start_and_stop(box, env)
        assert "starting the factory firmware" in out
        assert box_fw.slots.active() is None
        status = box.run(sys.executable, "-m", "appliance.cli", "--data-dir", str(data), "firmware", "status",
                         env={**env, "PYTHONPATH": env["OFFICEBOX_FACTORY"]}, cwd=env["OFFICEBOX_FACTORY"])
        assert "0.1.0" in status.stdout
        box_fw.install(bundle("0.4.0"))  # a new firmware gets its own tries
        assert not (data / "firmware/rolled-back").exists()
