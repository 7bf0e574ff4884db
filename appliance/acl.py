"""POSIX access ACLs on folders: let one system user traverse a 0700 folder (x only), keeping the entries
other services added (the proxy's Squid and the mail service's Dovecot both pass through the data
directory). A chmod of the folder can mask entries out again: calling allow_traverse again restores them."""
from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

ACL_XATTR = "system.posix_acl_access"
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def _entries(path: Path) -> list[tuple[int, int, int]]:
    try:
        blob = os.getxattr(path, ACL_XATTR)
        return [struct.unpack_from("<HHI", blob, 4 + 8 * i) for i in range((len(blob) - 4) // 8)]
    except OSError:
        mode = path.stat().st_mode
        return [(USER_OBJ, (mode >> 6) & 7, UNDEFINED), (GROUP_OBJ, (mode >> 3) & 7, UNDEFINED),
                (OTHER, mode & 7, UNDEFINED)]


def may_traverse(path: Path, uid: int) -> bool:
    """True if `uid` has its own effective x entry (owner, named user under the mask) or others have x."""
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_mode & 0o001:
        return True
    entries = _entries(path)
    mask = next((perm for tag, perm, _ in entries if tag == MASK), 7)
    return any(tag == USER and ident == uid and perm & mask & 1 for tag, perm, ident in entries)


def allow_traverse(path: Path, uid: int) -> None:
    """Add `u:<uid>:--x` to a folder's access ACL unless uid may traverse it already. The folder is
    locked meanwhile: processes adding entries at once (service processes, Squid's launcher) keep all."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _add_entry(Path(path), uid)
    finally:
        os.close(fd)


def _add_entry(path: Path, uid: int) -> None:
    if may_traverse(path, uid):
        return
    entries = [e for e in _entries(path) if e[0] != MASK and not (e[0] == USER and e[2] == uid)]
    entries.append((USER, 1, uid))
    mask = 1
    for tag, perm, _ident in entries:
        if tag in (USER, GROUP, GROUP_OBJ):
            mask |= perm
    entries.append((MASK, mask, UNDEFINED))
    order = {USER_OBJ: 0, USER: 1, GROUP_OBJ: 2, GROUP: 3, MASK: 4, OTHER: 5}
    entries.sort(key=lambda e: (order[e[0]], e[2] if e[0] in (USER, GROUP) else 0))
    os.setxattr(path, ACL_XATTR, struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))
