"""Certificate tunnels without a network: the bundle a head office issues, what a branch may import
(bad bundles refused with the reason), expired certificates refused at validation and shown as the
tunnel's state, the rendered swanctl.conf checked by a real (throwaway) charon, the console command."""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from appliance import schema
from appliance.context import Context
from appliance.service import ApplyError
from services.vpn import bundle
from services.vpn.pki import ensure_site, issue_peer
from services.vpn.service import VpnService, tunnel_rows
from services.vpn.strongswan import CHARON
from tests.netns import needs_netns

TUNNEL = {"peer": "198.51.100.1", "local_subnets": ["192.168.1.0/24"], "remote_subnets": ["10.2.0.0/24"],
          "auth": "certificate"}
DAY = datetime.timedelta(days=1)


def config(**tunnel):
    return schema.parse({"vpn": {"enabled": True, "tunnels": [{**TUNNEL, "name": "lyon", **tunnel}]}})


@pytest.fixture
def hq(tmp_path):
    service = VpnService(Context(tmp_path / "hq", lab=True), netns="ob-none")
    service._config = config()  # as if running
    return service


@pytest.fixture
def branch(tmp_path):
    return VpnService(Context(tmp_path / "branch", lab=True), netns="ob-none")


def test_the_head_office_issues_a_bundle_naming_both_ends(hq):
    text = hq.issue_bundle("lyon")
    got = bundle.parse(text)
    assert (got.identity, got.peer_identity) == ("lyon.officebox.office.lan", "officebox.office.lan")
    assert got.ca.subject == x509.load_pem_x509_certificate(hq.pki.ca.read_bytes()).subject
    assert stat.S_IMODE(os.stat(hq.pki.site_key).st_mode) == 0o600
    assert bundle.parse(hq.issue_bundle("lyon")).cert.serial_number != got.cert.serial_number  # a new one each time
    conf = hq.render(config())["swanctl.conf"]
    assert f"cacerts = {hq.pki.ca}" in conf and "id = lyon.officebox.office.lan" in conf and "secret =" not in conf
    # the bundle is a secret of the configuration: masked wherever the document is shown
    doc = schema.to_document(config(peer_bundle_secret=text))
    assert "PRIVATE KEY" not in str(schema.mask_secrets(doc))


def test_only_the_head_office_side_of_a_certificate_tunnel_issues(hq):
    with pytest.raises(ApplyError, match="no running tunnel paris"):
        hq.issue_bundle("paris")
    hq._config = config(auth="psk", psk="Branch2Head-office-7fQ9xLw")
    with pytest.raises(ApplyError, match="only a certificate tunnel"):
        hq.issue_bundle("lyon")


def _cert(key, issuer_key, issuer_name, name, start, end, ca=False):
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        san = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384()).public_bytes(serialization.Encoding.PEM)


def made(start, end, signer=None) -> str:
    """A bundle whose branch certificate is valid from `start` to `end`, signed by `signer` (default the CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key, hq_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = _cert(ca_key, ca_key, ca_name, ca_name, now - DAY, now + 9 * DAY, ca=True)
    cn = lambda value: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])  # noqa: E731
    mine = _cert(key, signer or ca_key, ca_name, cn("lyon.hq.test"), start, end)
    peer = _cert(hq_key, ca_key, ca_name, cn("hq.test"), now - DAY, now + 9 * DAY)
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return bundle.make("hq", pkcs8, mine, peer, ca)


def test_bad_bundles_are_refused_with_the_reason(hq):
    now = datetime.datetime.now(datetime.UTC)
    good = hq.issue_bundle("lyon")
    blocks = re.findall(r"-----BEGIN [A-Z ]+-----\n.*?-----END [A-Z ]+-----\n", good, re.S)
    other_key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")).decode()
    cases = [("not a bundle at all", "one private key and three certificates"),
             ("".join(blocks[:3]), "found 1 keys and 2 certificates"),
             (other_key + "".join(blocks[1:]), "protected by a passphrase"),
             (blocks[0].replace("\nMI", "\nXX", 1) + "".join(blocks[1:]), "damaged"),
             (made(now - DAY, now + DAY, signer=ec.generate_private_key(ec.SECP384R1())),
              "this box's certificate was not signed by the bundle's certificate authority")]
    for text, reason in cases:
        with pytest.raises(ValidationError, match=reason):
            config(peer_bundle_secret=text)
    with pytest.raises(ValidationError, match="a peer bundle is for a tunnel authenticated by certificates"):
        config(auth="psk", psk="Branch2Head-office-7fQ9xLw", peer_bundle_secret=good)
    with pytest.raises(ValidationError, match="the identities are the certificates' own"):
        config(remote_id="hq.example.com")


def test_an_expired_or_not_yet_valid_certificate_is_refused_and_shown(branch):
    now = datetime.datetime.now(datetime.UTC)
    expired = config(peer_bundle_secret=made(now - 9 * DAY, now - DAY))
    assert any("this box's certificate expired on" in e for e in branch.validate(expired))
    early = config(peer_bundle_secret=made(now + DAY, now + 9 * DAY))
    assert any("is not valid before" in e and "check the clocks" in e for e in branch.validate(early))
    [row] = tunnel_rows(expired, [])
    assert row["state"] == "certificate invalid" and "expired" in row["problem"]
    good = config(peer_bundle_secret=made(now - DAY, now + DAY))
    assert branch.validate(good) == [] and tunnel_rows(good, [])[0]["state"] == "down"


@needs_netns
@pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan")
def test_both_sides_pass_charons_own_check_and_a_foreign_bundle_too(hq, branch, tmp_path):
    other = ensure_site(tmp_path / "other", "hq.test")
    key, cert = issue_peer(other.root, "lyon.hq.test")
    foreign = bundle.make("hq", key, cert, other.site_cert.read_bytes(), other.ca.read_bytes())
    for service, cfg in ((hq, config()), (branch, config(peer_bundle_secret=hq.issue_bundle("lyon"))),
                         (branch, config(peer_bundle_secret=foreign))):
        staged = tmp_path / f"staged-{id(cfg)}"
        for rel, content in service.render(cfg).items():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            (staged / rel).write_text(content)
        asyncio.run(service.check(cfg, staged))
        assert (staged / "pkcs8").is_dir()
    (staged / "x509" / "tunnel-lyon.pem").unlink()  # a certificate charon cannot load: refused
    with pytest.raises(ApplyError, match="tunnel-lyon.pem"):
        asyncio.run(branch.check(cfg, staged))


def test_the_console_issues_a_bundle_to_a_file_only_its_owner_reads(tmp_path):
    def officebox(*args):
        return subprocess.run([sys.executable, "-m", "appliance.cli", "--lab", "--data-dir", str(tmp_path / "var"),
                               *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    vpn = {"enabled": True, "tunnels": [{**TUNNEL, "name": "lyon"}]}
    assert officebox("config", "set", "vpn", json.dumps(vpn)).returncode == 0
    done = officebox("vpn", "peer-bundle", "lyon", "-o", str(tmp_path / "lyon.pem"))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "lyon.pem").st_mode) == 0o600
    assert bundle.parse((tmp_path / "lyon.pem").read_text()).identity == "lyon.officebox.office.lan"
    refused = officebox("vpn", "peer-bundle", "paris", "-o", str(tmp_path / "paris.pem"))
    assert refused.returncode == 1 and "no running tunnel paris" in refused.stderr
