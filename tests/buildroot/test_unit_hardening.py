"""The image's officebox.service is sandboxed, and systemd itself accepts every line of it (a misspelt
key would be ignored silently at boot: systemd-analyze verify reports it)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "buildroot/package/officebox/officebox.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_is_hardened_and_valid(tmp_path):
    text = UNIT.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/officebox",
                 "LimitNOFILE=65536"):
        assert line in text.splitlines(), line
    caps = re.search(r"^CapabilityBoundingSet=(.+)$", text, re.M).group(1).split()
    assert "CAP_NET_BIND_SERVICE" in caps and "CAP_SYS_ADMIN" not in caps and "CAP_SYS_MODULE" not in caps
    copy = tmp_path / "officebox.service"  # the launcher is only on the image: verify the rest
    copy.write_text(re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", text, flags=re.M))
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines() if str(copy) in line]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr
