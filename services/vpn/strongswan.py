"""The files charon and swanctl read: strongswan.conf (daemon, plugins, vici socket) and swanctl.conf.

The daemon's own vici socket lives in the service's run dir (never the system one); charon loads
swanctl.conf itself when it starts (start-scripts), and again on every reload (services.vpn.swanctl).
IPsec runs in userspace (kernel-libipsec: a TUN device, ESP in UDP 4500), so the box needs no ESP
support in its kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.vpn.config import DEFAULT_ESP, DEFAULT_IKE, Tunnel
from services.vpn.pki import Pki

PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kdf "
           "eap-identity eap-mschapv2 kernel-libipsec kernel-netlink socket-default vici updown")
CLIENT_PLUGINS = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints"
CHARON = "/usr/sbin/charon-systemd"
SWANCTL = "/usr/sbin/swanctl"
TUN = "ipsec0"  # kernel-libipsec's device: decrypted traffic comes in and goes out there


@dataclass(frozen=True)
class Paths:
    etc: Path   # the rendered files (stable path: follows the applied generation)
    run: Path   # the vici socket

    @property
    def strongswan_conf(self) -> Path:
        return self.etc / "strongswan.conf"

    @property
    def swanctl_conf(self) -> Path:
        return self.etc / "swanctl.conf"

    @property
    def uri(self) -> str:
        return f"unix://{self.run / 'charon.vici'}"


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strongswan_conf(paths: Paths, log_level: int = 1, load_on_start: bool = True) -> str:
    load = f"{SWANCTL} --load-all --noprompt --file {paths.swanctl_conf} --uri {paths.uri}"
    start = f"\n  start-scripts {{\n    load = {load}\n  }}" if load_on_start else ""
    return f"""# rendered by OfficeBox: charon's settings
charon-systemd {{
  load = {PLUGINS}
  install_virtual_ip = yes
  retransmit_timeout = 2.0
  retransmit_tries = 4{start}
  plugins {{
    vici {{
      socket = {paths.uri}
    }}
  }}
  journal {{
    default = -1
  }}
  filelog {{
    stderr {{
      default = {log_level}
      flush_line = yes
      time_format = %F %T
    }}
  }}
}}
swanctl {{
  load = {CLIENT_PLUGINS}
  socket = {paths.uri}
}}
"""


def site_identity(config, pki: Pki) -> str:
    """This box's identity in its certificate tunnels (head-office side): its site certificate's."""
    return pki.site_identity(f"{config.system.hostname}.{config.system.domain}")


def peer_identity(tunnel: Tunnel, site_id: str) -> str:
    """The identity the head office gives the branch of `tunnel` in the certificate it issues."""
    return f"{tunnel.name}.{site_id}"


def auth_sections(tunnel: Tunnel, pki: Pki, site_id: str) -> str:
    """The local and remote sections: a pre-shared key, or certificates. A branch (an imported bundle)
    proves itself with the bundle's certificate and trusts only the bundle's CA for the head office's
    identity; the head office uses its site certificate and trusts only its own CA for the branch's."""
    if tunnel.auth == "psk":
        local_id = f"\n      id = {tunnel.local_id}" if tunnel.local_id else ""
        return (f"    local {{\n      auth = psk{local_id}\n    }}\n"
                f"    remote {{\n      auth = psk\n      id = {tunnel.peer_id}\n    }}\n")
    bundle = tunnel.bundle
    if bundle is not None:
        cert = ca = credential_name(tunnel)  # in x509/ and x509ca/
        ids = (bundle.identity, bundle.peer_identity)
    else:
        cert, ca, ids = pki.site_cert, pki.ca, (site_id, peer_identity(tunnel, site_id))
    return (f"    send_cert = always\n"
            f"    local {{\n      auth = pubkey\n      certs = {cert}\n      id = {ids[0]}\n    }}\n"
            f"    remote {{\n      auth = pubkey\n      id = {ids[1]}\n      cacerts = {ca}\n    }}\n")


def credential_name(tunnel: Tunnel) -> str:
    return f"tunnel-{tunnel.name}.pem"


