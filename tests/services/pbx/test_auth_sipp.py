"""SIPp (Debian `sip-tester`) as a third-party digest client: its answers (nc, cnonce, a digest uri with
the port the request went to) are accepted, its next request on the same nonce (nc 2) too, and its
captured Authorization replayed by a second SIPp run, from the same or another address, is refused."""
import re
import shutil
import subprocess

import pytest

from .conftest import ALICE
from .pbxrunner import PbxRunner, config

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (sip-tester) not installed")

REGISTER = """<send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:201@[remote_ip]>;tag=[call_number]
      To: <sip:201@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:201@[local_ip]:[local_port]>
      {auth}
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
"""


def sipp(tmp_path, port: int, steps: list[str], local: str = "127.0.0.1") -> str:
    """Run one SIPp call of these scenario steps; its message trace."""
    (tmp_path / "s.xml").write_text('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="digest">\n'
                                    + "".join(steps) + "</scenario>\n")
    (tmp_path / "u.csv").write_text(f"SEQUENTIAL\n201;[authentication username=201 password={ALICE['sip_secret']}]\n")
    for old in tmp_path.glob("s_*.log"):
        old.unlink()
    done = subprocess.run(["sipp", "-sf", "s.xml", "-inf", "u.csv", "-m", "1", "-i", local, "-p", "0",
                           "-timeout", "10", "-timeout_error", "-trace_err", "-trace_msg", f"127.0.0.1:{port}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    errors = "".join(p.read_text() for p in tmp_path.glob("s_*_errors.log"))
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-1500:], errors[-3000:])
    return "".join(p.read_text() for p in tmp_path.glob("s_*_messages.log"))


def registered(cseq: int) -> str:
    return REGISTER.format(cseq=cseq, auth="[field1]") + '<recv response="200"/>\n'


# SIPp 3.6 answers the first challenge only, and only an MD5 one
@pytest.fixture
def pbx(tmp_path):
    with PbxRunner(tmp_path / "p", config([ALICE], digest_algorithms=["MD5"])) as runner:
        yield runner


def test_sipp_authenticates_and_reuses_its_nonce(tmp_path, pbx):
    trace = sipp(tmp_path, pbx.port, [REGISTER.format(cseq=1, auth=""), '<recv response="401" auth="true"/>\n',
                                      registered(2), registered(3)])
    assert re.findall(r"nc=(\d+)", trace) == ["00000001", "00000002"]
    assert [r["extension"] for r in pbx.svc.registrations()] == ["201"]


@pytest.mark.parametrize("thief", ["127.0.0.1", "127.0.0.2"])
def test_sipp_replay_of_a_captured_register_is_challenged(tmp_path, pbx, thief):
    trace = sipp(tmp_path, pbx.port, [REGISTER.format(cseq=1, auth=""), '<recv response="401" auth="true"/>\n',
                                      registered(2)])
    [captured] = re.findall(r"^Authorization: .*$", trace, re.M)
    replay = REGISTER.format(cseq=1, auth=captured)  # a new Call-ID: another SIPp process
    sipp(tmp_path, pbx.port, [replay, '<recv response="401"/>\n'], local=thief)
