"""Revoking the certificates the head office issued to its branches: a register of every issued peer
certificate (pki/issued.json: serial, tunnel, identity, expiry, revoked) and the CA's certificate
revocation list (pki/crl.pem), which charon loads from x509crl/ next to swanctl.conf.

    record(root, tunnel, cert)   remember an issued certificate (services.vpn.service.issue_bundle)
    revoke(root, tunnel)         revoke every still valid certificate issued for `tunnel`; the new CRL
    crl_pem(root)                the current CRL ("" while nothing was ever revoked)
    unrevoked(root)              how many valid certificates each tunnel's branch holds

A revocation is state, not configuration: a configuration rollback never makes a revoked certificate
good again; a new bundle (a new certificate, a new serial) is the way back. The CRL's next update is
the CA's own expiry: charon reads it from a file, never fetches it, so it must not go stale.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from appliance.fsutil import atomic_write

CRL_FILE = "officebox-ca.crl.pem"  # its name in x509crl/
_lock = threading.Lock()


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer of the register at a time, across threads and processes (the web admin, the console)."""
    with _lock, open(root / "issued.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _register(root: Path) -> Path:
    return root / "issued.json"


def issued(root: Path) -> list[dict]:
    try:
        return json.loads(_register(root).read_text())
    except FileNotFoundError:
        return []


def _save(root: Path, rows: list[dict]) -> None:
    atomic_write(_register(root), json.dumps(rows, indent=1).encode(), mode=0o600)


def record(root: Path, tunnel: str, cert: x509.Certificate, identity: str) -> None:
    with _locked(root):
        rows = issued(root)
        rows.append({"serial": f"{cert.serial_number:x}", "tunnel": tunnel, "identity": identity,
                     "not_after": int(cert.not_valid_after_utc.timestamp()), "revoked": 0})
        _save(root, rows)


def revoke(root: Path, tunnel: str, now: datetime.datetime | None = None) -> list[str]:
    """Revoke every certificate issued for `tunnel` and not revoked yet; their serials (hex). The CRL
    is written again with them (signed by the CA in `root`)."""
    now = now or datetime.datetime.now(datetime.UTC)
    with _locked(root):
        rows = issued(root)
        newly = [r for r in rows if r["tunnel"] == tunnel and not r["revoked"]]
        for row in newly:
            row["revoked"] = int(now.timestamp())
        if newly:
            _save(root, rows)
            _write_crl(root, rows, now)
    return [r["serial"] for r in newly]


def _write_crl(root: Path, rows: list[dict], now: datetime.datetime) -> None:
    ca = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((root / "ca.key").read_bytes(), None)
    # charon finds a CRL by its issuer's key identifier (the authority key id), and keeps the one of the
    # highest CRL number
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
               .last_update(now - datetime.timedelta(minutes=5)).next_update(ca.not_valid_after_utc)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
               .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False))
    for row in rows:
        if row["revoked"]:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(row["serial"], 16))
                .revocation_date(datetime.datetime.fromtimestamp(row["revoked"], datetime.UTC)).build())
    crl = builder.sign(ca_key, hashes.SHA384())
    atomic_write(root / "crl.pem", crl.public_bytes(serialization.Encoding.PEM), mode=0o644)


def crl_pem(root: Path) -> str:
    try:
        return (root / "crl.pem").read_text()
    except FileNotFoundError:
        return ""


def revoked_serials(root: Path) -> set[str]:
    return {r["serial"] for r in issued(root) if r["revoked"]}


def unrevoked(root: Path, now: datetime.datetime | None = None) -> dict[str, int]:
    """How many issued, unexpired certificates each tunnel has that are not revoked."""
    at = (now or datetime.datetime.now(datetime.UTC)).timestamp()
    counts: dict[str, int] = {}
    for row in issued(root):
        if not row["revoked"] and row["not_after"] > at:
            counts[row["tunnel"]] = counts.get(row["tunnel"], 0) + 1
    return counts
