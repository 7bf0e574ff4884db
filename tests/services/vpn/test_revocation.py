"""Revoking branch certificates without a network: the register of issued certificates, the CRL (signed by the
CA, found by charon through its authority key id), what the real throwaway charon loads, the console command."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509

from appliance.service import ApplyError
from services.vpn import bundle, revocation
from services.vpn.strongswan import CHARON
from tests.netns import needs_netns
from tests.services.vpn.test_ipsec_certificates import TUNNEL, config, hq  # noqa: F401 (fixture)


def serial(text: str) -> str:
    return f"{bundle.parse(text).cert.serial_number:x}"


def test_revoking_lists_every_issued_certificate_of_the_tunnel_in_a_signed_crl(hq):  # noqa: F811
    first, second = serial(hq.issue_bundle("lyon")), serial(hq.issue_bundle("lyon"))
    assert revocation.unrevoked(hq.pki.root) == {"lyon": 2} and revocation.crl_pem(hq.pki.root) == ""
    assert sorted(hq.revoke_peer("lyon")) == sorted([first, second])
    crl = x509.load_pem_x509_crl(hq.pki.root.joinpath("crl.pem").read_bytes())
    ca = x509.load_pem_x509_certificate(hq.pki.ca.read_bytes())
    assert crl.is_signature_valid(ca.public_key()) and crl.issuer == ca.subject
    assert {f"{r.serial_number:x}" for r in crl} == {first, second}
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    assert crl.next_update_utc == ca.not_valid_after_utc  # read from a file, never fetched: never stale
    with pytest.raises(ApplyError, match="revoked already"):
        hq.revoke_peer("lyon")
    with pytest.raises(ApplyError, match="issued no certificate for a tunnel paris"):
        hq.revoke_peer("paris")

    third = serial(hq.issue_bundle("lyon"))  # a new bundle is good again; revoking it adds to the list
    assert revocation.unrevoked(hq.pki.root) == {"lyon": 1}
    before = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert hq.revoke_peer("lyon") == [third]
    crl = x509.load_pem_x509_crl(hq.pki.root.joinpath("crl.pem").read_bytes())
    assert {f"{r.serial_number:x}" for r in crl} == {first, second, third}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > before  # charon keeps the newer


@needs_netns
@pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan")
def test_the_crl_is_staged_and_charons_own_check_loads_it(hq, tmp_path):  # noqa: F811
    hq.issue_bundle("lyon")
    staged = tmp_path / "staged"
    for rel, content in hq.render(config()).items():
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        (staged / rel).write_text(content)
    asyncio.run(hq.check(config(), staged))
    assert not (staged / "x509crl").exists()  # nothing revoked: no CRL
    hq.revoke_peer("lyon")
    asyncio.run(hq.check(config(), staged))
    assert (staged / "x509crl" / revocation.CRL_FILE).read_text() == revocation.crl_pem(hq.pki.root)
    (staged / "x509crl" / revocation.CRL_FILE).write_text("-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n")
    hq.pki.root.joinpath("crl.pem").write_text((staged / "x509crl" / revocation.CRL_FILE).read_text())
    with pytest.raises(ApplyError, match="crl"):  # a CRL charon cannot read is never applied
        asyncio.run(hq.check(config(), staged))


def test_the_console_revokes_the_certificates_of_a_branch(tmp_path):
    def officebox(*args):
        return subprocess.run([sys.executable, "-m", "appliance.cli", "--lab", "--data-dir", str(tmp_path / "var"),
                               *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    vpn = {"enabled": True, "tunnels": [{**TUNNEL, "name": "lyon"}]}
    assert officebox("config", "set", "vpn", json.dumps(vpn)).returncode == 0
    assert officebox("vpn", "peer-bundle", "lyon", "-o", str(tmp_path / "lyon.pem")).returncode == 0
    done = officebox("vpn", "revoke-peer", "lyon")
    assert done.returncode == 0, done.stderr
    assert f"revoked 1 certificate(s) of the tunnel lyon (serial {serial((tmp_path / 'lyon.pem').read_text())})" \
        in done.stdout
    again = officebox("vpn", "revoke-peer", "lyon")
    assert again.returncode == 1 and "revoked already" in again.stderr
    crl = x509.load_pem_x509_crl((tmp_path / "var" / "state" / "vpn" / "pki" / "crl.pem").read_bytes())
    assert len(list(crl)) == 1
