"""Who a service's own process runs as: a system user of its own, with only the capabilities it needs.

    officebox-dns           CAP_NET_BIND_SERVICE (port 53)
    officebox-dhcp          CAP_NET_BIND_SERVICE (port 67), CAP_NET_RAW (the ICMP conflict probe)
    officebox-provisioning  CAP_NET_BIND_SERVICE (HTTP 80/TFTP 69), group officebox-tls (the box key)
    officebox-ntp           none (chronyd is the supervisor's child)
    officebox-pbx           CAP_NET_BIND_SERVICE (SIP 5060; its media engine inherits it); its coturn
                            (the supervisor's child, daemon_prefix) none, group officebox-tls (TURN over TLS)
    officebox-firewall      CAP_NET_ADMIN (nft loads the ruleset and writes the media sets)
    officebox-network       CAP_NET_ADMIN (addresses, VLAN, routes, ip_forward over netlink/sysctl),
                            CAP_NET_RAW and CAP_NET_BIND_SERVICE for its WAN DHCP client (busybox udhcpc:
                            a packet socket before it has an address, UDP port 68 for its renewals)
    officebox-cti           none, group officebox-tls (CSTA over TLS with the box key; ports above 1024)
    proxy                   none (Squid's own user)
    mail                    stays root (Dovecot's master starts as root and drops to vmail itself)
    vpn                     stays root (charon's vici socket, WireGuard's netlink)
    officebox-<other>       none (a service without an entry in PRIVILEGES)

The appliance (root) execs the child through util-linux `setpriv`: its uid/gid, no other groups but
the listed ones, no-new-privs, and the capabilities above as the inheritable, ambient and bounding
sets (so nothing else, ever). Before each start the service's folders (state/, run/, log/, cache/ of its own)
are handed to its user; the data directory and the folders above it let it traverse (an x-only ACL
entry), nothing more: the configuration store (0600 root) is out of its reach. Its rendered files of the
current generation become readable by its group (share_rendered, at each start and reload). A user that is missing
is created here (useradd); the OS image, whose /etc the appliance cannot write, creates them at build
time from SERVICE_USERS. Not root (a developer's shell): the child runs as the appliance does.
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance import contacts, contactshare
from appliance.acl import allow_traverse
from appliance.certs import TLS_GROUP  # may read the box TLS key
from appliance.context import Context
from appliance.service import ApplyError

log = logging.getLogger("officebox.serviceusers")
CAP_SETPCAP = 8


@dataclass(frozen=True)
class Privileges:
    capabilities: tuple[str, ...] = ()  # setpriv names: net_bind_service, net_raw...
    groups: tuple[str, ...] = ()  # supplementary groups (created like the user when missing)
    user: str = ""  # an existing daemon's user instead of officebox-<name>
    root: bool = False  # stays root in its own process (a daemon it runs must start as root)


PRIVILEGES: dict[str, Privileges] = {
    "dns": Privileges(("net_bind_service",)),
    "dhcp": Privileges(("net_bind_service", "net_raw")),
    "provisioning": Privileges(("net_bind_service",), (TLS_GROUP,)),
    "ntp": Privileges(),
    # SIP on 5060 and WSS; its media engine inherits both capabilities and sets itself real-time (sys_nice)
    "pbx": Privileges(("net_bind_service", "sys_nice"), (TLS_GROUP,)),
    "cti": Privileges((), (TLS_GROUP,)),  # CSTA XML on 2555/2556, TLS with the box key
    # Squid's own user: it reads Squid's logs, answers its sign-in helper and signals it (-k reconfigure);
    # not dumpable (servicehost), so Squid cannot read the password hashes in its memory
    "proxy": Privileges(user="proxy"),
    # Dovecot's master must start as root: it binds the IMAP/POP3 ports, chroots its login processes
    # and switches the mail processes to vmail; the mail service process that runs it stays root
    "mail": Privileges(root=True),
    # charon (the supervisor's child) is root and its vici socket root's; the VPN process asks it for the SAs
    # and sets up WireGuard (netlink, xfrm): it stays root, in a process of its own
    "vpn": Privileges(root=True),
    "firewall": Privileges(("net_admin",)),  # nft: netlink to the kernel's tables, nothing else
    # pyroute2 (netlink) and ip_forward (a net sysctl: CAP_NET_ADMIN writes it as root would); the WAN's
    # udhcpc, its child, inherits all three: raw DHCP before it has an address, port 68 when it renews
    "network": Privileges(("net_admin", "net_raw", "net_bind_service")),
}


def user_name(service: str) -> str:
    return PRIVILEGES.get(service, Privileges()).user or f"officebox-{service}"


SERVICE_USERS = tuple(user_name(name) for name, p in PRIVILEGES.items()
                      if not p.user and not p.root)  # made by the OS image
SERVICE_GROUPS = (TLS_GROUP,)


def _useradd(name: str) -> None:
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", "--comment", "OfficeBox service", name],
                   check=False, capture_output=True, timeout=60)


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", group], check=False, capture_output=True, timeout=60)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ApplyError(f"there is no group {group} and it could not be created") from None


def account(service: str) -> pwd.struct_passwd:
    """The service's user, created when missing (a daemon's user comes with its package)."""
    name = user_name(service)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if name in SERVICE_USERS:
            _useradd(name)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ApplyError(f"{service}: there is no user {name} and it could not be created "
                         "(the OS image creates the service users)") from None


def _hand_over(folder: Path, uid: int, gid: int) -> None:
    """What root left in the folder becomes the user's; what a daemon's own user owns (Squid's cache) stays."""
    for root, dirs, files in os.walk(folder):
        for name in list(dirs) + files:
            path = os.path.join(root, name)
            owner = os.lstat(path).st_uid
            if owner == 0:
                os.lchown(path, uid, gid)
            elif owner != uid and name in dirs:
                dirs.remove(name)
    os.chown(folder, uid, gid)
    folder.chmod(0o700)


ROOT_ONLY = "root-only"  # a rendered subfolder for a daemon the supervisor runs as root (the WAN's pppd)


def share_rendered(ctx: Context, service: str) -> None:
    """Let the service's group read its rendered files of the current generation (root's, 0640/0750); a
    top-level ROOT_ONLY folder stays as rendered (root's 0700, its files 0600 or made executable)."""
    if os.geteuid() != 0 or PRIVILEGES.get(service, Privileges()).root:
        return
    folder = ctx.etc_dir(service).resolve()
    if not folder.is_dir():
        return
    user = account(service)
    _open_path(folder.parent, user.pw_uid)
    for root, dirs, files in os.walk(folder):
        if root == str(folder) and ROOT_ONLY in dirs:
            dirs.remove(ROOT_ONLY)
        for name in dirs + files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chown(path, 0, user.pw_gid)
                os.chmod(path, 0o750 if name in dirs else 0o640)
    os.chown(folder, 0, user.pw_gid)
    folder.chmod(0o750)


def _open_path(target: Path, uid: int) -> None:
    """x-only ACL entries on the folders from / to `target` that `uid` could not pass."""
    for folder in (*reversed(target.parents), target):
        allow_traverse(folder, uid)


def _may_drop_bounding_set() -> bool:
    """Shrinking the bounding set needs CAP_SETPCAP (a systemd unit may have left it out)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SETPCAP & 1)
    return False


def cache_dir(ctx: Context, service: str) -> Path:
    """<data>/cache/<service>: what the service makes again when lost (the PBX's prompts, hold music)."""
    path = ctx.data_dir / "cache" / service
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare(ctx: Context, service: str) -> list[str]:
    """Make the service's user and folders ready; return the argv prefix that drops to it ([] if not root)."""
    privileges = PRIVILEGES.get(service, Privileges())
    if os.geteuid() != 0 or privileges.root:
        return []
    user = account(service)
    gids = [_gid(group) for group in privileges.groups]
    folders = (ctx.state_dir(service), ctx.run_dir(service), ctx.log_dir(service), cache_dir(ctx, service))
    for folder in folders:
        _hand_over(folder, user.pw_uid, user.pw_gid)
        _open_path(folder.parent, user.pw_uid)
    if service in contacts.READERS:
        contactshare.share(ctx.data_dir, user.pw_uid)  # caller names, phone books
    for code in (Path(sys.executable).resolve(), Path(__file__).resolve().parent.parent):
        _open_path(code.parent, user.pw_uid)  # the interpreter and the code (in a lab: under /root)
    return _setpriv(service, user, gids, privileges.capabilities)


def daemon_prefix(service: str, capabilities: tuple[str, ...] = ()) -> list[str]:
    """The argv prefix that runs a daemon the supervisor keeps for `service` (coturn for the PBX) as the
    service's user and groups with only `capabilities`, a subset of the service's ([] if not root). Its
    folders are the service's, handed over by prepare() before the supervisor starts its daemons."""
    privileges = PRIVILEGES.get(service, Privileges())
    if os.geteuid() != 0 or privileges.root:
        return []
    if not set(capabilities) <= set(privileges.capabilities):
        raise ValueError(f"{service}: a daemon gets no capability its service lacks ({capabilities})")
    return _setpriv(service, account(service), [_gid(group) for group in privileges.groups], capabilities)


def _setpriv(service: str, user: pwd.struct_passwd, gids: list[int], capabilities: tuple[str, ...]) -> list[str]:
    caps = ",".join(["-all", *(f"+{c}" for c in capabilities)])
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
            f"--groups={','.join(map(str, gids))}" if gids else "--clear-groups",
            "--no-new-privs", f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    if _may_drop_bounding_set():
        argv.append(f"--bounding-set={caps}")
    else:
        log.warning("%s: no CAP_SETPCAP, so its process keeps the appliance's capability bounding set", service)
    return [*argv, "--"]
