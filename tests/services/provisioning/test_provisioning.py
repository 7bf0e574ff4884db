"""Phones fetch their files over HTTP (curl as the phone) and TFTP (curl, busybox tftp) on loopback."""
from __future__ import annotations

import subprocess

import pytest

from services.provisioning import SERVICE
from tests.services.dhcp.helpers import LoopThread, lan_config

USERS = [
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "AliceSecret2024"},
    {"login": "bob", "full_name": "Bob <Stone> & Co", "extension": "202", "sip_secret": "BobSecret20245"},
    {"login": "carol", "full_name": "Carol Dect", "extension": "203", "sip_secret": "CarolSecret2024"},
    {"login": "dave", "full_name": "Dave Noext", "sip_secret": "DaveSecret20245"},
]
PHONES = [
    {"mac": "00:15:65:AA:BB:01", "model": "yealink", "user": "alice"},
    {"mac": "00-04-13-aa-bb-02", "model": "snom", "user": "bob"},
    {"mac": "000b82aabb03", "model": "grandstream", "user": "alice"},
    {"mac": "00:15:65:aa:bb:04", "model": "yealink-w70b",
     "handsets": [{"number": 1, "user": "alice"}, {"number": 2, "user": "carol"}]},
]


def make_config(**extra):
    """On loopback there are no DHCP leases: these tests switch the (default) lease binding off."""
    config = lan_config("lan0", provisioning={"lab_http_port": 0, "lab_tftp_port": 0, "lab_https_port": 0,
                                              "phones": PHONES, "require_dhcp_lease": False, **extra})
    document = config.model_dump(mode="json")
    document["users"] = USERS
    return type(config).model_validate(document)


@pytest.fixture
def prov(ctx):
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(make_config()))
    yield svc, runner
    runner.call(svc.stop())
    runner.close()


