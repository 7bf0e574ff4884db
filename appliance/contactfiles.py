"""Contact files: vCard 2.1/3.0/4.0 and CSV read into contacts (appliance/contacts.py entries), CSV written.

vCard: several cards per file, folded lines, quoted-printable (with soft line breaks and its CHARSET),
escaped \\, \\; \\n, FN (else N), ORG (its first part), TEL with its TYPE (work, cell, home, fax; vCard 4's
tel: URIs), EMAIL. CSV: UTF-8 with or without BOM, comma or semicolon, the first line names the columns
(English, French and Chinese names of the usual exports: Outlook, Google, phones). A file that cannot be
read raises ContactError with the line; cards or rows without a phone number are counted as skipped."""
from __future__ import annotations

import csv
import io
import quopri
import re

from appliance.contacts import ContactError
from appliance.usercsv import Text

MAX_BYTES = 4 * 1024 * 1024
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TEL_KINDS = {"cell": "mobile", "mobile": "mobile", "home": "home", "fax": "fax", "work": "work"}
CSV_KINDS = ("work", "mobile", "home", "fax", "other")
COLUMNS = {  # a header, lower case, only letters and digits kept -> field
    "name": "name", "fullname": "name", "fn": "name", "displayname": "name", "nom": "name", "nomcomplet": "name",
    "姓名": "name", "名稱": "name", "名字": "name",
    "firstname": "given", "givenname": "given", "prénom": "given", "prenom": "given", "名": "given",
    "lastname": "family", "familyname": "family", "surname": "family", "nomdefamille": "family", "姓": "family",
    "company": "company", "organization": "company", "organisation": "company", "org": "company",
    "société": "company", "societe": "company", "entreprise": "company", "公司": "company",
    "email": "email", "emailaddress": "email", "mail": "email", "courriel": "email", "電子郵件": "email",
    "phone": "work", "telephone": "work", "téléphone": "work", "tel": "work", "work": "work",
    "workphone": "work", "businessphone": "work", "phonework": "work", "電話": "work", "公司電話": "work",
    "mobile": "mobile", "mobilephone": "mobile", "cell": "mobile", "cellphone": "mobile", "portable": "mobile",
    "téléphoneportable": "mobile", "手機": "mobile",
    "home": "home", "homephone": "home", "domicile": "home", "住家電話": "home",
    "fax": "fax", "businessfax": "fax", "télécopie": "fax", "傳真": "fax", "other": "other", "otherphone": "other",
}


