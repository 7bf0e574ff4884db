"""Certificate tunnels on the VPN page: the head office adds its side and issues the branch's bundle (POST,
admins only, no-store), the branch adds its side with that real bundle uploaded, wrong files are refused at
the field with nothing saved, the table shows method, identities, expiry and "certificate invalid", the
bundle is replaced by an import; not one line of the stored secret appears in any page."""
from __future__ import annotations

import datetime
import io
import re
import time

import pytest

from appliance import schema
from appliance.context import Context
from services.vpn import bundle
from services.vpn.service import VpnService
from tests.services.vpn.test_ipsec_certificates import made
from tests.webadmin.helpers import crawl, csrf_of, post, sign_in
from tests.webadmin.test_vpn_pages import PSK

DAY = datetime.timedelta(days=1)


@pytest.fixture
def head_office(tmp_path):
    """Another box's VPN service, running a certificate tunnel "lyon" whose branch bundle it issues."""
    service = VpnService(Context(tmp_path / "hq", lab=True), netns="ob-none")
    service._config = schema.parse({"vpn": {"enabled": True, "tunnels": [{
        "name": "lyon", "peer": "198.51.100.2", "local_subnets": ["10.1.0.0/24"], "remote_subnets": ["10.2.0.0/24"],
        "auth": "certificate"}]}})
    return service


def tunnel(runtime, **fields):
    lan = str(runtime.store.current().config.network.lan.address.network)
    return {"name": "hq", "peer": "198.51.100.1", "local_subnets": lan, "remote_subnets": "10.1.0.0/24",
            "dpd_delay": "30", "auth": "certificate", **fields}


def add(admin_client, data: dict, text: str | bytes | None = None):
    if text is not None:
        data = {**data, "peer_bundle": (io.BytesIO(text.encode() if isinstance(text, str) else text), "hq.pem")}
    return post(admin_client, "/vpn/tunnels", data, form_path="/vpn/")


def field_error(page: str) -> str:
    match = re.search(r'<p class="error" id="e-peer_bundle">([^<]*)</p>', page)
    return match.group(1) if match else ""


def tunnel_row(admin_client, name="hq") -> str:
    return re.search(rf'<tr id="tunnel-{name}">.*?</tr>', admin_client.get("/vpn/").get_data(as_text=True),
                     re.S).group(0)


def secret_lines(text: str) -> list[str]:
    """The base64 lines of the bundle (key and certificates)."""
    return [line for line in text.splitlines() if len(line) >= 40 and not line.startswith(("-----", "#"))]


def test_the_head_office_issues_the_branch_bundle_as_a_no_store_download(admin_client, app, runtime):
    answer = add(admin_client, tunnel(runtime, name="lyon", peer="198.51.100.2", psk=PSK,
                                      remote_subnets="10.2.0.0/24"))
    assert answer.status_code == 302
    [stored] = runtime.store.current().config.vpn.tunnels
    assert (stored.auth, stored.psk, stored.peer_bundle_secret) == ("certificate", "", "")  # psk not sent
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert "issue the branch&#39;s bundle in the table" in page
    assert "/vpn/tunnels/lyon/bundle" in page and 'id="bundle-note"' in page
    assert "This box is the head office" in page
    not_running = post(admin_client, "/vpn/tunnels/lyon/bundle", {}, form_path="/vpn/")
    assert not_running.status_code == 302
    assert "there is no running tunnel lyon" in admin_client.get("/vpn/").get_data(as_text=True)

    runtime.services["vpn"]._config = runtime.store.current().config  # as if the VPN had started
    assert admin_client.get("/vpn/tunnels/lyon/bundle").status_code == 405  # never a GET
    assert admin_client.post("/vpn/tunnels/lyon/bundle").status_code == 400  # no CSRF token
    answer = post(admin_client, "/vpn/tunnels/lyon/bundle", {}, form_path="/vpn/")
    assert answer.status_code == 200 and answer.mimetype == "application/x-pem-file"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="lyon-peer-bundle.pem"'
    issued = bundle.parse(answer.get_data(as_text=True))
    assert issued.identity == "lyon.officebox.office.lan" and issued.peer_identity == "officebox.office.lan"
    again = post(admin_client, "/vpn/tunnels/lyon/bundle", {}, form_path="/vpn/")
    assert bundle.parse(again.get_data(as_text=True)).cert.serial_number != issued.cert.serial_number

    for login, role in (("sam", "staff"), ("rita", "readonly")):  # a read-only admin may not see secrets either
        assert post(admin_client, "/users/new", {"login": login, "full_name": login.title(), "role": role,
                                                 "enabled": "on", "password": f"{login}-password-1",
                                                 "password2": f"{login}-password-1"}).status_code == 302
        other = app.test_client()
        assert sign_in(other, login, f"{login}-password-1").status_code == 302
        refused = other.post("/vpn/tunnels/lyon/bundle", data={"csrf_token": csrf_of(other, "/account/")})
        assert refused.status_code == 403 and b"PRIVATE KEY" not in refused.data


def test_the_branch_adds_its_side_with_the_real_bundle_and_never_sees_it_again(admin_client, app, runtime,
                                                                                 head_office):
    text = head_office.issue_bundle("lyon")
    assert add(admin_client, tunnel(runtime), text).status_code == 302
    [stored] = runtime.store.current().config.vpn.tunnels
    assert stored.auth == "certificate" and stored.peer_bundle_secret == text and stored.psk == ""
    row = tunnel_row(admin_client)
    assert "Certificates" in row and "lyon.officebox.office.lan" in row and "officebox.office.lan" in row
    expires = bundle.parse(text).cert.not_valid_after_utc
    assert str(expires.year) in row and "/vpn/tunnels/hq/import" in row and "/bundle" not in row

    lines = secret_lines(text)
    shown: list[str] = []
    seen = crawl(admin_client, app, check=lambda path, page: shown.extend(path for line in lines if line in page))
    assert {"/vpn/", "/vpn/tunnels/hq/import", f"/history/{runtime.store.current_id()}"} <= set(seen)
    assert len(lines) > 10 and shown == []


