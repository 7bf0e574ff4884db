"""IMAP FETCH: message data items, body sections and MIME parts (RFC 3501 6.4.5)."""
from __future__ import annotations

import asyncio
import re

from services.mail import imapmime
from services.mail.imapwire import Bad, ParseError, header_fields, internal_date, literal, split_message, tokenize

MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
          "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
          "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
SECTION = re.compile(r"^((?:\d+\.)*\d+)?\.?(.*)$", re.S)


class FetchCommands:
    """FETCH and UID FETCH for ImapSession."""

    async def cmd_FETCH(self, tag: str, args: list, by_uid: bool = False) -> None:
        self._need_selected()
        if len(args) != 2:
            raise Bad("usage: FETCH set items")
        items = args[1] if isinstance(args[1], list) else [args[1]]
        if len(items) == 1 and isinstance(items[0], str) and items[0].upper() in MACROS:
            items = MACROS[items[0].upper()]
        names = []
        for item in items:
            if not isinstance(item, str):
                raise Bad("invalid fetch item")
            names.append(item)
        if by_uid and not any(n.upper() == "UID" for n in names):
            names.insert(0, "UID")
        for seq in self._targets(args[0], by_uid):
            await self._fetch_one(seq, names)
        await self.send(f"{tag} OK FETCH completed\r\n")

    async def _fetch_one(self, seq: int, names: list[str]) -> None:
        uid = self.uids[seq - 1]
        entry = self.entries[uid]
        data: bytes | None = None
        parts: list[bytes] = []
        mark_seen = False
        for name in names:
            upper = name.upper()
            if upper == "UID":
                parts.append(b"UID %d" % uid)
            elif upper == "FLAGS":
                continue  # added last, after a possible \Seen change
            elif upper == "INTERNALDATE":
                try:
                    mtime = entry.path.stat().st_mtime
                except FileNotFoundError:
                    mtime = 0
                parts.append(f"INTERNALDATE {internal_date(mtime)}".encode())
            elif upper == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % entry.size)
            elif upper in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
                if data is None:
                    data = await asyncio.to_thread(self._read, entry)
                    if data is None:
                        return
                tree = imapmime.parse(data)
                if upper == "ENVELOPE":
                    parts.append(b"ENVELOPE " + imapmime.envelope(tree))
                else:
                    parts.append(upper.encode() + b" " + imapmime.bodystructure(tree, upper == "BODYSTRUCTURE"))
            elif upper in ("RFC822", "RFC822.HEADER", "RFC822.TEXT") or upper.startswith(("BODY[", "BODY.PEEK[")):
                if data is None:
                    data = await asyncio.to_thread(self._read, entry)
                    if data is None:
                        return  # vanished: reported as EXPUNGE at the next NOOP
                label, value = self._section(upper, name, data)
                parts.append(label.encode() + b" " + literal(value))
                mark_seen |= not upper.startswith(("BODY.PEEK", "RFC822.HEADER"))
            else:
                raise Bad(f"unsupported fetch item {name}")
        if mark_seen and not self.readonly and "S" not in entry.flags:
            try:
                entry = await asyncio.to_thread(self.maildir.set_flags, entry, entry.flags + "S")
                self.entries[uid] = entry
            except FileNotFoundError:
                pass
        if any(n.upper() == "FLAGS" for n in names) or mark_seen:
            parts.append(f"FLAGS ({' '.join(entry.imap_flags())})".encode())
        await self.send(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")

    @staticmethod
    def _section(upper: str, name: str, data: bytes) -> tuple[str, bytes]:
        if upper == "RFC822":
            return "RFC822", data
        head, body = split_message(data)
        if upper == "RFC822.HEADER":
            return "RFC822.HEADER", head
        if upper == "RFC822.TEXT":
            return "RFC822.TEXT", body
        inner = name[name.index("[") + 1:name.rindex("]")]
        partial = name[name.rindex("]") + 1:]
        match = SECTION.match(inner)
        numbers = [int(n) for n in match[1].split(".")] if match[1] else []
        rest = match[2].upper()
        root = imapmime.parse(data)
        part = imapmime.find(root, numbers) if numbers else root
        if part is None:
            raise Bad(f"no body part [{inner}]")
        if numbers and rest in ("", "MIME"):
            value = part.body if rest == "" else part.header
        else:
            if numbers and part.inner is None:
                raise Bad(f"[{inner}]: HEADER and TEXT apply to a message part only")
            target = part.inner if numbers else part
            if rest == "":
                value = data
            elif rest == "HEADER":
                value = target.header
            elif rest == "TEXT":
                value = target.body
            elif rest.startswith(("HEADER.FIELDS ", "HEADER.FIELDS.NOT ")):
                try:
                    fields = tokenize(match[2].split(" ", 1)[1].encode())[0]
                except (ParseError, IndexError):
                    raise Bad("invalid header field list") from None
                if not isinstance(fields, list):
                    raise Bad("invalid header field list")
                value = header_fields(target.header, [str(f) for f in fields], rest.startswith("HEADER.FIELDS.NOT"))
            else:
                raise Bad(f"unsupported body section [{inner}]")
        label = f"BODY[{inner}]"
        if partial:
            try:
                start, _, length = partial.strip("<>").partition(".")
                start_n = int(start)
                value = value[start_n:start_n + int(length)] if length else value[start_n:]
            except ValueError:
                raise Bad("invalid partial range") from None
            label += f"<{start_n}>"
        return label, value

    async def cmd_UID_FETCH(self, tag: str, args: list) -> None:
        await self.cmd_FETCH(tag, args, by_uid=True)