def decode(data: bytes) -> str:
    if not data.strip():
        raise ContactError(Text("the file is empty"))
    if len(data) > MAX_BYTES:
        raise ContactError(Text("the file is larger than %(kb)d KB; split it into smaller files", kb=MAX_BYTES // 1024))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ContactError(Text("the file is not UTF-8 text (export it again as UTF-8)")) from None


# -- vCard ------------------------------------------------------------------------------------------
def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, content line): folded lines joined, quoted-printable soft breaks too."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line[1:])
        elif out and out[-1][1].endswith("=") and "QUOTED-PRINTABLE" in out[-1][1].split(":", 1)[0].upper():
            out[-1] = (out[-1][0], out[-1][1][:-1] + "=\n" + line.lstrip())
        elif line.strip():
            out.append((number, line))
    return out


def _split(line: str) -> tuple[str, dict[str, list[str]], str]:
    """'item1.TEL;TYPE=work,voice:+33 1' -> ('TEL', {'TYPE': ['work', 'voice']}, '+33 1')."""
    quoted, colon = False, -1
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            colon = i
            break
    if colon < 0:
        raise ValueError(Text("no “:” between the property and its value"))
    head, value = line[:colon], line[colon + 1:]
    name, *raw = head.split(";")
    params: dict[str, list[str]] = {}
    for param in raw:
        key, _, val = param.partition("=")
        if not _:
            key, val = "TYPE", key  # vCard 2.1: TEL;CELL;VOICE
        params.setdefault(key.strip().upper(), []).extend(v.strip('"').lower() for v in val.split(","))
    return name.rsplit(".", 1)[-1].strip().upper(), params, value


def _text(value: str, params: dict[str, list[str]]) -> str:
    if "quoted-printable" in params.get("ENCODING", []):
        charset = (params.get("CHARSET") or ["utf-8"])[0]
        try:
            value = quopri.decodestring(value.replace("=\n", "=\r\n").encode("latin-1", "replace")).decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise ValueError(Text("its quoted-printable text cannot be decoded")) from None
    return value


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _components(value: str) -> list[str]:
    return [_unescape(p).strip() for p in re.split(r"(?<!\\);", value)]


def _card(props: list[tuple[str, dict, str]]) -> dict:
    entry: dict = {"name": "", "company": "", "email": "", "phones": []}
    family = given = ""
    for name, params, value in props:
        if name == "FN":
            entry["name"] = _unescape(value).strip()
        elif name == "N":
            parts = _components(value) + ["", ""]
            family, given = parts[0], parts[1]
        elif name == "ORG":
            entry["company"] = _components(value)[0]
        elif name == "EMAIL" and not entry["email"]:
            entry["email"] = _unescape(value).strip()
        elif name == "TEL":
            number = value.strip()
            number = number[4:] if number.lower().startswith("tel:") else number
            types = params.get("TYPE", [])
            kinds = {TEL_KINDS[t] for t in types if t in TEL_KINDS}
            kind = next((k for k in ("fax", "mobile", "home") if k in kinds), "work")
            entry["phones"].append([kind, number.split(";")[0]])
    if not entry["name"]:
        entry["name"] = " ".join(p for p in (given, family) if p)
    return entry


def read_vcards(text: str) -> tuple[list[dict], int]:
    """(contacts with a phone number, how many cards had none)."""
    cards: list[dict] = []
    skipped = 0
    props: list | None = None
    start = 0
    for number, line in _logical_lines(text):
        try:
            name, params, value = _split(line)
            value = _text(value, params)
        except ValueError as exc:
            raise ContactError(Text("line %(line)d cannot be read: %(reason)s", line=number,
                                    reason=exc.args[0])) from None
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            if props is not None:
                raise ContactError(Text("line %(line)d: a card begins inside the card of line %(start)d", line=number,
                                         start=start))
            props, start = [], number
        elif name == "END" and value.strip().upper() == "VCARD":
            if props is None:
                raise ContactError(Text("line %(line)d: END:VCARD without BEGIN:VCARD", line=number))
            entry = _card(props)
            if entry["phones"] and (entry["name"] or entry["company"]):
                cards.append(entry)
            else:
                skipped += 1
            props = None
        elif props is None:
            raise ContactError(Text("line %(line)d is outside a card (BEGIN:VCARD ... END:VCARD)", line=number))
        else:
            props.append((name, params, value))
    if props is not None:
        raise ContactError(Text("the card of line %(line)d has no END:VCARD (the file is cut short)", line=start))
    if not cards and not skipped:
        raise ContactError(Text("the file holds no vCard (BEGIN:VCARD)"))
    return cards, skipped


# -- CSV --------------------------------------------------------------------------------------------
def _column(header: str) -> str | None:
    key = re.sub(r"[^\w]", "", header.strip().casefold().replace("_", ""))
    return COLUMNS.get(key)


def read_csv(text: str) -> tuple[list[dict], int]:
    """(contacts with a phone number, how many rows had none)."""
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ContactError(Text("the file is not a readable CSV file (%(reason)s); check its quotes",
                                reason=str(exc))) from None
    if not rows:
        raise ContactError(Text("the file is empty"))
    fields = [_column(h) for h in rows[0]]
    if not any(f in CSV_KINDS for f in fields) or not any(f in ("name", "given", "family", "company") for f in fields):
        raise ContactError(Text("the first line must name the columns: a name (or company) and a phone number "
                                "(e.g. name;company;phone;mobile)"))
    contacts, skipped = [], 0
    for line, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(fields):
            raise ContactError(Text("line %(line)d has more cells than the first line has columns", line=line))
        values: dict[str, str] = {}
        phones = []
        for field, cell in zip(fields, row, strict=False):
            cell = cell.strip().removeprefix("'")
            if field in CSV_KINDS:
                phones += [[field, n.strip()] for n in cell.split("|") if n.strip()]
            elif field and cell:
                values.setdefault(field, cell)
        name = values.get("name") or " ".join(p for p in (values.get("given"), values.get("family")) if p)
        if not phones or not (name or values.get("company")):
            skipped += 1
            continue
        contacts.append({"name": name, "company": values.get("company", ""), "email": values.get("email", ""),
                         "phones": phones, "line": line})
    return contacts, skipped


def read_file(data: bytes, filename: str = "") -> tuple[list[dict], int]:
    """A vCard or CSV upload (by its content, else its name) -> (contacts, skipped)."""
    text = decode(data)
    if text.lstrip()[:11].upper() == "BEGIN:VCARD" or filename.lower().endswith((".vcf", ".vcard")):
        return read_vcards(text)
    return read_csv(text)


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def export_csv(contacts: list[dict], delimiter: str = ",") -> str:
    """UTF-8 with BOM (Excel), one column per kind of number (several joined by ' | ')."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["name", "company", "email", *CSV_KINDS])
    for c in contacts:
        numbers = [" | ".join(n for k, n in c["phones"] if k == kind) for kind in CSV_KINDS]
        writer.writerow([_safe(c["name"]), _safe(c["company"]), _safe(c["email"]), *map(_safe, numbers)])
    return out.getvalue()
