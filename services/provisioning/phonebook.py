"""Remote phone books for desk phones: the box's shared contacts and the phone user's personal ones
(appliance/contacts.py, core, so provisioning may read them), as Yealink's YealinkIPPhoneDirectory XML
or Snom's SnomIPPhoneDirectory.
Served at /phonebook-<mac digits>.xml with the same checks (and the same account) as the phone's own file;
a Yealink's file names it in remote_phonebook.data.1.url (the account in the URL), a Snom's on its
directory key (dkey_directory, the account in http_client_user/http_client_pass)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

from appliance import contacts

NAME = re.compile(r"^phonebook-([0-9a-f]{12})\.xml$")
MAX_ENTRIES = 5000  # more than a desk phone's remote phone book keeps
KIND_SHOWN = {"work": "", "mobile": "mobile", "home": "home", "fax": "fax", "other": "other"}


def dialable(number: str) -> str:
    return re.sub(r"[^0-9+*#]", "", number)


def _book(data_dir: Path, login: str | None) -> list[dict]:
    personal = contacts.read_book(data_dir, login) if login and contacts.LOGIN.match(login) else []
    return (personal + contacts.read_book(data_dir))[:MAX_ENTRIES]


def yealink(data_dir: Path, login: str | None) -> str:
    """Up to three numbers per entry, as Yealink phones show them."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<YealinkIPPhoneDirectory>"]
    for c in _book(data_dir, login):
        numbers = "".join(f"<Telephone>{escape(dialable(n))}</Telephone>" for _k, n in c["phones"][:3])
        out.append(f"<DirectoryEntry><Name>{escape(c['name'] or c['company'])}</Name>{numbers}</DirectoryEntry>")
    return "\n".join(out + ["</YealinkIPPhoneDirectory>", ""])


def snom(data_dir: Path, login: str | None) -> str:
    """One entry per number (Snom's directory has one number per entry), its kind after the name."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<SnomIPPhoneDirectory>", "<Title>Contacts</Title>"]
    for c in _book(data_dir, login):
        for kind, number in c["phones"]:
            name = c["name"] or c["company"]
            name = f"{name} ({KIND_SHOWN[kind]})" if KIND_SHOWN.get(kind) else name
            out.append(f"<DirectoryEntry><Name>{escape(name)}</Name>"
                       f"<Telephone>{escape(dialable(number))}</Telephone></DirectoryEntry>")
    return "\n".join(out + ["</SnomIPPhoneDirectory>", ""])


_rendered: dict[tuple, tuple[tuple, str]] = {}  # (format, data dir, login) -> (books' stat, XML)


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return ()
    return st.st_ino, st.st_size, st.st_mtime_ns


def render(model: str, data_dir: Path, login: str | None) -> str:
    """The phone book XML, rendered again only when a book changed (phones boot together)."""
    kind = "snom" if model == "snom" else "yealink"
    login = login if login and contacts.LOGIN.match(login) else None
    stamp = (_stamp(contacts.book_path(data_dir)), _stamp(contacts.book_path(data_dir, login)) if login else ())
    key = (kind, str(data_dir), login)
    cached = _rendered.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    body = (snom if kind == "snom" else yealink)(data_dir, login)
    _rendered[key] = (stamp, body)
    return body


@dataclass
class BookLink:
    """Where a phone fetches its phone book, and the provisioning account it signs in with there (the one
    its own file needs; empty without authentication)."""

    url: str
    user: str = ""
    password: str = ""

    def url_with_credentials(self) -> str:
        """The URL with the account in it (scheme://user:password@host/...), the form Yealink phones take."""
        if not self.user:
            return self.url
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{rest}"


def link(base_url: str, digits: str, user: str = "", password: str = "") -> BookLink:
    return BookLink(f"{base_url}/phonebook-{digits}.xml", user, password)


def yealink_lines(book: BookLink) -> str:
    """The lines of a Yealink phone's file that make it fetch its phone book."""
    return (f"remote_phonebook.data.1.url = {book.url_with_credentials()}\n"
            "remote_phonebook.data.1.name = Contacts\nfeatures.remote_phonebook.enable = 1\n")
