"""Let a service's user read the contact books (appliance/contacts.py) and nothing else of the data.

The books' folders get a named-user entry `r-x` in their access and default ACLs, so the files the
appliance writes there later (0640, replaced by rename) are readable by that user too; the files already
there get `r--`. The folders above only get the x-only entry of appliance/acl.py. Runs as root
before each start of a reader's process (appliance/serviceusers.py), so a restored backup is shared again."""
from __future__ import annotations

import os
import struct
from pathlib import Path

from appliance import acl, contacts

DEFAULT_XATTR = "system.posix_acl_default"
ORDER = {acl.USER_OBJ: 0, acl.USER: 1, acl.GROUP_OBJ: 2, acl.GROUP: 3, acl.MASK: 4, acl.OTHER: 5}


def _read(path: Path, xattr: str, mode: int) -> list[tuple[int, int, int]]:
    try:
        blob = os.getxattr(path, xattr)
    except OSError:
        blob = b""
    if len(blob) > 4:
        return [struct.unpack_from("<HHI", blob, 4 + 8 * i) for i in range((len(blob) - 4) // 8)]
    return [(acl.USER_OBJ, (mode >> 6) & 7, acl.UNDEFINED), (acl.GROUP_OBJ, (mode >> 3) & 7, acl.UNDEFINED),
            (acl.OTHER, mode & 7, acl.UNDEFINED)]


def _grant(path: Path, uid: int, perm: int, xattr: str = acl.ACL_XATTR) -> None:
    mode = path.stat().st_mode
    entries = [e for e in _read(path, xattr, mode) if e[0] != acl.MASK and not (e[0] == acl.USER and e[2] == uid)]
    entries.append((acl.USER, perm, uid))
    mask = 0
    for tag, bits, _ident in entries:
        if tag in (acl.USER, acl.GROUP, acl.GROUP_OBJ):
            mask |= bits
    entries.append((acl.MASK, mask, acl.UNDEFINED))
    entries.sort(key=lambda e: (ORDER[e[0]], e[2] if e[0] in (acl.USER, acl.GROUP) else 0))
    os.setxattr(path, xattr, struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))


def share(data_dir: Path, uid: int) -> None:
    """Give `uid` read access to every book, present and future."""
    top = contacts.folder(data_dir)
    personal = top / "personal"
    personal.mkdir(parents=True, exist_ok=True, mode=0o750)
    acl.allow_traverse(top.parent, uid)  # state/ (the data directory above: serviceusers' _open_path)
    for path in (top, personal):
        _grant(path, uid, 5)
        _grant(path, uid, 5, DEFAULT_XATTR)
    for book in [top / "shared.json", *personal.glob("*.json")]:
        if book.is_file() and not book.is_symlink():
            os.chmod(book, contacts.FILE_MODE)
            _grant(book, uid, 4)
