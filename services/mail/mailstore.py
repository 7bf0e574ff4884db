"""What Dovecot needs on disk, prepared by the appliance (root) before Dovecot runs.

- the `vmail` system user (created once, idempotently) owns every mailbox: state/mail/<login>/, mode
  0700, files 0600; Maildirs from before (owned by root) are handed over at start, their mail untouched;
- the data directory (0700) and the folders on the way get a POSIX ACL entry that lets vmail (mail
  processes) traverse them, nothing more;
- Dovecot's run folder (/run/officebox-<instance>, 0711) holds its sockets, the auth socket and the user
  database published for Dovecot's auth user.
"""
from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from appliance.acl import allow_traverse
from appliance.fsutil import atomic_write
from services.mail.dovecotconf import MAIL_USER, Account, Paths

log = logging.getLogger("officebox.mail")
AUTH_USER = "dovecot"
OLD_UIDLIST = "officebox-uidlist"  # the former in-process IMAP server's UID map; Dovecot keeps its own
QUEUE_DIR = "queue"


def mail_account() -> Account:
    """The vmail user, created if missing (a system user without a shell or a home)."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--comment", "OfficeBox mail", MAIL_USER],
                       check=False, capture_output=True, timeout=60)
        pw = pwd.getpwnam(MAIL_USER)  # KeyError if useradd failed: the service cannot start without it
    return Account(pw.pw_uid, pw.pw_gid)


def open_path(target: Path, uid: int) -> None:
    """Let `uid` traverse the folders from / down to `target`: an ACL entry (x only) on each one it could
    not pass (on the box only the data directory and its subfolders; in tests also a private tmp dir)."""
    for folder in (*reversed(target.parents), target):
        allow_traverse(folder, uid)


def _hand_over(home: Path, account: Account) -> None:
    """Give one mailbox tree to vmail (the top folder last: an interrupted pass is redone at next start)."""
    (home / "Maildir" / OLD_UIDLIST).unlink(missing_ok=True)
    for root, dirs, files in os.walk(home, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            os.lchown(path, account.uid, account.gid)
            os.chmod(path, 0o600)
        for name in dirs:
            path = os.path.join(root, name)
            os.lchown(path, account.uid, account.gid)
            os.chmod(path, 0o700)
    os.chown(home, account.uid, account.gid)
    home.chmod(0o700)


def prepare(paths: Paths, logins: list[str], account: Account) -> None:
    """Mailboxes owned by vmail (existing ones handed over), a home for every enabled user, paths open."""
    if os.geteuid() != 0:
        raise PermissionError("the mail service needs root to run Dovecot")
    paths.state.mkdir(parents=True, exist_ok=True)
    for home in paths.state.iterdir():
        if home.name != QUEUE_DIR and home.is_dir() and not home.is_symlink() and home.stat().st_uid != account.uid:
            log.info("handing the mailbox %s over to %s", home.name, MAIL_USER)
            _hand_over(home, account)
    for login in logins:
        home = paths.home(login)
        if not home.exists():
            home.mkdir(mode=0o700)
            os.chown(home, account.uid, account.gid)
    open_path(paths.state, account.uid)
    paths.run.mkdir(mode=0o711, parents=True, exist_ok=True)  # Dovecot's auth user passes, lists nothing
    paths.run.chmod(0o711)


def publish_userdb(paths: Paths) -> None:
    """Copy the rendered user database where Dovecot's auth user can read it (0640 root:dovecot)."""
    source = paths.etc / "users.db"
    content = source.read_bytes() if source.exists() else b""
    atomic_write(paths.userdb, content, mode=0o640)
    shutil.chown(paths.userdb, "root", AUTH_USER)


def usage(maildir: Path) -> tuple[int, int]:
    """(messages, bytes) in a Maildir and its folders; sizes from the `,S=` in the names, else stat."""
    count = size = 0
    folders = [maildir] + ([f for f in maildir.iterdir() if f.name.startswith(".") and f.is_dir()]
                           if maildir.is_dir() else [])
    for folder in folders:
        for sub in ("new", "cur"):
            try:
                names = os.listdir(folder / sub)
            except OSError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                count += 1
                base = name.partition(":")[0]
                sized = next((p[2:] for p in base.split(",")[1:] if p.startswith("S=")), "")
                if sized.isdigit():
                    size += int(sized)
                else:
                    try:
                        size += (folder / sub / name).stat().st_size
                    except OSError:
                        pass
    return count, size
