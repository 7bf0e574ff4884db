"""Numbers and digits as sequences of prompt keys, by each language's own rules.

English (British): "one hundred and five", "twenty-one". French: 17 dix-sept, 21 vingt et un,
70 soixante-dix, 71 soixante et onze, 80 quatre-vingts, 81 quatre-vingt-un, 91 quatre-vingt-onze; cent
and quatre-vingt take their s only at the end (or before million/milliard), mille never. Chinese
(Taiwan): groups of four digits with 萬 and 億; 十 alone at the start (十五, 十萬) but 一十 inside
(一百一十); one 零 for any run of zeros inside (一千零五, 十萬零五百); 兩 for 2 before 百, 千, 萬, 億
(兩百, 兩千, 兩萬) and 二 elsewhere (二十, 十二萬).

Counting things ("you have 2 new messages"): Chinese says 兩 for a lone 2 before the measure word
(兩則, but 十二則, 一百零二則), `counting=True`; French agrees un with a feminine noun (une minute, vingt et
une secondes), `feminine=True`.

`number_keys(n, lang, ...)` -> keys; `number_words(n, lang, ...)` -> the written form (same structure).
"""
from __future__ import annotations

MAX = 10 ** 12 - 1
Words = list[tuple[str, str]]  # (prompt key, written word)


def number_keys(n: int, lang: str, counting: bool = False, feminine: bool = False) -> list[str]:
    return [key for key, _ in _spell(n, lang, counting, feminine)]


def number_words(n: int, lang: str, counting: bool = False, feminine: bool = False) -> str:
    words = _spell(n, lang, counting, feminine)
    if lang == "zh-TW":
        return "".join(w for _, w in words)
    return " ".join(w for _, w in words).replace(" -", "-")


def digit_keys(digits: str, lang: str = "en") -> list[str]:
    """One key per character of a phone number or code: 0-9, * and # (other characters refused)."""
    keys = []
    for ch in str(digits):
        if ch.isdigit() and ch.isascii():
            keys.append(f"num-{ch}")
        elif ch in "*#":
            keys.append("star" if ch == "*" else "hash")
        else:
            raise ValueError(f"{ch!r} cannot be said as a digit")
    return keys


def _spell(n: int, lang: str, counting: bool = False, feminine: bool = False) -> Words:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX:
        raise ValueError(f"numbers from 0 to {MAX} can be said, not {n!r}")
    spell = {"en": _en, "fr": _fr, "zh-TW": _zh}.get(lang)
    if spell is None:
        raise ValueError(f"no number rules for language {lang!r}")
    words = spell(n)
    if lang == "zh-TW" and counting and n == 2:
        return [("num-2-liang", "兩")]
    if lang == "fr" and feminine and words[-1][0] == "num-1":
        words[-1] = ("num-1-f", words[-1][1].replace("un", "une"))
    return words


# -- English --------------------------------------------------------------------------------------
_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
       "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10 ** 9, "billion", "milliard"), (10 ** 6, "million", "million"), (1000, "thousand", "mille"))


def _en(n: int) -> Words:
    if n < 20:
        return [(f"num-{n}", _EN[n])]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [(f"num-{tens * 10}", _EN_TENS[tens])] + ([(f"num-{ones}", "-" + _EN[ones])] if ones else [])
    for scale, name in ((10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= scale:
            high, rest = divmod(n, scale)
            words = _en(high) + [(f"num-{scale}", name)]
            if rest:
                words += ([("num-and", "and")] if rest < 100 else []) + _en(rest)
            return words
    raise AssertionError(n)


# -- French ---------------------------------------------------------------------------------------
_FR = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze", "douze",
       "treize", "quatorze", "quinze", "seize"]
_FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def _fr_below_100(n: int, last: bool) -> Words:
    """0..99; `last`: nothing follows (quatre-vingts takes its s)."""
    if n < 17:
        return [(f"num-{n}", _FR[n])]
    if n < 20:
        return [("num-10", "dix"), (f"num-{n - 10}", "-" + _FR[n - 10])]
    if n >= 80:
        rest = n - 80
        head = [("num-80", "quatre-vingts" if not rest and last else "quatre-vingt")]
        return head + [(k, "-" + w.lstrip("-")) for k, w in _fr_below_100(rest, True)] if rest else head
    tens, ones = divmod(n, 10)
    if tens == 7:
        tens, ones = 6, ones + 10
    head = [(f"num-{tens * 10}", _FR_TENS[tens])]
    if ones in (1, 11):
        return head + [("num-et", "et"), (f"num-{ones}", _FR[ones])]
    if not ones:
        return head
    return head + [(k, "-" + w.lstrip("-")) for k, w in _fr_below_100(ones, True)]


def _fr(n: int, last: bool = True) -> Words:
    for scale, _, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            if scale == 1000:  # mille never takes an s, and "un mille" is just "mille"
                words = ([] if high == 1 else _fr(high, last=False)) + [("num-1000", name)]
            else:  # million and milliard are nouns: un million, deux millions (quatre-vingts millions)
                words = _fr(high, last=True) + [(f"num-{scale}", name + ("s" if high > 1 else ""))]
            return words + (_fr(rest, last) if rest else [])
    if n >= 100:
        high, rest = divmod(n, 100)
        cent = "cents" if high > 1 and not rest and last else "cent"
        words = ([] if high == 1 else _fr_below_100(high, False)) + [("num-100", cent)]
        return words + (_fr_below_100(rest, last) if rest else [])
    return _fr_below_100(n, last)


# -- Chinese (Taiwan) -----------------------------------------------------------------------------
_ZH = "零一二三四五六七八九"
_ZH_PLACES = ((1000, "千"), (100, "百"), (10, "十"))
_ZH_GROUPS = ((10 ** 8, "億"), (10 ** 4, "萬"))


def _zh_digit(d: int, liang: bool) -> tuple[str, str]:
    return ("num-2-liang", "兩") if d == 2 and liang else (f"num-{d}", _ZH[d])


def _zh_group(g: int, first: bool) -> Words:
    """1..9999; `first`: nothing was said before it (一十 becomes 十)."""
    words: Words = []
    zero = False
    for place, char in _ZH_PLACES:
        d, g = divmod(g, place)
        if not d:
            zero = zero or bool(words)
            continue
        if zero:
            words.append(("num-0", "零"))
            zero = False
        if not (place == 10 and d == 1 and first and not words):
            words.append(_zh_digit(d, liang=place >= 100))
        words.append((f"num-{place}", char))
    if g:
        if zero:
            words.append(("num-0", "零"))
        words.append((f"num-{g}", _ZH[g]))
    return words


def _zh(n: int) -> Words:
    if n == 0:
        return [("num-0", "零")]
    words: Words = []
    for scale, char in (*_ZH_GROUPS, (1, "")):
        g, n = divmod(n, scale)
        if not g:
            continue
        if words and g < 1000:  # 十萬零五百: the zeros between two groups are said once
            words.append(("num-0", "零"))
        words += [_zh_digit(2, liang=True)] if g == 2 and scale > 1 else _zh_group(g, first=not words)
        if scale > 1:
            words.append((f"num-{scale}", char))
    return words
