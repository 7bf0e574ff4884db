"""The peer bundle a head-office box issues to a branch for a certificate tunnel: one PEM file holding
the branch's private key, its certificate, the head office's certificate (whose identity the branch
pins) and the head office's CA (the only one the branch trusts). A secret: downloaded once, kept 0600.

    make(...)           the bundle's text
    parse(text)         a Bundle, or BundleError saying what is wrong (signatures, key, identities)
    validity(b, now)    "" or why a certificate of the bundle cannot be used at `now` (expired, not yet valid)
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)
MAX_BYTES = 64 * 1024


class BundleError(ValueError):
    pass


@dataclass(frozen=True)
class Bundle:
    key: bytes        # PKCS#8 PEM
    cert: x509.Certificate
    peer_cert: x509.Certificate
    ca: x509.Certificate

    @property
    def identity(self) -> str:
        return identity_of(self.cert)

    @property
    def peer_identity(self) -> str:
        return identity_of(self.peer_cert)

    def pem(self, which: str) -> str:
        return getattr(self, which).public_bytes(serialization.Encoding.PEM).decode()


def identity_of(cert: x509.Certificate) -> str:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    return next((str(n.value) for n in names if isinstance(n, x509.DNSName | x509.IPAddress)), "")


def make(tunnel: str, key: bytes, cert: bytes, peer_cert: bytes, ca: bytes) -> str:
    return (f"# OfficeBox VPN peer bundle for the tunnel {tunnel}: keep it secret, import it on the branch box\n"
            + key.decode() + cert.decode() + peer_cert.decode() + ca.decode())


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def parse(text: str) -> Bundle:
    if len(text.encode()) > MAX_BYTES:
        raise BundleError("the peer bundle is too large to be one (more than 64 KiB)")
    blocks = [(m.group(1), m.group(0).encode()) for m in BLOCK.finditer(text)]
    keys = [pem for kind, pem in blocks if kind.endswith("PRIVATE KEY")]
    certs_pem = [pem for kind, pem in blocks if kind == "CERTIFICATE"]
    if any(kind == "ENCRYPTED PRIVATE KEY" for kind, _ in blocks):
        raise BundleError("the private key of the bundle is protected by a passphrase: use the file the head "
                          "office box issued")
    if len(keys) != 1 or len(certs_pem) != 3:
        raise BundleError("not an OfficeBox peer bundle: it needs one private key and three certificates "
                          f"(found {len(keys)} keys and {len(certs_pem)} certificates)")
    try:
        key = serialization.load_pem_private_key(keys[0], None)
        certs = [x509.load_pem_x509_certificate(pem) for pem in certs_pem]
    except (ValueError, TypeError) as exc:
        raise BundleError(f"the peer bundle is damaged: {exc}") from None
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = [c for c in certs if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public]
    authorities = [c for c in certs if _is_ca(c) and _signed_by(c, c)]
    if len(mine) != 1:
        raise BundleError("the private key of the bundle belongs to none of its certificates")
    if len(authorities) != 1 or authorities[0] is mine[0]:
        raise BundleError("the peer bundle holds no certificate authority (or more than one)")
    ca = authorities[0]
    [peer] = [c for c in certs if c is not ca and c is not mine[0]]
    for cert, whose in ((mine[0], "this box's"), (peer, "the head office's")):
        if not _signed_by(cert, ca):
            raise BundleError(f"{whose} certificate was not signed by the bundle's certificate authority")
        if not identity_of(cert):
            raise BundleError(f"{whose} certificate names no identity (no DNS name or address)")
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return Bundle(pkcs8, mine[0], peer, ca)


def validity(bundle: Bundle, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    for cert, whose in ((bundle.cert, "this box's certificate"), (bundle.peer_cert, "the head office's certificate"),
                        (bundle.ca, "the certificate authority")):
        if now < cert.not_valid_before_utc:
            return f"{whose} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clocks)"
        if now > cert.not_valid_after_utc:
            return f"{whose} expired on {cert.not_valid_after_utc:%Y-%m-%d}: import a new bundle from the head office"
    return ""
