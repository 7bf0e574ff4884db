"""A whole box, not lab mode: `officebox run` on real ports in the box's namespace, between a LAN
namespace (a PC that knows nothing but DHCP) and an 'ISP' namespace (router, resolver, web server).
The PC gets its address, resolves local and Internet names through the box, reaches the Internet
through NAT, and finds the web admin's first-boot wizard; two softphones (baresip) on it call each
other through the PBX, a mail client sends mail to a colleague who reads it; the Internet does not
reach the box."""
import imaplib
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from appliance.users import hash_password
from tests.appliance.test_runtime import reap, stop, wait_for_line
from tests.netns import Lab, needs_netns
from tests.services.dhcp.clients import udhcpc
from tests.services.dhcp.helpers import in_netns
from tests.services.dns.upstream import Upstream
from tests.services.firewall.topology import ECHO_SERVER
from tests.services.pbx.baresip import Baresip

pytestmark = [needs_netns, pytest.mark.slow]
ISP, WAN = "198.51.100.1", "198.51.100.2"
STAFF = [{"login": login, "full_name": login.title(), "extension": ext, "sip_secret": f"{login}-sip-secret",
          "password_hash": hash_password(f"{login}-mail-password")} for login, ext in (("ann", "201"), ("bob", "202"))]


def test_a_box_serves_its_lan_and_shares_the_internet(tmp_path):
    top = Path(tempfile.mkdtemp(prefix="ob-box-"))
    top.chmod(0o711)  # Squid runs as the proxy user: the data directory must be reachable
    data = top / "var"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    def officebox(host, *args, **kw):
        return host.run(sys.executable, "-m", "appliance.cli", "--data-dir", str(data), *args, env=env,
                        check=False, timeout=120, **kw)

    try:
        with Lab() as lab:
            box, pc, isp = lab.host("box"), lab.host("pc"), lab.host("isp")
            lan_if, pc_if = lab.link(box, None, pc, None)
            wan_if, _ = lab.link(box, None, isp, f"{ISP}/24")
            with in_netns(isp):
                upstream = Upstream(ISP, 53)
            web = isp.popen([sys.executable, "-c", ECHO_SERVER, ISP, "8000"])
            network = {"lan": {"interface": lan_if, "address": "10.77.0.1/24"},
                       "wan": {"interface": wan_if, "mode": "static", "address": f"{WAN}/24", "gateway": ISP,
                               "dns": [ISP]}}
            done = officebox(box, "config", "set", "network", json.dumps(network), "-m", "installer: ports")
            assert done.returncode == 0, done.stderr
            done = officebox(box, "config", "set", "users", json.dumps(STAFF), "-m", "staff")
            assert done.returncode == 0, done.stderr
            proc = box.popen([sys.executable, "-m", "appliance.cli", "--data-dir", str(data), "run"], text=True,
                             env=env)
            try:
                wait_for_line(proc, r"web admin: ", timeout=90)
                lease = udhcpc(pc, pc_if, tmp_path / "pc", "-x", "hostname:reception")
                assert lease["ip"].startswith("10.77.0.") and lease["router"] == "10.77.0.1"
                assert lease["dns"] == "10.77.0.1" and lease["domain"] == "office.lan"
                pc.run("ip", "addr", "add", f"{lease['ip']}/24", "dev", pc_if)
                pc.run("ip", "route", "add", "default", "via", "10.77.0.1")

                def dig(name):
                    return pc.run("dig", "@10.77.0.1", "+short", "+time=2", "+tries=2", name).stdout.split()
                assert dig("reception.office.lan") == [lease["ip"]]
                assert dig("officebox.office.lan") == ["10.77.0.1"]
                assert dig("www.example.net")[0].startswith("203.0.113.")
                assert upstream.asked["www.example.net"] == 1
                assert pc.run("curl", "-s", "-m", "5", f"http://{ISP}:8000/").stdout == f"from {WAN}"  # NAT
                wizard = pc.run("curl", "-sk", "-m", "10", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                "https://10.77.0.1/").stdout
                assert wizard.startswith("302") and "/setup" in wizard
                outside = isp.run("curl", "-sk", "-m", "3", "https://198.51.100.2/", check=False)
                assert outside.returncode == 28  # dropped: the web admin is not on the Internet
                phones(pc, lease["ip"])
                mail(pc)
                status = officebox(box, "status")
                assert status.returncode == 0 and " down " not in status.stdout, status.stdout
                stop(proc)
            finally:
                reap(proc)
                web.kill()
                web.wait()
                upstream.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert subprocess.run(["pgrep", "-f", f"--data-dir {data}"], capture_output=True).returncode != 0


def phones(pc, address: str) -> None:
    ann = Baresip("ann", user="201", password=STAFF[0]["sip_secret"], registrar="10.77.0.1:5060", host=pc,
                  addr=address)
    bob = Baresip("bob", user="202", password=STAFF[1]["sip_secret"], registrar="10.77.0.1:5060", host=pc,
                  addr=address)
    with ann, bob:
        ann.register()
        bob.register()
        ann.dial("202")
        bob.answer()
        ann.wait_for("CALL_ESTABLISHED")
        ann.wait_rtp(tx=30, rx=30)  # audio both ways through the box's relay
        bob.wait_rtp(tx=30, rx=30)
        ann.hangup()
        bob.wait_for("CALL_CLOSED")


def mail(pc) -> None:
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the box's own certificate
    with in_netns(pc):
        with smtplib.SMTP("10.77.0.1", 587, timeout=10) as smtp:
            smtp.starttls(context=tls)
            smtp.login("ann", "ann-mail-password")
            smtp.sendmail("ann@example.com", ["bob@example.com"],
                          b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: lunch\r\n\r\nAt noon?\r\n")
        imap = imaplib.IMAP4_SSL("10.77.0.1", 993, ssl_context=tls, timeout=10)
        try:
            imap.login("bob", "bob-mail-password")
            imap.select("INBOX")
            _, found = imap.search(None, "ALL")
            assert len(found[0].split()) == 1
            _, parts = imap.fetch(found[0].split()[0], "(BODY[])")
            assert b"At noon?" in parts[0][1]
        finally:
            imap.logout()
