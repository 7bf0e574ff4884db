"""Render dovecot.conf (IMAP, POP3, LMTP) and its user database from the configuration.

Mail is stored as the `vmail` user in Maildir++ (`~/Maildir`, folders `.Sent`, `.Archives.2026`...),
shown with the `/` separator. Passwords are checked by the appliance (checkpassword helper -> auth
socket -> AuthGuard); the user database (users.db, no passwords) gives each enabled user a home and a
quota. TLS with the box certificate only, no sign-in before TLS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.schema import CoreConfig
from services.mail.prelogin import BACKEND_HOST

MAIL_USER = "vmail"
SPECIAL_USE = (("Sent", r"\Sent"), ("Drafts", r"\Drafts"), ("Trash", r"\Trash"), ("Junk", r"\Junk"),
               ("Archive", r"\Archive"))
CHECKPASSWORD = Path(__file__).with_name("checkpassword.py")
HELPER_PYTHON = "/usr/bin/python3"  # the system's: the helper runs as Dovecot's auth user
CHECKPASSWORD_REPLY = "/usr/lib/dovecot/checkpassword-reply"
LISTENERS = {"imap": ("imap", False), "imaps": ("imap", True), "pop3": ("pop3", False), "pop3s": ("pop3", True),
             "managesieve": ("managesieve", False)}  # ManageSieve: STARTTLS before sign-in (ssl = required)
SENDMAIL = Path(__file__).with_name("sendmail.py")
SIEVE_MAX_SCRIPT = "64k"
SIEVE_MAX_SCRIPTS = 20
VACATION_DAYS = ("1d", "1d", "30d")  # minimum, default and maximum of a vacation's :days


@dataclass(frozen=True)
class Paths:
    etc: Path    # rendered files (etc/current/mail)
    state: Path  # state/mail: <login>/Maildir, owned by vmail
    run: Path    # /run/officebox-<instance>: Dovecot's base_dir, the auth socket, the published user
                 # database (short: socket paths have a 108-byte limit; outside the 0700 data directory)

    @property
    def base_dir(self) -> Path:
        return self.run / "dovecot"

    @property
    def lmtp_socket(self) -> Path:
        return self.base_dir / "lmtp"

    @property
    def auth_socket(self) -> Path:
        return self.run / "auth.sock"

    @property
    def send_socket(self) -> Path:
        """Where Sieve's outgoing mail (vacation replies, rejections, redirects) enters the appliance."""
        return self.run / "send.sock"

    @property
    def userdb(self) -> Path:
        """The published copy Dovecot's auth process reads (etc/ is root-only)."""
        return self.run / "users.db"

    def home(self, login: str) -> Path:
        return self.state / login


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int


def user_lines(config: CoreConfig, paths: Paths, account: Account) -> str:
    """passwd-file userdb: login, vmail's uid/gid, home, quota; enabled users only, so a disabled user has
    no mailbox to sign in to or deliver to."""
    section = config.mail
    lines = []
    for user in config.users:
        if not user.enabled:
            continue
        megabytes = section.user_quota_mb.get(user.login, section.quota_mb)
        rule = f"*:storage={megabytes}M" if megabytes else "*:ignore"
        lines.append(f"{user.login}::{account.uid}:{account.gid}::{paths.home(user.login)}::"
                     f"userdb_quota_rule={rule} userdb_sieve_user_email={user.login}@{config.system.mail_domain}\n")
    return "".join(lines)


def _listeners(ports: dict[str, int], host: str, protocol: str) -> str:
    out = []
    for kind, (proto, tls) in LISTENERS.items():
        if proto != protocol:
            continue
        name = "sieve" if kind == "managesieve" else kind
        out.append(f"  inet_listener {name} {{\n    address = {host}\n    port = {ports[kind]}\n"
                   f"    ssl = {'yes' if tls else 'no'}\n    haproxy = yes\n  }}\n")
    return "".join(out)


def _mailboxes() -> str:
    return "".join(f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
                   for name, flag in SPECIAL_USE)


