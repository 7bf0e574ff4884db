"""Files Squid needs as the proxy user: its own tree, a traversable data directory, block page copies."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import struct
from pathlib import Path

from appliance.acl import allow_traverse
from services.proxy.squidconf import AUTH_HELPER

ACL_XATTR = "system.posix_acl_access"
USER_OBJ, USER, GROUP_OBJ, MASK, OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def traversable_by(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid and st.st_mode & 0o010:
        return True
    if st.st_mode & 0o001:
        return True
    try:
        return _acl_has_user_x(os.getxattr(path, ACL_XATTR), uid)
    except OSError:
        return False


def _acl_has_user_x(blob: bytes, uid: int) -> bool:
    entries = [struct.unpack_from("<HHI", blob, 4 + 8 * i) for i in range((len(blob) - 4) // 8)]
    mask = next((perm for tag, perm, _ in entries if tag == MASK), 7)
    return any(tag == USER and ident == uid and perm & mask & 1 for tag, perm, ident in entries)


def grant_traverse(path: Path, uid: int) -> None:
    """Add `u:<uid>:--x` to the directory's access ACL, keeping its other entries (Dovecot's users too)."""
    allow_traverse(path, uid)


def prepare(work: Path, user: str = "proxy") -> None:
    """work/, cache/, logs/ owned by `user` (mode 0700 whatever the umask), reachable from /: each folder
    from the data directory down gets a traverse ACL entry when needed."""
    as_root = os.geteuid() == 0
    pw = pwd.getpwnam(user) if as_root else None
    for sub in ("", "cache", "logs"):
        path = work / sub
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        if pw is not None:
            os.chown(path, pw.pw_uid, pw.pw_gid)
    if pw is None:
        return
    in_data_dir = False  # the data directory and the folders under it (0700 under the box's umask 077)
    for parent in reversed(work.parents):
        in_data_dir = in_data_dir or (parent / "officebox.db").exists() or (parent / "state").is_dir()
        if not traversable_by(parent, pw.pw_uid, pw.pw_gid):
            if in_data_dir:
                grant_traverse(parent, pw.pw_uid)
            else:
                raise SystemExit(f"squid runs as {user}, who cannot reach {parent}: make it traversable")
    for log in (work / "logs").iterdir():
        os.chown(log, pw.pw_uid, pw.pw_gid)


STOCK_PAGES = (Path("/usr/share/squid/errors/en"), Path("/usr/share/squid/errors/templates"))


def publish_pages(etc: Path, work: Path) -> None:
    """Fill work/pages (Squid's error_directory): its stock English pages, our block pages, the hosts
    file; copies, because Squid reads them as the proxy user and etc/ is root-only."""
    pages = work / "pages"
    staging = work / "pages.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    stock = next((d for d in STOCK_PAGES if d.is_dir()), None)
    if stock is not None:
        for page in stock.iterdir():
            if page.is_file():
                shutil.copyfile(page, staging / page.name)
    if (etc / "errors").is_dir():
        for page in (etc / "errors").iterdir():
            shutil.copyfile(page, staging / page.name)
    shutil.copyfile(etc / "hosts", staging / "hosts")
    shutil.copyfile(Path(__file__).with_name("basic_auth.py"), staging / AUTH_HELPER)
    staging.chmod(0o700)
    for page in staging.iterdir():
        page.chmod(0o600)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("proxy")
        for path in (staging, *staging.iterdir()):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    old = work / "pages.old"
    shutil.rmtree(old, ignore_errors=True)
    if pages.exists():
        pages.rename(old)
    staging.rename(pages)
    shutil.rmtree(old, ignore_errors=True)


def clean_shm(instance: str) -> None:
    for path in glob.glob(f"/dev/shm/{instance}-*"):
        try:
            os.unlink(path)
        except OSError:
            pass