def credentials(config) -> dict[str, str]:
    """The files of the imported bundles, next to swanctl.conf: key (pkcs8/), certificate (x509/), CA (x509ca/)."""
    files = {}
    for tunnel in config.vpn.tunnels:
        bundle = tunnel.bundle if tunnel.enabled else None
        if bundle is not None:
            name = credential_name(tunnel)
            files[f"pkcs8/{name}"] = bundle.key.decode()
            files[f"x509/{name}"] = bundle.pem("cert")
            files[f"x509ca/{name}"] = bundle.pem("ca")
    return files


def connection(tunnel: Tunnel, pki: Pki, site_id: str) -> str:
    ike, esp = tunnel.proposals
    mode = "\n    aggressive = no" if tunnel.ike_version == 1 else ""  # IKEv1: main mode, identities protected
    return f"""  {tunnel.name} {{
    version = {tunnel.ike_version}{mode}
    local_addrs = %any
    remote_addrs = {tunnel.peer}
    proposals = {ike}
    dpd_delay = {tunnel.dpd_delay}s
    keyingtries = 0
    unique = replace
{auth_sections(tunnel, pki, site_id)}    children {{
      {tunnel.name} {{
        local_ts = {",".join(tunnel.local_ts)}
        remote_ts = {",".join(map(str, tunnel.remote_subnets))}
        esp_proposals = {esp}
        start_action = start
        dpd_action = restart
        close_action = start
      }}
    }}
  }}
"""


def secret(tunnel: Tunnel) -> str:
    if tunnel.auth != "psk":
        return ""
    ids = [tunnel.peer_id] + ([tunnel.local_id] if tunnel.local_id else [])
    owners = "".join(f"    id-{n} = {identity}\n" for n, identity in enumerate(ids))
    return f"  ike-{tunnel.name} {{\n{owners}    secret = {quoted(tunnel.psk)}\n  }}\n"


def road_warriors(config, pki: Pki, server_id: str) -> tuple[str, str, str]:
    """(connection, pool, secrets) of IKEv2 EAP-MSCHAPv2 clients; empty when switched off."""
    ra = config.vpn.remote_access
    if not ra.enabled:
        return "", "", ""
    lan = ",".join(map(str, config.network.lan_networks()))
    conn = f"""  road-warriors {{
    version = 2
    local_addrs = %any
    proposals = {DEFAULT_IKE},aes256gcm16-prfsha256-ecp256,aes256-sha256-modp2048
    pools = road-warriors
    send_certreq = no
    unique = never
    local {{
      auth = pubkey
      certs = {pki.server_cert}
      id = {server_id}
    }}
    remote {{
      auth = eap-mschapv2
      eap_id = %any
    }}
    children {{
      road-warriors {{
        local_ts = {lan}
        esp_proposals = {DEFAULT_ESP},aes256gcm16,aes256-sha256
      }}
    }}
  }}
"""
    pool = (f"  road-warriors {{\n    addrs = {ra.pool}\n    dns = {config.network.lan.address.ip}\n  }}\n")
    allowed = allowed_accounts(config)
    secrets = "".join(f"  eap-{a.user} {{\n    id = {a.user}\n    secret = {quoted(a.password_secret)}\n  }}\n"
                      for a in allowed)
    return conn, pool, secrets


def allowed_accounts(config) -> list:
    users = {u.login: u for u in config.users}
    return [a for a in config.vpn.remote_access.accounts
            if a.user in users and users[a.user].enabled and users[a.user].vpn_enabled]


def swanctl_conf(config, pki: Pki, server_id: str) -> str:
    tunnels = [t for t in config.vpn.tunnels if t.enabled]
    rw_conn, rw_pool, rw_secrets = road_warriors(config, pki, server_id)
    site_id = site_identity(config, pki)
    return ("# rendered by OfficeBox: the tunnels and their keys (0600)\n"
            "connections {\n" + "".join(connection(t, pki, site_id) for t in tunnels) + rw_conn + "}\n"
            "pools {\n" + rw_pool + "}\n"
            "secrets {\n" + "".join(secret(t) for t in tunnels) + rw_secrets + "}\n")