def render(config: CoreConfig, paths: Paths, ports: dict[str, int], host: str, instance: str,
           cert: tuple[Path, Path]) -> str:
    section = config.mail
    listen = "*" if host == "0.0.0.0" else host
    fqdn = f"{config.system.hostname}.{config.system.domain}"
    per_listener = section.max_connections
    return f"""# rendered by OfficeBox (services/mail/dovecotconf.py): do not edit
instance_name = {instance}
base_dir = {paths.base_dir}
state_dir = {paths.run / "dovecot-state"}
protocols = imap pop3 lmtp sieve
listen = {listen}
# the login listeners are on {BACKEND_HOST}, behind the mail service's pre-login gate (prelogin.py),
# which gives each connection's client address and port in a PROXY v2 header
haproxy_trusted_networks = {BACKEND_HOST}/128
haproxy_timeout = 5 secs
hostname = {fqdn}
log_path = /dev/stderr
info_log_path = /dev/stderr
syslog_facility = mail
login_greeting = OfficeBox ready.
shutdown_clients = yes

ssl = required
ssl_cert = <{cert[0]}
ssl_key = <{cert[1]}
ssl_min_protocol = TLSv1.2
ssl_prefer_server_ciphers = yes
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@+
auth_username_format = %Lu
auth_failure_delay = 2 secs
# every sign-in asks checkpassword: the pre-login gate learns sign-ins from there
auth_cache_size = 0
passdb {{
  driver = checkpassword
  args = {HELPER_PYTHON} -I -S {CHECKPASSWORD} {paths.auth_socket}
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {paths.userdb}
}}

mail_location = maildir:~/Maildir
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
first_valid_uid = 100
mail_fsync = always
mail_max_userip_connections = {section.max_connections_per_ip}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{_mailboxes()}}}
mail_plugins = $mail_plugins quota
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage={section.quota_mb}M
  quota_grace = 10%%
  quota_max_mail_size = {section.max_message_size}
  quota_exceeded_message = 5.2.2 Mailbox full: the recipient's mailbox is over its quota
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_max_script_size = {SIEVE_MAX_SCRIPT}
  sieve_quota_max_scripts = {SIEVE_MAX_SCRIPTS}
  sieve_quota_max_storage = 1M
  sieve_max_actions = 32
  sieve_max_redirects = 4
  sieve_vacation_min_period = {VACATION_DAYS[0]}
  sieve_vacation_default_period = {VACATION_DAYS[1]}
  sieve_vacation_max_period = {VACATION_DAYS[2]}
  sieve_vacation_send_from_recipient = yes
}}
sendmail_path = {HELPER_PYTHON} -I -S {SENDMAIL} {paths.send_socket}
imap_max_line_length = 64k
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@{config.system.mail_domain}
}}
lmtp_rcpt_check_quota = yes
quota_full_tempfail = no
lmtp_save_to_detail_mailbox = no
pop3_uidl_format = %08Xu%08Xv
pop3_lock_session = yes
lmtp_add_received_header = no

service imap-login {{
{_listeners(ports, BACKEND_HOST, "imap")}  service_count = 0
  process_min_avail = 1
  process_limit = 1
  client_limit = {per_listener}
}}
service pop3-login {{
{_listeners(ports, BACKEND_HOST, "pop3")}  service_count = 0
  process_min_avail = 1
  process_limit = 1
  client_limit = {per_listener}
}}
service managesieve-login {{
{_listeners(ports, BACKEND_HOST, "managesieve")}  service_count = 0
  process_min_avail = 1
  process_limit = 1
  client_limit = {per_listener}
}}
service managesieve {{
  process_limit = {per_listener}
}}
service imap {{
  process_limit = {per_listener}
}}
service pop3 {{
  process_limit = {per_listener}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
    user = root
  }}
  process_limit = 4
}}
service imap-urlauth-login {{
  process_limit = 1
}}
service auth {{
  client_limit = {4 * per_listener + 16}
}}
service anvil {{
  client_limit = {4 * per_listener + 16}
}}
"""
