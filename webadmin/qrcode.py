"""QR codes drawn on the server as SVG by Debian's `qrencode`, shown in pages as data: images (the page's
Content-Security-Policy allows them; every page is sent with Cache-Control: no-store).

softphone_uri(): what a softphone scans to set up an account. The box serves no provisioning file for
softphones, so the code carries a plain SIP URI with the account in it, the format the softphones' "scan
a QR code" fields read (Linphone, Zoiper, Groundwire, MicroSIP...): sip:user:password@host:port;transport=udp
(RFC 3261 userinfo, each part percent-encoded); without the password when it is not to be shown."""
from __future__ import annotations

import base64
import subprocess
from urllib.parse import quote

TIMEOUT = 10


def svg(text: str) -> str:
    """`text` as a QR code (SVG, error correction M)."""
    result = subprocess.run(["qrencode", "-t", "SVG", "-l", "M", "-o", "-"], input=text.encode(),
                            capture_output=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"qrencode failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode()


def data_uri(text: str) -> str:
    """`text` as a QR code for an <img src>."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg(text).encode()).decode()


def softphone_uri(user: str, host: str, port: int, password: str | None = None, transport: str = "udp") -> str:
    userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"sip:{userinfo}@{host}:{port};transport={transport}"
