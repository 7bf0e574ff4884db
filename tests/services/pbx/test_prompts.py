"""Prompts: generated with espeak-ng and measured (rate, duration, speech energy), number rules by
language, fallback, the cache, and uploads converted with sox or refused with the reason."""
from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from services.pbx.prompts import AudioError, PromptError, PromptLibrary, PromptsUnavailable, audio, catalogue, library
from services.pbx.prompts.numbers import digit_keys, number_keys, number_words

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox are needed")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    lib = PromptLibrary(tmp_path_factory.mktemp("box"), "en")
    lib.ensure()
    return lib


def speech_frames(path) -> float:
    """Share of 20 ms frames above -45 dBFS: speech has pauses between words, a tone or noise has none."""
    rate, data = audio.samples(path)
    step = rate // 50
    frames = [audio.dbfs(data[i:i + step]) for i in range(0, len(data) - step, step)]
    return sum(f > -45 for f in frames) / len(frames)


def test_every_prompt_is_speech_at_both_rates(lib):
    for lang in catalogue.LANGUAGES:
        for key, text in catalogue.entries(lang).items():
            spoken = text[1] if isinstance(text, tuple) else text
            narrow = lib.prompt_path(key, lang, 8000)
            rate, data = audio.samples(narrow)
            assert rate == 8000, narrow
            seconds = len(data) / rate
            words = len(spoken.split())
            # espeak at 140-150 words a minute: 0.15 to 1.2 s a word (pinyin: a syllable), plus the pauses
            assert 0.15 * words <= seconds <= 0.9 + 1.2 * words, (lang, key, seconds)
            assert audio.loudest_second(narrow) > -30, (lang, key)
            if words >= 4:
                assert 0.3 < speech_frames(narrow) < 0.97, (lang, key)
            wide = lib.prompt_path(key, lang, 16000)
            assert audio.samples(wide)[0] == 16000
            assert abs(audio.duration(wide) - seconds) < 0.01


def band_dbfs(path, *effects: str) -> float:
    """RMS level (dBFS) of a file after sox effects (a filter), read from `sox ... stat`."""
    out = subprocess.run(["sox", str(path), "-n", *effects, "stat"], capture_output=True, text=True, timeout=30)
    rms = float(next(line for line in out.stderr.splitlines() if line.startswith("RMS     amplitude")).split()[-1])
    return 20 * math.log10(rms) if rms else float("-inf")


def test_wideband_prompts_keep_what_is_above_the_telephone_band(lib):
    """The 16 kHz file is not an upsampled 8 kHz one: the speech has energy between 4.5 and 7.5 kHz."""
    wide = lib.prompt_path("vm-leave-message", "en", 16000)
    narrow = lib.prompt_path("vm-leave-message", "en", 8000)
    high = ("rate", "16000", "sinc", "4500-7500")
    assert band_dbfs(wide) - band_dbfs(wide, *high) < 30
    assert band_dbfs(narrow) - band_dbfs(narrow, *high) > 60


def test_languages_are_spoken_by_their_own_voice(lib):
    """The French and Chinese files are other recordings than the English one (not a fallback)."""
    paths = {lang: lib.prompt_path("vm-leave-message", lang) for lang in catalogue.LANGUAGES}
    assert {p.parent.name for p in paths.values()} == set(catalogue.LANGUAGES)
    lengths = {lang: audio.duration(p) for lang, p in paths.items()}
    assert len({round(v, 2) for v in lengths.values()}) == 3


def test_french_numbers():
    assert number_keys(70, "fr") == ["num-60", "num-10"]
    assert number_keys(71, "fr") == ["num-60", "num-et", "num-11"]
    assert number_keys(77, "fr") == ["num-60", "num-10", "num-7"]
    assert number_keys(21, "fr") == ["num-20", "num-et", "num-1"]
    assert number_keys(80, "fr") == ["num-80"]
    assert number_keys(81, "fr") == ["num-80", "num-1"]
    assert number_keys(91, "fr") == ["num-80", "num-11"]
    assert number_keys(99, "fr") == ["num-80", "num-10", "num-9"]
    assert number_keys(1000, "fr") == ["num-1000"]
    assert number_keys(2_000_000, "fr") == ["num-2", "num-1000000"]
    words = {n: number_words(n, "fr") for n in (17, 70, 71, 80, 81, 90, 200, 201, 280, 80_000, 200_000,
                                                 2_000_000, 200_000_000, 1999)}
    assert words == {17: "dix-sept", 70: "soixante-dix", 71: "soixante et onze", 80: "quatre-vingts",
                     81: "quatre-vingt-un", 90: "quatre-vingt-dix", 200: "deux cents", 201: "deux cent un",
                     280: "deux cent quatre-vingts", 80_000: "quatre-vingt mille", 200_000: "deux cent mille",
                     2_000_000: "deux millions", 200_000_000: "deux cents millions",
                     1999: "mille neuf cent quatre-vingt-dix-neuf"}


