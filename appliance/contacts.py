"""Contacts of the whole box: shared ones (the admin's) and each user's personal ones, and `lookup()` of a
caller's number (the PBX's caller names, the provisioning phone books, the staff desk).

Storage: outside the configuration document (thousands of entries, edited without a revision), one JSON
file per book under <data>/state/contacts/: shared.json and personal/<login>.json, each replaced
atomically (fsync, rename), so a reader or a power cut sees the old or the new book, never a mix. Being
under state/ they are in every backup and come back with its restore. Files are 0640 root; the service
processes that read them (READERS) get a read ACL entry from share() at each of their starts.

Number matching: spaces, dashes, dots, slashes and brackets are ignored; a leading 00 is read as +; then
the + and one national trunk prefix 0 are dropped. Two numbers of 6 digits or more match when one is the
end of the other ("+33 1 23 45 67 89", "0033123456789" and "01 23 45 67 89" are one number), shorter ones
(internal numbers) only when equal. The longest match wins; personal contacts of `login` before shared.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.fsutil import atomic_write
from appliance.usercsv import Text  # messages the web admin shows translated (blueprints/contacts.py)

MAX_SHARED = 20_000
MAX_PERSONAL = 2_000
MAX_PHONES = 8
MAX_NAME = 100
MAX_NUMBER = 32
MIN_SUFFIX = 6
PHONE_KINDS = ("work", "mobile", "home", "fax", "other")
READERS = ("pbx", "provisioning")  # services whose processes read the books
LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NUMBER = re.compile(r"^\+?[0-9 ().\-/]{1,32}$")
FILE_MODE = 0o640


@dataclass(frozen=True)
class Contact:
    name: str
    company: str
    number: str  # as stored in the book
    source: Literal["shared", "personal"]
    kind: str = "work"  # the kind of that number (PHONE_KINDS)


class ContactError(ValueError):
    """A contact or a book cannot be saved (args[0]: why, in plain words); nothing was changed."""


def folder(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / "contacts"


def book_path(data_dir: Path, login: str | None = None) -> Path:
    if login is None:
        return folder(data_dir) / "shared.json"
    if not LOGIN.match(login):
        raise ContactError(f"not a login: {login!r}")
    return folder(data_dir) / "personal" / f"{login}.json"


def digits(number: str) -> str:
    """The comparable form of a number: '+33 (0)1-23' -> '33123', '0033 1' -> '331', '01 23' -> '123'."""
    number = number.strip()
    plus = number.startswith("+")
    kept = re.sub(r"[^0-9]", "", number)
    if not plus and kept.startswith("00"):
        kept = kept[2:]
    elif not plus and kept.startswith("0"):
        kept = kept[1:]
    return kept


def _clean(entry: dict) -> dict:
    """A checked copy of one contact: name or company, 1..MAX_PHONES numbers (kind, number)."""
    name = str(entry.get("name", "")).strip()[:MAX_NAME + 1]
    company = str(entry.get("company", "")).strip()[:MAX_NAME + 1]
    email = str(entry.get("email", "")).strip()[:201]
    if len(name) > MAX_NAME or len(company) > MAX_NAME or len(email) > 200:
        raise ContactError(Text("a name, company or e-mail is longer than %(most)d characters", most=MAX_NAME))
    if not name and not company:
        raise ContactError(Text("a contact needs a name or a company"))
    if any(ord(c) < 32 for c in name + company + email):
        raise ContactError(Text("a name or company contains control characters"))
    phones = []
    for kind, number in entry.get("phones", []):
        number = str(number).strip()
        if not number:
            continue
        if not NUMBER.match(number) or not digits(number):
            raise ContactError(Text("“%(number)s” is not a phone number (digits, spaces, - . / ( ) and a leading +)",
                                         number=number[:40]))
        phones.append([kind if kind in PHONE_KINDS else "other", number])
    if not phones:
        raise ContactError(Text("%(name)s: a contact needs at least one phone number", name=name or company))
    if len(phones) > MAX_PHONES:
        raise ContactError(Text("%(name)s: at most %(most)d phone numbers per contact", name=name or company,
                                 most=MAX_PHONES))
    return {"id": str(entry.get("id") or uuid.uuid4().hex[:16]), "name": name, "company": company,
            "email": email, "phones": phones}


def read_book(data_dir: Path, login: str | None = None) -> list[dict]:
    """The contacts of one book, sorted by name ([] when there is none)."""
    try:
        data = json.loads(book_path(data_dir, login).read_bytes())
    except FileNotFoundError:
        return []
    return sorted(data.get("contacts", []), key=lambda c: (c["name"] or c["company"]).casefold())


def _write_book(data_dir: Path, login: str | None, contacts: list[dict]) -> None:
    limit = MAX_SHARED if login is None else MAX_PERSONAL
    if len(contacts) > limit:
        raise ContactError(Text("a book holds at most %(most)d contacts", most=limit))
    path = book_path(data_dir, login)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    atomic_write(path, json.dumps({"version": 1, "contacts": contacts}, ensure_ascii=False), FILE_MODE)


class _Locked:
    """One writer of the books at a time (the web admin's workers)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = folder(data_dir) / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def save_contact(data_dir: Path, entry: dict, login: str | None = None) -> dict:
    """Add (no id) or replace (its id) one contact; returns it as stored. ContactError: nothing changed."""
    clean = _clean(entry)
    with _Locked(data_dir):
        contacts = read_book(data_dir, login)
        if entry.get("id") and not any(c["id"] == clean["id"] for c in contacts):
            raise ContactError(Text("this contact no longer exists"))
        contacts = [c for c in contacts if c["id"] != clean["id"]] + [clean]
        _write_book(data_dir, login, contacts)
    return clean


def delete_contact(data_dir: Path, contact_id: str, login: str | None = None) -> bool:
    with _Locked(data_dir):
        contacts = read_book(data_dir, login)
        kept = [c for c in contacts if c["id"] != contact_id]
        if len(kept) != len(contacts):
            _write_book(data_dir, login, kept)
    return len(kept) != len(contacts)


def import_contacts(data_dir: Path, entries: list[dict], login: str | None = None,
                    replace: bool = False) -> int:
    """Add every entry (or replace the whole book) at once: all are checked first, a bad one changes
    nothing (ContactError naming it). Returns how many were added."""
    clean = []
    for number, entry in enumerate(entries, 1):
        try:
            clean.append(_clean({k: v for k, v in entry.items() if k != "id"}))
        except ContactError as exc:
            raise ContactError(Text("contact %(number)d: %(reason)s", number=number, reason=exc.args[0])) from None
    with _Locked(data_dir):
        kept = [] if replace else read_book(data_dir, login)
        _write_book(data_dir, login, kept + clean)
    return len(clean)


def get_contact(data_dir: Path, contact_id: str, login: str | None = None) -> dict | None:
    return next((c for c in read_book(data_dir, login) if c["id"] == contact_id), None)


def search(contacts: list[dict], query: str) -> list[dict]:
    """Contacts whose name, company, e-mail or a number contains `query` (numbers compared as digits)."""
    query = query.strip().casefold()
    if not query:
        return contacts
    wanted = digits(query) if NUMBER.match(query) else ""
    return [c for c in contacts if query in f"{c['name']} {c['company']} {c['email']}".casefold()
            or (wanted and any(wanted in digits(n) for _kind, n in c["phones"]))]


# -- lookup -------------------------------------------------------------------------------------------
_cache: dict[Path, tuple[tuple, dict[str, list]]] = {}  # path -> (stat key, index)


def _index(path: Path, parse: bool = True) -> dict[str, list]:
    """The book at `path` indexed by the last MIN_SUFFIX digits (or all of a shorter number); parsed
    again only when the file changed (its inode, size or time), and only if `parse` (else as last loaded)."""
    cached = _cache.get(path)
    if not parse:
        return cached[1] if cached else {}
    try:
        st = path.stat()
    except (FileNotFoundError, PermissionError):
        _cache.pop(path, None)
        return {}
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if cached and cached[0] == key:
        return cached[1]
    try:
        contacts = json.loads(path.read_bytes()).get("contacts", [])
    except (OSError, ValueError):
        return {}
    index: dict[str, list] = {}
    for contact in contacts:
        for kind, number in contact["phones"]:
            d = digits(number)
            index.setdefault(d[-MIN_SUFFIX:], []).append((d, kind, number, contact))
    _cache[path] = (key, index)
    return index


def _best(index: dict[str, list], wanted: str):
    best, length = None, 0
    for d, kind, number, contact in index.get(wanted[-MIN_SUFFIX:], ()):
        same = d == wanted or (min(len(d), len(wanted)) >= MIN_SUFFIX and (d.endswith(wanted) or wanted.endswith(d)))
        if same and min(len(d), len(wanted)) + (d == wanted) > length:
            best, length = (kind, number, contact), min(len(d), len(wanted)) + (d == wanted)
    return best


def lookup(data_dir: Path, number: str, login: str | None = None) -> Contact | None:
    """The contact whose number is `number`: `login`'s personal contacts first, then the shared ones."""
    return _lookup(data_dir, number, login, True)


def lookup_loaded(data_dir: Path, number: str, login: str | None = None) -> Contact | None:
    """lookup() in the books as load() last read them: never reads a file (for an event loop)."""
    return _lookup(data_dir, number, login, False)


def load(data_dir: Path, logins=()) -> None:
    """Read again the books that changed: the shared one and these users' (in a worker thread: a book of
    20,000 contacts takes a few hundred milliseconds)."""
    for login in (None, *(x for x in logins if LOGIN.match(x))):
        _index(book_path(data_dir, login))


def _lookup(data_dir: Path, number: str, login: str | None, parse: bool) -> Contact | None:
    wanted = digits(number or "")
    if not wanted:
        return None
    books: list[tuple[str | None, Literal["shared", "personal"]]] = [(None, "shared")]
    if login and LOGIN.match(login):
        books.insert(0, (login, "personal"))
    for who, source in books:
        found = _best(_index(book_path(data_dir, who), parse), wanted)
        if found:
            kind, stored, contact = found
            return Contact(contact["name"] or contact["company"], contact["company"], stored, source, kind)
    return None