def test_a_wrong_file_is_refused_at_the_field_and_nothing_is_saved(admin_client, runtime, head_office):
    now = datetime.datetime.now(datetime.UTC)
    cases = [("just a text file\n", "This is not a usable peer bundle"),
             (b"\x89PNG\r\n\x1a\n\xff\xfe" * 10, "This file is not text"),
             ("#" * (64 * 1024 + 1), "larger than 64 KiB")]
    for text, reason in cases:
        answer = add(admin_client, tunnel(runtime), text)
        assert answer.status_code == 400 and reason in field_error(answer.get_data(as_text=True)), reason
    good = head_office.issue_bundle("lyon")
    answer = add(admin_client, tunnel(runtime, auth="psk", psk=PSK), good)
    assert answer.status_code == 400 and "for a tunnel with certificates" in field_error(answer.get_data(as_text=True))
    expired = add(admin_client, tunnel(runtime), made(now - 9 * DAY, now - DAY))  # a general error: the expiry
    page = expired.get_data(as_text=True)
    assert expired.status_code == 400 and "expired on" in page and not field_error(page)
    assert good not in page and not any(line in page for line in secret_lines(good))
    assert runtime.store.current().config.vpn.tunnels == []


def test_a_certificate_that_expired_shows_the_tunnel_as_certificate_invalid(admin_client, runtime):
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(seconds=2)
    assert add(admin_client, tunnel(runtime), made(now - DAY, until)).status_code == 302
    deadline = time.monotonic() + 6  # bounded: the certificate ends within 2 s
    while "certificate invalid" not in (row := tunnel_row(admin_client)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "certificate invalid" in row and "badge-bad" in row and "expired" in row


def test_the_branch_replaces_its_bundle_by_an_import(admin_client, runtime, head_office):
    first, second = head_office.issue_bundle("lyon"), head_office.issue_bundle("lyon")
    assert add(admin_client, tunnel(runtime), first).status_code == 302
    page = admin_client.get("/vpn/tunnels/hq/import").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and not any(line in page for line in secret_lines(first))
    wrong = post(admin_client, "/vpn/tunnels/hq/import", {"peer_bundle": (io.BytesIO(b"nonsense"), "x.pem")})
    assert wrong.status_code == 400 and "not a usable peer bundle" in field_error(wrong.get_data(as_text=True))
    missing = post(admin_client, "/vpn/tunnels/hq/import", {})
    assert missing.status_code == 400 and "Choose the peer bundle" in field_error(missing.get_data(as_text=True))
    assert runtime.store.current().config.vpn.tunnels[0].peer_bundle_secret == first
    done = post(admin_client, "/vpn/tunnels/hq/import", {"peer_bundle": (io.BytesIO(second.encode()), "hq.pem")})
    assert done.status_code == 302
    assert runtime.store.current().config.vpn.tunnels[0].peer_bundle_secret == second
    assert add(admin_client, tunnel(runtime, name="psk", auth="psk", psk=PSK, remote_subnets="10.3.0.0/24")
               ).status_code == 302
    assert admin_client.get("/vpn/tunnels/psk/import").status_code == 404
    assert admin_client.get("/vpn/tunnels/nope/import").status_code == 404


def test_the_head_office_revokes_the_branch_certificates_it_issued(admin_client, app, runtime):
    assert add(admin_client, tunnel(runtime, name="lyon", peer="198.51.100.2",
                                    remote_subnets="10.2.0.0/24")).status_code == 302
    runtime.services["vpn"]._config = runtime.store.current().config  # as if the VPN had started
    assert "/vpn/tunnels/lyon/revoke" not in admin_client.get("/vpn/").get_data(as_text=True)  # nothing issued yet
    issued = bundle.parse(post(admin_client, "/vpn/tunnels/lyon/bundle", {}, form_path="/vpn/").get_data(as_text=True))
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert "/vpn/tunnels/lyon/revoke" in page and "Revoke the branch's certificate" in page
    assert admin_client.post("/vpn/tunnels/lyon/revoke").status_code == 400  # no CSRF token

    assert post(admin_client, "/users/new", {"login": "rita", "full_name": "Rita", "role": "readonly",
                                             "enabled": "on", "password": "rita-password-1",
                                             "password2": "rita-password-1"}).status_code == 302
    other = app.test_client()
    assert sign_in(other, "rita", "rita-password-1").status_code == 302
    refused = other.post("/vpn/tunnels/lyon/revoke", data={"csrf_token": csrf_of(other, "/account/")})
    assert refused.status_code == 403

    answer = post(admin_client, "/vpn/tunnels/lyon/revoke", {}, form_path="/vpn/")
    assert answer.status_code == 302
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert "1 certificate(s) of tunnel lyon revoked" in page and "/vpn/tunnels/lyon/revoke" not in page
    crl = runtime.services["vpn"].pki.root / "crl.pem"
    from cryptography import x509
    assert [r.serial_number for r in x509.load_pem_x509_crl(crl.read_bytes())] == [issued.cert.serial_number]
    post(admin_client, "/vpn/tunnels/lyon/revoke", {}, form_path="/vpn/")
    assert "revoked already" in admin_client.get("/vpn/").get_data(as_text=True)