def test_chinese_numbers_as_said_in_taiwan():
    words = {n: number_words(n, "zh-TW") for n in (0, 2, 10, 15, 20, 22, 105, 110, 200, 1005, 1010, 2000, 10_000,
                                                    12_345, 20_000, 100_000, 100_500, 120_000, 2_000_000,
                                                    200_000_000, 100_010_000)}
    assert words == {0: "零", 2: "二", 10: "十", 15: "十五", 20: "二十", 22: "二十二", 105: "一百零五",
                     110: "一百一十", 200: "兩百", 1005: "一千零五", 1010: "一千零一十", 2000: "兩千",
                     10_000: "一萬", 12_345: "一萬兩千三百四十五", 20_000: "兩萬", 100_000: "十萬",
                     100_500: "十萬零五百", 120_000: "十二萬", 2_000_000: "兩百萬", 200_000_000: "兩億",
                     100_010_000: "一億零一萬"}
    assert number_keys(12_345, "zh-TW") == ["num-1", "num-10000", "num-2-liang", "num-1000", "num-3", "num-100",
                                            "num-4", "num-10", "num-5"]


def test_counted_things():
    """您有兩則新留言 / vingt et une minutes: the noun that follows changes the number."""
    assert number_keys(2, "zh-TW", counting=True) == ["num-2-liang"]
    assert [number_words(n, "zh-TW", counting=True) for n in (2, 12, 102, 22)] == ["兩", "十二", "一百零二", "二十二"]
    assert number_keys(2, "zh-TW") == ["num-2"]
    assert [number_words(n, "fr", feminine=True) for n in (1, 21, 71, 81, 2)] == \
        ["une", "vingt et une", "soixante et onze", "quatre-vingt-une", "deux"]
    assert number_keys(21, "fr", feminine=True) == ["num-20", "num-et", "num-1-f"]


def test_english_numbers():
    assert number_words(105, "en") == "one hundred and five"
    assert number_words(2_021, "en") == "two thousand and twenty-one"
    assert number_keys(42, "en") == ["num-40", "num-2"]


def test_every_key_the_rules_use_is_in_the_catalogue():
    samples = [*range(0, 1200), *range(1200, 10 ** 6, 997), 10 ** 6, 10 ** 9, 10 ** 12 - 1, 2 * 10 ** 8]
    for lang in catalogue.LANGUAGES:
        known = catalogue.entries(lang)
        used = {key for n in samples for flags in ((False, False), (True, True))
                for key in number_keys(n, lang, *flags)} | set(digit_keys("0123456789*#", lang))
        assert used <= set(known), (lang, used - set(known))
    with pytest.raises(ValueError):
        number_keys(-1, "fr")
    with pytest.raises(ValueError):
        digit_keys("12a", "en")


def test_say_number_and_digits_give_the_files_in_order(lib):
    files = lib.say_number(71, "fr", 16000)
    assert [f.name for f in files] == ["num-60-16000.wav", "num-et-16000.wav", "num-11-16000.wav"]
    assert all(f.parent.name == "fr" for f in files)
    assert [f.name for f in lib.say_digits("20#", "zh-TW")] == ["num-2-8000.wav", "num-0-8000.wav",
                                                                "hash-8000.wav"]
    assert sum(audio.duration(f) for f in files) > 1.0


def test_fallback_to_the_box_language(lib, tmp_path):
    assert lib.prompt_path("goodbye", "de").parent.name == "en"
    assert lib.prompt_path("goodbye", "fr-CA").parent.name == "fr"
    assert lib.prompt_path("goodbye", "zh_tw").parent.name == "zh-TW"
    french_box = PromptLibrary(lib.cache_root.parents[2], "fr")
    assert french_box.prompt_path("goodbye", "de").parent.name == "fr"
    assert [f.parent.name for f in french_box.say_number(3, "es")] == ["fr"]
    with pytest.raises(PromptError, match="no prompt"):
        lib.prompt_path("no-such-prompt", "en")
    with pytest.raises(PromptError, match="no prompt"):
        lib.prompt_path("../fr/goodbye", "en")  # a path, not a key: refused
    with pytest.raises(PromptError, match="8000, 16000"):
        lib.prompt_path("goodbye", "en", 44100)


