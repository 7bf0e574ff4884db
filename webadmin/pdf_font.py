"""TrueType fonts embedded in a PDF as CID fonts (Type0, Identity-H), subset to the glyphs a document uses,
so any Unicode text (Chinese names too) prints and can be extracted (a ToUnicode map).

Each character takes the first font that has it: Debian's DejaVu Sans (fonts-dejavu-core: Latin, Greek,
Cyrillic...), then Droid Sans Fallback (fonts-droid-fallback: Chinese, Japanese, Korean). Without them the
caller falls back to the standard Helvetica in WinAnsi.
"""
from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

FONT_PATHS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
              Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"))
KEPT_TABLES = (b"cvt ", b"fpgm", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp", b"prep")
MAX_FONT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class TrueType:
    tables: dict[bytes, bytes]
    cmap: dict[int, int]          # code point -> glyph id
    advances: tuple[int, ...]     # per glyph, in font units
    units_per_em: int
    glyph_offsets: tuple[int, ...]  # loca, num_glyphs + 1 entries

    def glyph(self, gid: int) -> bytes:
        if gid + 1 >= len(self.glyph_offsets):
            return b""
        return self.tables[b"glyf"][self.glyph_offsets[gid]:self.glyph_offsets[gid + 1]]

    def width(self, gid: int) -> int:
        """The advance in PDF text space units (1/1000 em)."""
        advance = self.advances[min(gid, len(self.advances) - 1)]
        return round(advance * 1000 / self.units_per_em)


def installed() -> list[TrueType]:
    """The fonts of FONT_PATHS that are installed, in order."""
    return [font for font in map(load, FONT_PATHS) if font is not None]


@functools.lru_cache(maxsize=4)
def load(path: Path) -> TrueType | None:
    """The parsed font, or None when it is not installed or not a TrueType font with glyf outlines."""
    try:
        if path.stat().st_size > MAX_FONT_BYTES:
            return None
        data = path.read_bytes()
        return _parse(data)
    except (OSError, struct.error, KeyError, ValueError):
        return None


def _parse(data: bytes) -> TrueType:
    if data[:4] not in (b"\x00\x01\x00\x00", b"true"):
        raise ValueError("not a TrueType font")
    count = struct.unpack_from(">H", data, 4)[0]
    tables = {}
    for i in range(count):
        tag, _checksum, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        tables[tag] = data[offset:offset + length]
    head, hhea, maxp = tables[b"head"], tables[b"hhea"], tables[b"maxp"]
    units = struct.unpack_from(">H", head, 18)[0]
    long_loca = struct.unpack_from(">h", head, 50)[0] == 1
    glyphs = struct.unpack_from(">H", maxp, 4)[0]
    metrics = struct.unpack_from(">H", hhea, 34)[0]
    advances = struct.unpack_from(f">{2 * metrics}H", tables[b"hmtx"], 0)[0::2]
    loca = tables[b"loca"]
    if long_loca:
        offsets = struct.unpack_from(f">{glyphs + 1}I", loca, 0)
    else:
        offsets = tuple(2 * o for o in struct.unpack_from(f">{glyphs + 1}H", loca, 0))
    return TrueType(tables, _cmap(tables[b"cmap"]), advances, units, offsets)


def _cmap(table: bytes) -> dict[int, int]:
    count = struct.unpack_from(">H", table, 2)[0]
    subtables = {}
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", table, 4 + 8 * i)
        subtables[(platform, encoding)] = offset
    if (3, 10) in subtables and struct.unpack_from(">H", table, subtables[(3, 10)])[0] == 12:
        return _format12(table, subtables[(3, 10)])
    for key in ((3, 1), (0, 3), (0, 4)):
        if key in subtables:
            fmt = struct.unpack_from(">H", table, subtables[key])[0]
            if fmt == 4:
                return _format4(table, subtables[key])
            if fmt == 12:
                return _format12(table, subtables[key])
    raise ValueError("no Unicode cmap")


def _format4(table: bytes, at: int) -> dict[int, int]:
    segments = struct.unpack_from(">H", table, at + 6)[0] // 2
    ends = struct.unpack_from(f">{segments}H", table, at + 14)
    starts = struct.unpack_from(f">{segments}H", table, at + 16 + 2 * segments)
    deltas = struct.unpack_from(f">{segments}h", table, at + 16 + 4 * segments)
    ranges_at = at + 16 + 6 * segments
    ranges = struct.unpack_from(f">{segments}H", table, ranges_at)
    out = {}
    for i in range(segments):
        for code in range(starts[i], ends[i] + 1):
            if code == 0xFFFF:
                continue
            if ranges[i] == 0:
                gid = (code + deltas[i]) & 0xFFFF
            else:
                where = ranges_at + 2 * i + ranges[i] + 2 * (code - starts[i])
                gid = struct.unpack_from(">H", table, where)[0]
                gid = (gid + deltas[i]) & 0xFFFF if gid else 0
            if gid:
                out[code] = gid
    return out


def _format12(table: bytes, at: int) -> dict[int, int]:
    groups = struct.unpack_from(">I", table, at + 12)[0]
    out = {}
    for i in range(groups):
        start, end, gid = struct.unpack_from(">III", table, at + 16 + 12 * i)
        for code in range(start, min(end, start + 0x10000) + 1):
            out[code] = gid + code - start
    return out


def _components(glyph: bytes) -> list[int]:
    """The glyphs a composite glyph is built of."""
    if len(glyph) < 10 or struct.unpack_from(">h", glyph, 0)[0] >= 0:
        return []
    found, at = [], 10
    while at + 4 <= len(glyph):
        flags, gid = struct.unpack_from(">HH", glyph, at)
        found.append(gid)
        at += 4 + (4 if flags & 0x1 else 2)
        at += 2 if flags & 0x8 else 4 if flags & 0x40 else 8 if flags & 0x80 else 0
        if not flags & 0x20:
            break
    return found


def subset(font: TrueType, used: set[int]) -> bytes:
    """A TrueType program with the same glyph ids where only `used` (and their components) keep outlines."""
    keep, todo = {0}, list(used)
    while todo:
        gid = todo.pop()
        if gid not in keep and gid + 1 < len(font.glyph_offsets):
            keep.add(gid)
            todo += _components(font.glyph(gid))
    glyf, offsets = bytearray(), []
    for gid in range(len(font.glyph_offsets) - 1):
        offsets.append(len(glyf))
        if gid in keep:
            glyf += font.glyph(gid)
            glyf += b"\0" * (-len(glyf) % 4)
    offsets.append(len(glyf))
    tables = {tag: font.tables[tag] for tag in KEPT_TABLES if tag in font.tables}
    tables[b"glyf"] = bytes(glyf)
    tables[b"loca"] = struct.pack(f">{len(offsets)}I", *offsets)
    head = bytearray(tables[b"head"])
    head[8:12] = b"\0\0\0\0"           # checkSumAdjustment: not recomputed
    head[50:52] = struct.pack(">h", 1)  # long loca offsets
    tables[b"head"] = bytes(head)
    return _sfnt(tables)


def _sfnt(tables: dict[bytes, bytes]) -> bytes:
    tags = sorted(tables)
    power = 1
    while power * 2 <= len(tags):
        power *= 2
    out = bytearray(struct.pack(">IHHHH", 0x00010000, len(tags), power * 16, power.bit_length() - 1,
                                len(tags) * 16 - power * 16))
    offset = 12 + 16 * len(tags)
    body = bytearray()
    for tag in tags:
        data = tables[tag]
        padded = data + b"\0" * (-len(data) % 4)
        checksum = sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF
        out += struct.pack(">4sIII", tag, checksum, offset + len(body), len(data))
        body += padded
    return bytes(out + body)


class FontUse:
    """The glyphs one document shows, for its text strings and its font objects."""

    def __init__(self, fonts: list[TrueType]) -> None:
        self.fonts = fonts
        self.used: list[dict[int, int]] = [{} for _ in fonts]  # per font: glyph id -> a code point it shows

    def runs(self, text: str) -> list[tuple[int, str]]:
        """(font index, PDF hex string of glyph ids) runs; a character no font has shows as the first's
        missing glyph."""
        runs: list[tuple[int, list[int]]] = []
        for char in text:
            index, gid = next(((i, f.cmap[ord(char)]) for i, f in enumerate(self.fonts) if ord(char) in f.cmap),
                              (0, 0))
            self.used[index].setdefault(gid, ord(char))
            if runs and runs[-1][0] == index:
                runs[-1][1].append(gid)
            else:
                runs.append((index, [gid]))
        return [(index, "<" + "".join(f"{g:04X}" for g in gids) + ">") for index, gids in runs]

    def objects(self, first: int) -> tuple[list[bytes], bytes]:
        """The objects of the fonts used, numbered from `first`, and the page resources' font dictionary."""
        objects, names = [], []
        for index, font in enumerate(self.fonts):
            if self.used[index]:
                names.append(b"/F%d %d 0 R" % (index + 1, first + len(objects)))
                objects += _font_objects(font, self.used[index], first + len(objects), index + 1)
        return objects, b"<< " + b" ".join(names) + b" >>"


def _font_objects(font: TrueType, used_codes: dict[int, int], first: int, number: int) -> list[bytes]:
    """A Type0 font (object `first`) and the objects it refers to."""
    used = sorted(used_codes)
    name = b"/OBXFont%d" % number
    program = zlib.compress(subset(font, set(used)), 6)
    widths = " ".join(f"{g} [{font.width(g)}]" for g in used)
    tounicode = _to_unicode({g: c for g, c in used_codes.items() if g})
    bbox = struct.unpack_from(">4h", font.tables[b"head"], 36)
    scale = 1000 / font.units_per_em
    ascent, descent = struct.unpack_from(">2h", font.tables[b"hhea"], 4)
    return [
        b"<< /Type /Font /Subtype /Type0 /BaseFont %s /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (name, first + 1, first + 3),
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont %s /CIDToGIDMap /Identity "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor %d 0 R /DW 1000 /W [%s] >>" % (name, first + 2, widths.encode()),
        b"<< /Type /FontDescriptor /FontName %s /Flags 4 /FontBBox [%s] /ItalicAngle 0 "
        b"/Ascent %d /Descent %d /CapHeight %d /StemV 80 /FontFile2 %d 0 R >>" % (
            name, " ".join(str(round(v * scale)) for v in bbox).encode(), round(ascent * scale),
            round(descent * scale), round(ascent * scale), first + 4),
        stream_object(tounicode.encode(), compress=False),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(program) + program + b"\nendstream",
    ]


def _to_unicode(codes: dict[int, int]) -> str:
    lines = ["/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
             "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
             "/CMapName /OBX-UCS def /CMapType 2 def",
             "1 begincodespacerange <0000> <FFFF> endcodespacerange"]
    items = sorted(codes.items())
    for i in range(0, len(items), 100):
        chunk = items[i:i + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        lines += [f"<{g:04X}> <{chr(c).encode('utf-16-be').hex().upper()}>" for g, c in chunk]
        lines.append("endbfchar")
    lines += ["endcmap CMapName currentdict /CMap defineresource pop end end"]
    return "\n".join(lines)


def stream_object(data: bytes, compress: bool = True) -> bytes:
    if compress:
        data = zlib.compress(data, 6)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