def curl(url: str, *args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-m", "5", "-w", "\n%{http_code}", *args, url], capture_output=True,
                         text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def test_each_phone_gets_its_own_account(prov):
    svc, _ = prov
    base = f"http://127.0.0.1:{svc.ports['http']}"
    code, body = curl(f"{base}/001565aabb01.cfg", "-A", "Yealink SIP-T46U 66.86.0.15 00:15:65:aa:bb:01")
    assert code == 200
    assert "account.1.user_name = 201" in body and "account.1.password = AliceSecret2024" in body
    assert "account.1.sip_server.1.address = 127.0.0.1" in body and "sip_server.1.port = 5060" in body
    assert "BobSecret" not in body
    code, body = curl(f"{base}/000413aabb02.xml")  # Snom; the name is XML-escaped
    assert code == 200 and '<user_pass idx="1" perm="R">BobSecret20245</user_pass>' in body
    assert "Bob &lt;Stone&gt; &amp; Co" in body
    code, body = curl(f"{base}/snomD785-000413AABB02.htm")
    assert code == 200 and "BobSecret20245" in body
    code, body = curl(f"{base}/cfg000b82aabb03.xml")  # Grandstream
    assert code == 200 and "<P34>AliceSecret2024</P34>" in body and "<P47>127.0.0.1:5060</P47>" in body
    code, body = curl(f"{base}/001565aabb04.cfg")  # DECT base: one account per handset
    assert code == 200
    assert "account.1.user_name = 201" in body and "account.2.user_name = 203" in body
    assert "account.2.password = CarolSecret2024" in body and "handset.2.incoming_lines = 2" in body
    assert svc.last_fetch("00:15:65:aa:bb:04")["file"] == "001565aabb04.cfg"


def test_unknown_or_mismatched_mac_gets_nothing(prov):
    svc, _ = prov
    base = f"http://127.0.0.1:{svc.ports['http']}"
    for path in ("/001565aabb99.cfg", "/cfg001565aabb01.xml", "/000413aabb02.cfg", "/../../etc/passwd",
                 "/001565aabb01.cfg.bak", "/"):
        code, body = curl(base + path)
        assert code == 404, path
        assert "Secret" not in body
    code, body = curl(f"{base}/y000000000028.cfg")  # the common file: no credentials
    assert code == 200 and "password" not in body and "Europe/Paris" in body
    assert curl(f"{base}/001565aabb01.cfg", "-X", "POST")[0] == 405
    assert svc.last_fetch("00:15:65:aa:bb:01") is None


def test_malformed_http_requests(prov):
    import socket

    svc, _ = prov
    for raw in (b"GARBAGE\r\n\r\n", b"GET /x\r\n\r\n", b"\xff\xfe\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000):
        with socket.create_connection(("127.0.0.1", svc.ports["http"]), timeout=3) as sock:
            try:
                sock.sendall(raw)
                reply = sock.recv(100)
            except ConnectionResetError:
                reply = b"HTTP/1.1 400"
        assert reply.startswith(b"HTTP/1.1 400"), raw[:20]
    assert curl(f"http://127.0.0.1:{svc.ports['http']}/001565aabb01.cfg")[0] == 200


@pytest.mark.parametrize("kind", ["basic", "digest"])
def test_optional_authentication(ctx, kind):
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(make_config(auth=kind, auth_user="phones", auth_password="Prov-Pass-99")))
    try:
        url = f"http://127.0.0.1:{svc.ports['http']}/001565aabb01.cfg"
        assert curl(url)[0] == 401
        assert curl(url, f"--{kind}", "-u", "phones:wrong-password")[0] == 401
        code, body = curl(url, f"--{kind}", "-u", "phones:Prov-Pass-99")
        assert code == 200 and "AliceSecret2024" in body
    finally:
        runner.call(svc.stop())
        runner.close()


def test_tftp_fetch(prov, tmp_path):
    svc, _ = prov
    port = svc.ports["tftp"]
    out = subprocess.run(["curl", "-s", "-m", "5", f"tftp://127.0.0.1:{port}/001565aabb04.cfg"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "account.2.password = CarolSecret2024" in out.stdout
    target = tmp_path / "got.xml"
    busy = subprocess.run(["busybox", "tftp", "-g", "-r", "cfg000b82aabb03.xml", "-l", str(target), "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=10)
    assert busy.returncode == 0, busy.stderr
    assert "<P34>AliceSecret2024</P34>" in target.read_text()
    missing = subprocess.run(["busybox", "tftp", "-g", "-r", "001565aabb99.cfg", "-l", str(tmp_path / "no"),
                              "127.0.0.1", str(port)], capture_output=True, text=True, timeout=10)
    assert missing.returncode != 0 and "not found" in missing.stderr
    put = subprocess.run(["busybox", "tftp", "-p", "-l", str(target), "-r", "x.cfg", "127.0.0.1", str(port)],
                         capture_output=True, text=True, timeout=10)
    assert put.returncode != 0 and "read only" in put.stderr


def test_validation_names_missing_users(ctx):
    config = make_config()
    document = config.model_dump(mode="json")
    document["provisioning"]["phones"].append({"mac": "00:15:65:aa:bb:05", "user": "dave"})
    document["provisioning"]["phones"].append({"mac": "00:15:65:aa:bb:06", "user": "zed"})
    errors = SERVICE(ctx).validate(type(config).model_validate(document))
    assert errors == [("provisioning.phones.4.user", "phone 00:15:65:aa:bb:05: user 'dave' has no extension number"),
                      ("provisioning.phones.5.user", "phone 00:15:65:aa:bb:06: there is no user 'zed'")]


def test_tftp_garbage_is_refused_and_server_keeps_serving(prov):
    import socket

    svc, _ = prov
    port = svc.ports["tftp"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        for junk in (b"\x00", b"\x00\x01name-without-mode", b"\x00\x01f\x00mail\x00", b"\x00\x01\xff\xfe\x00octet\x00",
                     b"\x00\x04\x00\x01", b"\x00\x09abc\x00octet\x00"):
            sock.sendto(junk, ("127.0.0.1", port))
            if len(junk) >= 4:
                reply = sock.recv(600)
                assert reply[:2] == b"\x00\x05"  # an ERROR packet, not a file
    finally:
        sock.close()
    out = subprocess.run(["curl", "-s", "-m", "5", f"tftp://127.0.0.1:{port}/001565aabb01.cfg"],
                         capture_output=True, text=True, timeout=10)
    assert "AliceSecret2024" in out.stdout


def test_reload_serves_new_phones_and_forgets_removed_ones(prov):
    svc, runner = prov
    base = lambda: f"http://127.0.0.1:{svc.ports['http']}"  # noqa: E731
    assert curl(f"{base()}/001565aabb01.cfg")[0] == 200
    config = make_config()
    document = config.model_dump(mode="json")
    document["provisioning"]["phones"] = [{"mac": "00:15:65:cc:dd:ee", "model": "yealink", "user": "bob"}]
    runner.call(svc.reload(type(config).model_validate(document)))
    assert curl(f"{base()}/001565aabb01.cfg")[0] == 404
    code, body = curl(f"{base()}/001565ccddee.cfg")
    assert code == 200 and "BobSecret20245" in body


def test_a_phone_file_goes_only_to_its_dhcp_lease_by_default(ctx):
    """Before: any LAN host that knew a phone's MAC (ARP shows it) downloaded its SIP secret."""
    from appliance import schema
    from appliance.defaults import default_document
    assert schema.parse(default_document(lab=False)).provisioning.require_dhcp_lease
    assert not schema.parse(default_document(lab=True)).provisioning.require_dhcp_lease  # no DHCP in the lab
    runner = LoopThread()
    svc = SERVICE(ctx)
    config = make_config()
    document = config.model_dump(mode="json")
    del document["provisioning"]["require_dhcp_lease"]
    runner.call(svc.start(type(config).model_validate(document)))
    try:
        code, body = curl(f"http://127.0.0.1:{svc.ports['http']}/001565aabb01.cfg")
        assert code == 403 and "Secret" not in body
    finally:
        runner.call(svc.stop())
        runner.close()


def tftp_get(port: int, name: str) -> str:
    return subprocess.run(["curl", "-s", "-m", "5", f"tftp://127.0.0.1:{port}/{name}"], capture_output=True,
                          text=True, timeout=10).stdout


def test_tftp_gives_no_phone_file_when_authentication_is_on(ctx):
    """Before: with digest authentication configured, TFTP still handed out every phone's secret."""
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(make_config(auth="digest", auth_user="phones", auth_password="Prov-Pass-99")))
    try:
        assert "AliceSecret2024" not in tftp_get(svc.ports["tftp"], "001565aabb01.cfg")
        assert "account" not in tftp_get(svc.ports["tftp"], "001565aabb01.cfg")
    finally:
        runner.call(svc.stop())
        runner.close()


def test_per_phone_credentials_open_only_that_phones_file(ctx):
    phones = [{**PHONES[0], "auth_secret": "AlicePhoneKey1"}, {**PHONES[1], "auth_secret": "BobPhoneKey222"},
              {**PHONES[2], "auth_secret": "GrandPhoneKey3"}, {**PHONES[3], "auth_secret": "DectBaseKey444"}]
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(make_config(phone_accounts=True, phones=phones)))
    try:
        base = f"http://127.0.0.1:{svc.ports['http']}"
        assert curl(f"{base}/001565aabb01.cfg")[0] == 401
        assert curl(f"{base}/001565aabb01.cfg", "--digest", "-u", "001565aabb01:wrong-key")[0] == 401
        code, body = curl(f"{base}/001565aabb01.cfg", "--digest", "-u", "001565aabb01:AlicePhoneKey1")
        assert code == 200 and "AliceSecret2024" in body
        code, body = curl(f"{base}/000413aabb02.xml", "--digest", "-u", "001565aabb01:AlicePhoneKey1")
        assert code == 403 and "BobSecret" not in body  # Alice's phone cannot read Bob's
        assert curl(f"{base}/000413aabb02.xml", "--digest", "-u", "000413aabb02:BobPhoneKey222")[0] == 200
    finally:
        runner.call(svc.stop())
        runner.close()
    with pytest.raises(ValueError, match="secret for every phone"):
        make_config(phone_accounts=True)
    with pytest.raises(ValueError, match="not both"):
        make_config(phone_accounts=True, phones=phones, auth="digest", auth_password="Shared-Pass-9")


def test_https_with_the_box_certificate(prov, ctx):
    import ssl

    from appliance.certs import box_certificate
    svc, _ = prov
    code, body = curl(f"https://127.0.0.1:{svc.ports['https']}/001565aabb01.cfg", "-k")
    assert code == 200 and "AliceSecret2024" in body
    served = ssl.get_server_certificate(("127.0.0.1", svc.ports["https"]))
    cert, _ = box_certificate(ctx.data_dir, make_config().system.hostname)
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert curl(f"https://127.0.0.1:{svc.ports['https']}/001565aabb01.cfg", "-k", "--tls-max", "1.1")[0] == 0


def test_every_request_is_logged_and_the_log_survives_a_restart(prov, ctx):
    import os
    import stat
    svc, runner = prov
    base = f"http://127.0.0.1:{svc.ports['http']}"
    curl(f"{base}/001565aabb01.cfg")
    curl(f"{base}/0015650000ff.cfg")
    tftp_get(svc.ports["tftp"], "001565aabb04.cfg")
    newest = svc.recent_requests()
    assert [(e["status"], e["transport"], e["mac"]) for e in newest[:3]] == [
        (200, "tftp", "00:15:65:aa:bb:04"), (404, "http", None), (200, "http", "00:15:65:aa:bb:01")]
    assert all(e["client"] == "127.0.0.1" for e in newest[:3])
    path = ctx.state_dir("provisioning") / "fetches.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    runner.call(svc.stop())
    again = SERVICE(ctx)
    runner.call(again.start(make_config()))
    try:
        assert again.recent_requests()[:3] == newest[:3]
    finally:
        runner.call(again.stop())
