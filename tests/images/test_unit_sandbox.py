"""What the appliance does at start, run with officebox.service's sandbox (its capability bounding set,
no new privileges, its umask) without a VM: these are the steps that kept the box from coming up on
the OS image (the firewall's ruleset check, the VPN's configuration check, Squid's tree)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "buildroot" / "package" / "officebox" / "officebox.service"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("nft") is None,
                                reason="needs root, setpriv and nft")


def unit_setting(name: str) -> str:
    values = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(name + "=")]
    assert values, f"{UNIT.name} has no {name}="
    return values[-1]


def sandboxed(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Python `code` as root with only the unit's bounding set, no_new_privs and its umask."""
    caps = ",".join("+" + c.lower().removeprefix("cap_") for c in unit_setting("CapabilityBoundingSet").split())
    umask = int(unit_setting("UMask"), 8)
    argv = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", "--no-new-privs", "--",
            sys.executable, "-c", f"import os; os.umask({umask:#o}); {code}"]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_unit_gives_no_cap_sys_admin():
    assert "CAP_SYS_ADMIN" not in unit_setting("CapabilityBoundingSet").split()
    assert set(unit_setting("RestrictNamespaces").split()) == {"user", "net"}


def test_the_firewall_checks_its_ruleset_within_the_units_capabilities(tmp_path):
    ruleset = tmp_path / "ruleset.nft"
    ruleset.write_text("table inet officebox {\n chain input { type filter hook input priority 0; policy drop; }\n}\n")
    done = sandboxed(f"from services.firewall import nft; nft.check({str(ruleset)!r})", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ruleset.write_text("table inet officebox {\n chain input { type filter hook nowhere priority 0; }\n}\n")
    done = sandboxed(f"from services.firewall import nft; nft.check({str(ruleset)!r})", tmp_path)
    assert done.returncode != 0 and "nft refused the ruleset" in done.stderr  # still a real check


@pytest.mark.skipif(not Path("/usr/sbin/charon-systemd").exists() or shutil.which("swanctl") is None,
                    reason="needs strongSwan (charon-systemd, swanctl)")
def test_the_vpn_checks_its_configuration_within_the_units_capabilities(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "swanctl.conf").write_text(
        "connections {\n office {\n  remote_addrs = 192.0.2.7\n  local { auth = psk }\n  remote { auth = psk }\n"
        "  children { net { local_ts = 10.1.0.0/24\n remote_ts = 10.2.0.0/24 } }\n }\n}\n"
        "secrets {\n ike-office { secret = 0sc2VjcmV0c2VjcmV0c2VjcmV0 }\n}\n")
    done = sandboxed(f"from services.vpn import swanctl; swanctl.check(__import__('pathlib').Path({str(staged)!r}))",
                     tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def open_folder():
    """A folder others may traverse (pytest's tmp_path is 0700 all the way: Squid could never reach it)."""
    folder = Path(tempfile.mkdtemp(prefix="ob-umask-", dir="/var/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_squid_reaches_its_tree_in_a_data_directory_made_under_the_units_umask(open_folder):
    data = open_folder / "data"
    work = data / "state" / "proxy" / "squid"
    done = sandboxed(f"p = __import__('pathlib').Path({str(data)!r}); (p / 'state' / 'proxy').mkdir(parents=True); "
                     f"from services.proxy.files import prepare; prepare(p / 'state' / 'proxy' / 'squid')", open_folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (data / "state").stat().st_mode & 0o007 == 0  # the umask held (group bits: the ACL mask)
    proxy = pwd.getpwnam("proxy")
    probe = subprocess.run(["setpriv", f"--reuid={proxy.pw_uid}", f"--regid={proxy.pw_gid}", "--clear-groups",
                            "ls", str(work)], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
