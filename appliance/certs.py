"""The box's certificate store: a self-signed certificate made at first start, key kept 0600.

The box certificate names everything a browser or phone may use to reach the box (host name, FQDN in
the LAN domain, LAN addresses, localhost) and is made again, with the same key, when those change or
when it nears its end. Built with `cryptography`'s X.509 builder (pyOpenSSL 26 dropped its extension
API); pyOpenSSL contexts can load the same PEM files.
"""
from __future__ import annotations

import contextlib
import datetime
import grp
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.fsutil import atomic_write

TLS_GROUP = "officebox-tls"

if TYPE_CHECKING:
    from appliance.schema import CoreConfig

VALID_DAYS = 825  # the longest validity browsers accept for a server certificate
RENEW_BEFORE = datetime.timedelta(days=30)
DEFAULT_NAMES = ("localhost", "127.0.0.1")


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _wanted_names(common_name: str, alt_names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([common_name, *alt_names]))


def _is_current(cert_path: Path, names: list[str]) -> bool:
    """Same names, key usages set, not near its end: nothing to do."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (ValueError, x509.ExtensionNotFound):
        return False
    fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE
    return fresh and set(sans) == {_san(n) for n in names}


def _load_or_make_key(key_path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    except (OSError, ValueError):
        pass
    return ec.generate_private_key(ec.SECP256R1())


def _build(key: ec.EllipticCurvePrivateKey, common_name: str, names: list[str]) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OfficeBox"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def ensure_certificate(directory: Path | str, common_name: str,
                       alt_names: Iterable[str] | None = DEFAULT_NAMES) -> tuple[Path, Path]:
    """Return (cert_path, key_path) for `common_name`, making a self-signed pair if missing or, when
    `alt_names` is given, if the certificate names other names, lacks key usages or nears its end.
    `alt_names=None` takes an existing certificate as it is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    names = _wanted_names(common_name, DEFAULT_NAMES if alt_names is None else alt_names)
    if cert_path.exists() and key_path.exists():
        _protect(directory, key_path)
        if alt_names is None or _is_current(cert_path, names):
            return cert_path, key_path
    key = _load_or_make_key(key_path)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, _build(key, common_name, names).public_bytes(serialization.Encoding.PEM), mode=0o644)
    _protect(directory, key_path)
    return cert_path, key_path


def _protect(directory: Path, key_path: Path) -> None:
    """The key 0600 root; 0640 and its folder 0750 for the group TLS_GROUP where it exists (the users of
    service processes that serve this certificate, appliance/serviceusers.py)."""
    if key_path.stat().st_uid != os.geteuid():  # a service process that only reads it
        return
    try:
        gid = grp.getgrnam(TLS_GROUP).gr_gid if os.geteuid() == 0 else None
    except KeyError:
        gid = None
    if gid is None:
        key_path.chmod(0o600)
        return
    for path, mode in ((directory, 0o750), (key_path, 0o640)):
        os.chown(path, 0, gid)
        path.chmod(mode)


def box_names(config: CoreConfig) -> list[str]:
    """Every name and address the LAN reaches the box by, besides localhost."""
    system, network = config.system, config.network
    names = [system.hostname, f"{system.hostname}.{system.domain}", *DEFAULT_NAMES, str(network.lan.address.ip)]
    if network.voice.enabled:
        names.append(str(network.voice.address.ip))
    return names


def box_certificate(data_dir: Path, hostname: str, names: Iterable[str] | None = None) -> tuple[Path, Path]:
    """The certificate every TLS service of the box uses (web admin, mail...). The runtime passes
    `names` (box_names); services that only load the certificate pass none."""
    return ensure_certificate(Path(data_dir) / "certs", hostname, names)


def send_tls_alerts() -> None:
    """Make asyncio's TLS listeners (mail) send the alert OpenSSL wrote when a handshake fails: asyncio
    3.11 closes the connection without it, so clients only see an unexpected EOF. Process-wide, idempotent."""
    from asyncio import sslproto

    original = sslproto.SSLProtocol._on_handshake_complete
    if getattr(original, "sends_alert", False):
        return

    def on_handshake_complete(self, handshake_exc):
        if handshake_exc is not None:
            with contextlib.suppress(Exception):  # the transport may be gone already
                self._process_outgoing()
        original(self, handshake_exc)

    on_handshake_complete.sends_alert = True
    sslproto.SSLProtocol._on_handshake_complete = on_handshake_complete
