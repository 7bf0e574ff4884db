"""Sound files with sox: checking and converting uploads once, reading the stored WAVs, loudness.

Stored format everywhere: 16-bit PCM mono WAV at 8000 Hz (G.711) and 16000 Hz (G.722), what the media
engine's play() takes. sox reads WAV, MP3 (libsox-fmt-mp3) and OGG Vorbis (libsox-fmt-base), so no
ffmpeg is needed. Every call has a time limit; nothing here runs on an event loop (use a thread).
"""
from __future__ import annotations

import array
import math
import operator
import os
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

RATES = (8000, 16000)
SOX = "sox"
TIMEOUT = 120  # seconds for one sox run (a 10-minute MP3 converts in a few)
MAGIC = (("wav", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE"),
         ("ogg", lambda h: h[:4] == b"OggS"),
         ("mp3", lambda h: h[:3] == b"ID3" or (h[0] == 0xFF and h[1] & 0xE0 == 0xE0)))
SILENT_DBFS = -55.0  # an upload whose loudest second is below this is refused as silent


class AudioError(ValueError):
    """An upload or a conversion that failed; the message says why, for the admin."""


def run_sox(*args: str | Path) -> str:
    """Run sox; its stderr on failure becomes the AudioError."""
    try:
        done = subprocess.run([SOX, "-V1", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError:
        raise AudioError("sox is not installed on this box") from None
    except subprocess.TimeoutExpired:
        raise AudioError("converting the file took too long") from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"sox exited with {done.returncode}"]
        raise AudioError(reason[0].split("FAIL", 1)[-1].strip(" :") or "sox could not read the file")
    return done.stderr


def sniff(path: Path) -> str:
    """'wav', 'mp3' or 'ogg' from the file's first bytes (its name is not trusted)."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12:
        raise AudioError("the file is empty or too small to be a sound file")
    for kind, test in MAGIC:
        if test(head):
            return kind
    raise AudioError("this is not a WAV, MP3 or OGG file")


def duration(path: Path) -> float:
    """Seconds of a stored WAV (exact: from its frame count)."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def samples(path: Path) -> tuple[int, array.array]:
    """(sample rate, signed 16-bit samples) of a stored mono WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise AudioError(f"{path.name} is not 16-bit mono")
        data = array.array("h", w.readframes(w.getnframes()))
        if sys.byteorder == "big":
            data.byteswap()
        return w.getframerate(), data


def dbfs(values) -> float:
    """RMS level of samples in dB below full scale (-inf for silence)."""
    if not len(values):
        return float("-inf")
    power = sum(map(operator.mul, values, values)) / len(values)
    return 10 * math.log10(power / 32768.0 ** 2) if power else float("-inf")


def loudest_second(path: Path) -> float:
    """The RMS level (dBFS) of the loudest one-second window (a quiet intro does not count)."""
    rate, data = samples(path)
    return max((dbfs(data[i:i + rate]) for i in range(0, max(len(data), 1), rate)), default=float("-inf"))


def convert(src: Path, kind: str, dest_stem: Path, max_seconds: float, min_seconds: float = 0.3,
            peak_db: float = -3.0) -> dict[int, Path]:
    """Convert an upload once into the stored formats (`dest_stem`-8000.wav, -16000.wav), written
    atomically. Refused with a clear AudioError: unreadable, too short, longer than `max_seconds`, silent."""
    folder = dest_stem.parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as tmp:
        wide = Path(tmp) / "16000.wav"
        # a second past the limit is enough to know it is too long, whatever its header claims
        run_sox("-t", kind, src, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", wide,
                "trim", "0", f"{max_seconds + 1:.1f}", "norm", f"{peak_db}")
        seconds = duration(wide)
        if seconds > max_seconds + 0.05:
            limit = f"{max_seconds / 60:g} minutes" if max_seconds >= 60 else f"{max_seconds:g} seconds"
            raise AudioError(f"the recording is longer than {limit}")
        if seconds < min_seconds:
            raise AudioError(f"the recording is too short ({seconds:.2f} s)")
        narrow = Path(tmp) / "8000.wav"
        run_sox(wide, "-r", "8000", narrow)
        if loudest_second(narrow) < SILENT_DBFS:
            raise AudioError("the recording is silent")
        out = {}
        for rate, made in ((16000, wide), (8000, narrow)):
            target = Path(f"{dest_stem}-{rate}.wav")
            os.replace(made, target)
            out[rate] = target
        return out


def write_from_raw(src: Path, dest_stem: Path, peak_db: float = -3.0) -> dict[int, Path]:
    """Our own generated audio (espeak-ng, sox synth) into both stored formats."""
    out = {}
    for rate in RATES:
        target = Path(f"{dest_stem}-{rate}.wav")
        run_sox(src, "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", target, "norm", f"{peak_db}")
        out[rate] = target
    return out