def test_the_set_is_made_once_per_catalogue(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "PROMPTS", {"goodbye": catalogue.PROMPTS["goodbye"]})
    monkeypatch.setattr(catalogue, "NUMBERS", {lang: {} for lang in catalogue.LANGUAGES})
    first = PromptLibrary(tmp_path, "en").ensure()
    made = first.joinpath("en", "goodbye-8000.wav").stat().st_mtime_ns
    again = PromptLibrary(tmp_path, "en").ensure()
    assert again == first and again.joinpath("en", "goodbye-8000.wav").stat().st_mtime_ns == made
    monkeypatch.setattr(catalogue, "PROMPTS", {"goodbye": ("Bye now.", *catalogue.PROMPTS["goodbye"][1:])})
    changed = PromptLibrary(tmp_path, "en").ensure()
    assert changed != first and not first.exists()
    assert [p.name for p in changed.parent.iterdir() if not p.name.startswith(".")] == [changed.name]


def test_without_espeak_the_reason_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, no sox
    with pytest.raises(PromptsUnavailable, match="cannot be made: .*espeak-ng"):
        PromptLibrary(tmp_path, "en").prompt_path("goodbye", "en")


def encode(tmp_path, name: str, *synth: str) -> tuple:
    """A file made by sox from espeak-ng speech (or a synth), in the format its name says."""
    speech = tmp_path / "source.wav"
    subprocess.run(["espeak-ng", "-v", "en-gb", "-w", str(speech), "This is our own recording of a prompt."],
                   check=True, timeout=30)
    out = tmp_path / name
    src = ["-n", "-r", "44100", "-c", "2"] if synth else [str(speech), "-r", "44100", "-c", "2"]
    subprocess.run(["sox", "-V1", *src, str(out), *synth], check=True, timeout=60)
    return out, audio.duration(speech)


@pytest.mark.parametrize("name", ["upload.mp3", "upload.ogg", "upload.wav"])
def test_an_upload_replaces_a_prompt_and_restore_brings_it_back(lib, tmp_path, name):
    upload, seconds = encode(tmp_path, name)
    generated = lib.prompt_path("goodbye", "fr")
    lib.replace("goodbye", "fr", upload)
    for rate in (8000, 16000):
        path = lib.prompt_path("goodbye", "fr", rate)
        assert path.is_relative_to(lib.custom_root) and audio.samples(path)[0] == rate
        assert abs(audio.duration(path) - seconds) < 0.15  # MP3 adds a frame of padding
        assert audio.loudest_second(path) > -25
        assert speech_frames(path) > 0.3
    assert lib.listing("fr")[[e["key"] for e in lib.listing("fr")].index("goodbye")]["custom"]
    assert lib.prompt_path("goodbye", "en") != lib.prompt_path("goodbye", "fr")
    lib.restore("goodbye", "fr")
    assert lib.prompt_path("goodbye", "fr") == generated


def test_broken_wrong_and_too_long_uploads_are_refused_with_the_reason(lib, tmp_path):
    good, _ = encode(tmp_path, "good.ogg")
    truncated = tmp_path / "truncated.ogg"
    truncated.write_bytes(good.read_bytes()[:3000])
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(bytes(range(256)) * 40)
    picture = tmp_path / "picture.wav"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    silent, _ = encode(tmp_path, "silent.wav", "trim", "0", "3")
    long, _ = encode(tmp_path, "long.mp3", "synth", "130", "pinknoise", "vol", "0.3")
    cases = {truncated: "not an Ogg Vorbis", noise: "not a WAV, MP3 or OGG", picture: "not a WAV, MP3 or OGG",
             silent: "silent", long: "longer than 2 minutes"}
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason):
            lib.replace("vm-busy", "en", path)
        assert not lib.is_custom("vm-busy", "en")
    assert [p for p in (lib.custom_root / "en").iterdir()] == []  # nothing half-written left behind
    with pytest.raises(PromptError, match="no prompt"):
        lib.replace("../../etc", "en", good)
    with pytest.raises(PromptError, match="no prompts in"):
        lib.replace("goodbye", "de", good)
    assert library.normalise_language("nl") is None
