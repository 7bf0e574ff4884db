"""The box certificate: every name the LAN uses, key usages, 825 days, renewed when names change; and
asyncio TLS listeners answer a failed handshake with a TLS alert (before: a bare EOF)."""
import asyncio
import datetime
import grp
import ipaddress
import ssl
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance import schema
from appliance.certs import TLS_GROUP, box_certificate, box_names, ensure_certificate, send_tls_alerts


def _config(**network):
    return schema.parse({"system": {"hostname": "pbx", "domain": "acme.lan"},
                         "network": {"lan": {"interface": "lan0", "address": "10.20.0.1/24"}, **network}})


def _load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_box_certificate_names_the_lan_and_has_key_usages(tmp_path):
    cert_path, key_path = box_certificate(tmp_path, "pbx", box_names(_config()))
    cert = _load(cert_path)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"pbx", "pbx.acme.lan", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"),
                                                             ipaddress.ip_address("10.20.0.1")}
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=824) < lifetime <= datetime.timedelta(days=826)
    key = key_path.stat()  # owner only, or also the service processes' TLS group (appliance/serviceusers.py)
    assert key.st_uid == 0 and (key.st_mode & 0o777 == 0o600 or (
        key.st_mode & 0o777 == 0o640 and key.st_gid == grp.getgrnam(TLS_GROUP).gr_gid))
    text = subprocess.run(["openssl", "x509", "-in", str(cert_path), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:pbx.acme.lan" in text and "IP Address:10.20.0.1" in text and "TLS Web Server Authentication" in text


def test_renewed_with_the_same_key_when_the_lan_changes_and_only_then(tmp_path):
    cert_path, key_path = box_certificate(tmp_path, "pbx", box_names(_config()))
    first, key = _load(cert_path), key_path.read_bytes()
    box_certificate(tmp_path, "pbx", box_names(_config()))
    assert _load(cert_path).serial_number == first.serial_number  # unchanged names: kept
    box_certificate(tmp_path, "pbx")  # a service that only loads it never changes it
    assert _load(cert_path).serial_number == first.serial_number
    voice = {"voice": {"enabled": True, "address": "10.30.0.1/24"}}
    box_certificate(tmp_path, "pbx", box_names(_config(**voice)))
    renewed = _load(cert_path)
    assert renewed.serial_number != first.serial_number and key_path.read_bytes() == key
    ips = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress)
    assert ipaddress.ip_address("10.30.0.1") in ips


def test_an_old_certificate_without_key_usages_is_replaced(tmp_path):
    """As made before: same names, no KeyUsage/ExtendedKeyUsage, ten years."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pbx")])
    now = datetime.datetime.now(datetime.UTC)
    legacy = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("pbx"), x509.DNSName("localhost")]),
                             critical=False)
              .sign(key, hashes.SHA256()))
    (tmp_path / "pbx.crt").write_bytes(legacy.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "pbx.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    cert_path, _ = ensure_certificate(tmp_path, "pbx", ("localhost",))
    renewed = _load(cert_path)
    assert renewed.serial_number != 1 and renewed.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert renewed.public_key() == key.public_key()


def test_asyncio_listener_answers_a_failed_handshake_with_an_alert(tmp_path):
    cert, key = ensure_certificate(tmp_path, "officebox")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    send_tls_alerts()

    async def scenario() -> str:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        client = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1", stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = (await asyncio.wait_for(client.communicate(), 20))[0].decode()
        server.close()
        await server.wait_closed()
        return out

    output = asyncio.run(scenario())
    assert "alert protocol version" in output, output
