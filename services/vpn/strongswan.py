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


def connection(tunnel: Tunnel) -> str:
    local_id = f"\n      id = {tunnel.local_id}" if tunnel.local_id else ""
    return f"""  {tunnel.name} {{
    version = 2
    local_addrs = %any
    remote_addrs = {tunnel.peer}
    proposals = {tunnel.ike_proposals}
    dpd_delay = {tunnel.dpd_delay}s
    keyingtries = 0
    unique = replace
    local {{
      auth = psk{local_id}
    }}
    remote {{
      auth = psk
      id = {tunnel.peer_id}
    }}
    children {{
      {tunnel.name} {{
        local_ts = {",".join(map(str, tunnel.local_subnets))}
        remote_ts = {",".join(map(str, tunnel.remote_subnets))}
        esp_proposals = {tunnel.esp_proposals}
        start_action = start
        dpd_action = restart
        close_action = start
      }}
    }}
  }}
"""


def secret(tunnel: Tunnel) -> str:
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
    return ("# rendered by OfficeBox: the tunnels and their keys (0600)\n"
            "connections {\n" + "".join(connection(t) for t in tunnels) + rw_conn + "}\n"
            "pools {\n" + rw_pool + "}\n"
            "secrets {\n" + "".join(secret(t) for t in tunnels) + rw_secrets + "}\n")
