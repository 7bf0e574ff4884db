"""Caller names from the contacts: SIPp plays the carrier's caller on a trunk, baresip is the desk phone
that the DID rings. The phone sees the shared contact's name, the called user's personal contact before
it, and the carrier's own name for a number that is in no book; internal calls keep the colleague's name."""
import subprocess

import pytest

from appliance import contacts
from services.pbx import callername

from .baresip import Baresip, _free_port, have_baresip
from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config
from .sipp import SCENARIOS, have_sipp

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (have_baresip() and have_sipp()),
                                                   reason="baresip and SIPp (sip-tester) are needed")]
CARRIER = "127.0.0.5"


def carrier_call(box, caller: str, display: str, workdir) -> subprocess.Popen:
    argv = ["sipp", box.registrar, "-sf", str(SCENARIOS / "trunk_caller.xml"), "-s", "5000",
            "-key", "caller", caller, "-key", "display", display, "-i", CARRIER, "-p", str(_free_port(CARRIER)),
            "-mp", str(_free_port(CARRIER)), "-m", "1", "-l", "1", "-timeout", "20s", "-timeout_error",
            "-nostdin", "-trace_err", "-error_file", str(workdir / "sipp-errors.log")]
    return subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)


def ring(box, phone, caller: str, display: str, workdir) -> dict:
    """A carrier's call answered by `phone`: its CALL_INCOMING event."""
    sipp = carrier_call(box, caller, display, workdir)
    try:
        incoming = phone.answer(timeout=15)
        assert sipp.wait(20) == 0, (workdir / "sipp-errors.log").read_text(errors="replace")[-800:]
        phone.wait_for("CALL_CLOSED", timeout=10)
        return incoming
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait(5)


def test_the_phone_shows_the_contact_name_of_a_trunk_caller(tmp_path):
    data_dir = tmp_path / "box"
    contacts.save_contact(data_dir, {"name": "Jeanne Dupont", "company": "Boulangerie",
                                     "phones": [["work", "+33 1 23 45 67 89"]]})
    contacts.save_contact(data_dir, {"name": "Client VIP", "phones": [["mobile", "06 12 34 56 78"]]})
    contacts.save_contact(data_dir, {"name": "Maman", "phones": [["mobile", "+33 6 12 34 56 78"]]}, "alice")
    cfg = config([ALICE, BOB], extensions={"201": {"voicemail": False}},
                 trunks=[{"name": "carrier", "host": CARRIER, "port": 5060}],
                 dids=[{"number": "5000", "destination": "201"}])
    with PbxRunner(data_dir, cfg) as box, \
            Baresip("alice", user="201", password=ALICE["sip_secret"], registrar=box.registrar) as alice, \
            Baresip("bob", user="202", password=BOB["sip_secret"], registrar=box.registrar) as bob:
        alice.register()
        bob.register()
        box.call(callername.refresh(box.svc.core))  # what the PBX does at start and every 2 s, awaited
        for caller, display, shown in (("+33123456789", '"CARRIER CNAM" ', "Jeanne Dupont"),
                                       ("0033612345678", "", "Maman"),  # alice's own contact wins
                                       ("+33699999999", '"Carrier Says" ', "Carrier Says")):
            assert ring(box, alice, caller, display, tmp_path)["peerdisplayname"] == shown
        contacts.save_contact(data_dir, {"name": "Nouveau Client", "phones": [["work", "06 99 99 99 99"]]})
        box.call(callername.refresh(box.svc.core))
        assert ring(box, alice, "+33699999999", '"Carrier Says" ', tmp_path)["peerdisplayname"] == "Nouveau Client"
        bob.dial("201")  # an internal call: the colleague's directory name, never a contact's
        assert alice.answer(timeout=10)["peerdisplayname"] == "Bob Durand"
        bob.hangup()
        alice.wait_for("CALL_CLOSED", timeout=10)
