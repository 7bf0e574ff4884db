"""A TURN server (coturn) on the box for browser phones whose network lets no UDP through to the box's
media ports (or only TCP): the browser relays its media through coturn to the WebRTC gateway.

- credentials are the TURN REST API's (draft-uberti-behave-turn-rest): username "<expiry>:<login>",
  password base64(HMAC-SHA1(secret, username)); coturn checks them with `use-auth-secret`. The secret
  is made once by the box (SECRET_FILE in the PBX's state folder, 0600) and never leaves it: pages get
  credentials valid CREDENTIAL_TTL seconds;
- no open relay: every peer address is denied except the box's own media addresses (the gateway's);
- limits: allocations per user and in all, bytes per second per session, no CLI, no DTLS;
- TURN over TLS (turns:, TLS_PORT) with the box certificate the web admin uses (TLS 1.2 and up); the file
  names the certificate's SHA-256, so a renewed certificate changes the file and coturn restarts on it;
- coturn has no configuration checker: `render()` builds the file from typed values only, and the
  supervisor starts it (python -m services.pbx.webrtc.turn <conf> <digest> <work>: the digest restarts it
  when the file changes, as coturn reads its file once);
- it runs as the PBX's user (setpriv, appliance/serviceusers.daemon_prefix) with no capability at all (every
  port it binds is above 1024) and no-new-privs; its pid file and the SQLite database it opens (unused with
  use-auth-secret) are in its own folder, state/pbx/turn, which that user owns.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sys
import time
from pathlib import Path

PORT, LAB_PORT = 3478, 33478
TLS_PORT, LAB_TLS_PORT = 5349, 35349  # TURN over TLS (turns:), for networks that let only TLS out
RELAY_PORTS, LAB_RELAY_PORTS = (49160, 49359), (33500, 33599)
CREDENTIAL_TTL = 3600
USER_QUOTA = 4          # allocations at once per user (a call needs one; a few tabs or a transfer more)
TOTAL_QUOTA = 100       # allocations at once on the box
MAX_BPS = 64000         # bytes per second per session: Opus or G.711 uses ~10 KB/s
SECRET_FILE = "turn.secret"


def secret(state_dir: Path) -> str:
    """The shared secret, made on first use (0600, written once: concurrent callers read the same)."""
    path = Path(state_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        if os.geteuid() == 0:  # made by the appliance (rendering): the PBX's own user reads it too
            folder = path.parent.stat()
            os.chown(path, folder.st_uid, folder.st_gid)
    value = ""
    for _ in range(50):  # another process may be writing it this instant
        value = path.read_text().strip()
        if len(value) == 64:
            return value
        time.sleep(0.01)
    raise OSError(f"{path} holds no TURN secret")


def credentials(shared: str, login: str, now: float | None = None, ttl: int = CREDENTIAL_TTL) -> dict:
    """TURN REST API credentials for `login`, valid `ttl` seconds from `now`."""
    username = f"{int(now if now is not None else time.time()) + ttl}:{login}"
    digest = hmac.new(shared.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode(), "ttl": ttl}


def render(shared: str, realm: str, listen: str, port: int, relay_ports: tuple[int, int],
           peers: list[str], loopback: bool, work: Path, tls_port: int = 0,
           certificate: tuple[Path, Path] | None = None, external: str = "", private: str = "") -> str:
    """turnserver.conf: `listen` "" for every address; `peers` the only addresses media may be relayed to;
    TURN over TLS on `tls_port` with `certificate` (cert, key) when both are given. A box behind a NAT:
    `external` the router's public address, announced in the relay candidates instead of `private` (the
    box's address the router forwards to, its relay address then) or, without it, of every relay address."""
    if not 1024 <= relay_ports[0] <= relay_ports[1] <= 65535:
        raise ValueError(f"bad TURN relay port range {relay_ports}")
    lines = [f"listening-port={int(port)}", f"min-port={relay_ports[0]}", f"max-port={relay_ports[1]}",
             f"realm={realm}", "use-auth-secret", f"static-auth-secret={shared}", "fingerprint",
             f"user-quota={USER_QUOTA}", f"total-quota={TOTAL_QUOTA}", f"max-bps={MAX_BPS}",
             *_tls_lines(tls_port, certificate),
             "no-dtls", "no-cli", "no-multicast-peers", "no-software-attribute",
             "denied-peer-ip=0.0.0.0-255.255.255.255", "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             *(f"allowed-peer-ip={p}" for p in peers),
             "log-file=stdout", "simple-log", "new-log-timestamp", "verbose",  # a line per allocation
             f"pidfile={work / 'turnserver.pid'}", f"userdb={work / 'turndb'}"]
    private = private or listen
    if listen:
        lines.append(f"listening-ip={listen}")
    if private:
        lines.append(f"relay-ip={private}")
    if external:
        lines.append(f"external-ip={external}/{private}" if private else f"external-ip={external}")
    if loopback:  # lab runs: the gateway listens on 127.0.0.1
        lines.append("allow-loopback-peers")
    for value in (realm, *peers, listen, external, private):
        if any(c in value for c in "\n\r="):
            raise ValueError(f"bad TURN setting {value!r}")
    return "\n".join(lines) + "\n"


def _tls_lines(tls_port: int, certificate: tuple[Path, Path] | None) -> list[str]:
    if not tls_port or certificate is None:
        return ["no-tls"]
    cert, key = (Path(p) for p in certificate)
    for path in (cert, key):
        if any(c in str(path) for c in "\n\r"):
            raise ValueError(f"bad TURN certificate path {path!r}")
    fingerprint = hashlib.sha256(cert.read_bytes()).hexdigest()
    return [f"# certificate sha256 {fingerprint}", f"tls-listening-port={int(tls_port)}", f"cert={cert}",
            f"pkey={key}", "no-tlsv1", "no-tlsv1_1"]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def launcher(conf: Path, text: str, work: Path) -> tuple[str, ...]:
    """The supervisor's argv (after the drop to the PBX's user) for coturn on `conf`, which holds `text`."""
    return (sys.executable, "-m", "services.pbx.webrtc.turn", str(conf), digest(text), str(work))


def prepare(work: Path) -> None:
    """coturn's folder: its pid file and the database it opens in each thread (unused with use-auth-secret)."""
    work.mkdir(mode=0o700, parents=True, exist_ok=True)


def main(argv: list[str]) -> None:
    """Exec coturn on the rendered file (argv[1], the digest, only makes a change restart it) with its
    folder argv[2] prepared."""
    conf = argv[0]
    os.umask(0o077)
    prepare(Path(argv[2]))
    sys.stdout.flush()
    os.execvp("turnserver", ["turnserver", "-c", conf])


if __name__ == "__main__":
    main(sys.argv[1:])
