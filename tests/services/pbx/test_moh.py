"""Music on hold: the built-in track is music (energy, a spread spectrum, not a tone), classes give their
files, uploads up to 10 minutes are converted once, longer or broken ones refused with the reason."""
from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from services.pbx.config import PbxConfig
from services.pbx.moh import MohLibrary, prepare_voice
from services.pbx.prompts import AudioError, PromptLibrary, audio, catalogue

pytestmark = pytest.mark.skipif(not shutil.which("sox"), reason="sox is needed")


def spectrum(path, start: float = 0.0, seconds: float = 20.0) -> dict[int, float]:
    """Mean power at 50 Hz steps from 100 to 3500 Hz (Goertzel over 40 ms windows, one every 200 ms, so
    each frequency covers a band about 25 Hz wide) over a stretch of the file."""
    rate, data = audio.samples(path)
    size = rate // 25
    windows = [data[i:i + size] for i in range(int(start * rate), int((start + seconds) * rate), rate // 5)]
    powers = {}
    for freq in range(100, 3501, 50):
        coeff = 2 * math.cos(2 * math.pi * freq / rate)
        total = 0.0
        for block in windows:
            s1 = s2 = 0.0
            for x in block:
                s1, s2 = x + coeff * s1 - s2, s1
            total += s1 * s1 + s2 * s2 - coeff * s1 * s2
        powers[freq] = total / len(windows)
    return powers


def spread(powers: dict[int, float]) -> tuple[float, int]:
    """(share of the strongest frequency, how many frequencies are within 20 dB of it)."""
    top = max(powers.values())
    return top / sum(powers.values()), sum(p > top / 100 for p in powers.values())


def sox_make(path, *effects: str, compression: str = "-1", rate: str = "44100", channels: str = "2") -> None:
    subprocess.run(["sox", "-V1", "-n", "-r", rate, "-c", channels, "-C", compression, str(path), *effects],
                   check=True, timeout=120)


def test_the_builtin_track_is_music_not_a_tone(tmp_path):
    moh = MohLibrary(tmp_path)
    for rate in (8000, 16000):
        track = moh.builtin(rate)
        assert audio.samples(track)[0] == rate
        assert 20 < audio.duration(track) < 40
        _, data = audio.samples(track)
        seconds = [audio.dbfs(data[i:i + rate]) for i in range(0, len(data) - rate, rate)]
        assert min(seconds) > -40 and max(seconds) > -25  # never a silent second
    share, strong = spread(spectrum(moh.builtin(8000)))
    assert share < 0.3 and strong >= 15  # measured: 0.2 and 36
    tone = tmp_path / "tone.wav"
    subprocess.run(["sox", "-V1", "-n", "-r", "8000", "-b", "16", "-c", "1", str(tone), "synth", "21", "sine", "440"],
                   check=True, timeout=30)
    tone_share, tone_strong = spread(spectrum(tone))  # the measure tells a tone apart
    assert tone_share > 0.6 and tone_strong < 10  # measured: 0.87 and 4
    again = MohLibrary(tmp_path).builtin(8000)
    assert again == moh.builtin(8000)


def test_classes_and_their_files(tmp_path):
    moh = MohLibrary(tmp_path)
    assert [c.name for c in PbxConfig().moh_classes] == ["default"]
    upload = tmp_path / "jingle.mp3"
    sox_make(upload, "synth", "60", "pluck", "C4", "pluck", "E4", "tremolo", "3", "vol", "0.5", compression="128")
    file_id, seconds = moh.add("sales", upload)
    assert abs(seconds - 60) < 0.2
    pbx = PbxConfig(moh_classes=[{"name": "sales", "files": [{"id": file_id, "title": "jingle.mp3",
                                                              "seconds": seconds}]}])
    assert [c.name for c in pbx.moh_classes] == ["default", "sales"]  # default is always there
    for rate in (8000, 16000):
        (played,) = moh.class_files(pbx, "sales", rate)
        assert audio.samples(played)[0] == rate and abs(audio.duration(played) - 60) < 0.2
        assert audio.loudest_second(played) > -30
    assert moh.class_files(pbx, "default") == [moh.builtin(8000)]
    assert moh.class_files(pbx, "unknown") == [moh.builtin(8000)]
    moh.remove("sales", file_id)
    assert moh.class_files(pbx, "sales") == [moh.builtin(8000)]
    with pytest.raises(ValueError, match="unique"):
        PbxConfig(moh_classes=[{"name": "a"}, {"name": "a"}])


def test_too_long_and_broken_uploads_are_refused(tmp_path):
    moh = MohLibrary(tmp_path)
    long = tmp_path / "long.ogg"
    sox_make(long, "synth", "660", "pinknoise", "vol", "0.2", rate="8000", channels="1")
    with pytest.raises(AudioError, match="longer than 10 minutes"):
        moh.add("default", long)
    almost = tmp_path / "almost.mp3"
    sox_make(almost, "synth", "590", "pinknoise", "vol", "0.2", compression="16", rate="8000", channels="1")
    _, seconds = moh.add("default", almost)
    assert 589.5 < seconds < 590.5
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8)
    with pytest.raises(AudioError) as refused:
        moh.add("default", broken)
    assert str(refused.value)
    text = tmp_path / "notes.ogg"
    text.write_text("these are not sounds at all")
    with pytest.raises(AudioError, match="not a WAV, MP3 or OGG"):
        moh.add("default", text)
    assert len(list((moh.root / "default").glob("*.wav"))) == 2  # only the good upload, both rates


def test_prepared_at_start_in_a_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "PROMPTS", {"goodbye": catalogue.PROMPTS["goodbye"]})
    monkeypatch.setattr(catalogue, "NUMBERS", {lang: {} for lang in catalogue.LANGUAGES})
    thread = prepare_voice(tmp_path, "fr")
    thread.join(60)
    assert not thread.is_alive()
    made = [p for p in (tmp_path / "cache" / "pbx" / "prompts").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in made] == [PromptLibrary.fingerprint()]
    assert audio.loudest_second(made[0] / "fr" / "goodbye-8000.wav") > -30
    assert audio.duration(MohLibrary(tmp_path).builtin(16000)) > 20
