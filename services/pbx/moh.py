"""Music on hold: the built-in track (synthesised with sox, royalty-free by construction) and the classes
of `pbx.moh_classes`, each a list of uploaded files (up to 10 minutes each, converted once).

Files: <data>/cache/pbx/moh/builtin-<hash>-<rate>.wav (made again when the recipe changes, not backed
up); <data>/state/pbx/moh/<class>/<file id>-<rate>.wav for uploads. `class_files(name, rate)` gives what a
held caller of that class hears: its uploads in order, or the built-in track for a class without any (and
for "default", which always exists). Blocking (sox): call from a thread, never from an event loop.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from .prompts import PromptLibrary, audio

log = logging.getLogger("officebox.pbx.voice")

MAX_SECONDS = 600
# the built-in piece: eight plucked-guitar chords (C Am F G C Am Dm G7), each an arpeggio of six notes, with
# room reverb; about 26 s that loop without a jump in level
CHORDS = ("C3 G3 C4 E4 G4 C5", "A2 E3 A3 C4 E4 A4", "F2 C3 F3 A3 C4 F4", "G2 D3 G3 B3 D4 G4",
          "C3 G3 C4 E4 G4 C5", "A2 E3 A3 C4 E4 A4", "D3 A3 D4 F4 A4 D5", "G2 D3 G3 B3 D4 F4")
CHORD_SECONDS = 3.2
NOTE_GAP = 0.2
RECIPE = {"chords": CHORDS, "seconds": CHORD_SECONDS, "gap": NOTE_GAP, "effects": "reverb 40 50 60 lowpass 3400",
          "version": 1}


class MohLibrary:
    def __init__(self, data_dir: Path | str) -> None:
        data_dir = Path(data_dir)
        self.cache = data_dir / "cache" / "pbx" / "moh"
        self.root = data_dir / "state" / "pbx" / "moh"

    # -- the built-in track --------------------------------------------------------------------
    def builtin(self, rate: int = 8000) -> Path:
        """The built-in track at `rate`, synthesised the first time (well under a second)."""
        if rate not in audio.RATES:
            raise ValueError(f"music on hold is stored at {audio.RATES} Hz, not {rate}")
        stem = self.cache / f"builtin-{hashlib.sha256(json.dumps(RECIPE).encode()).hexdigest()[:12]}"
        target = Path(f"{stem}-{rate}.wav")
        if target.is_file():
            return target
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_file():
                with tempfile.TemporaryDirectory(dir=self.cache, prefix=".making-") as tmp:
                    piece = _synthesise(Path(tmp))
                    made = audio.write_from_raw(piece, Path(tmp) / "out", peak_db=-6.0)
                    for r, path in made.items():
                        path.replace(f"{stem}-{r}.wav")
        return target

    # -- classes -------------------------------------------------------------------------------
    def class_files(self, pbx, name: str, rate: int = 8000) -> list[Path]:
        """The files a held caller of class `name` hears, in order (an unknown class: "default")."""
        classes = {c.name: c for c in pbx.moh_classes}
        chosen = classes.get(name) or classes.get("default")
        files = [self.file_path(chosen.name, f.id, rate) for f in chosen.files] if chosen else []
        files = [f for f in files if f.is_file()]
        return files or [self.builtin(rate)]

    def file_path(self, name: str, file_id: str, rate: int = 8000) -> Path:
        return self.root / name / f"{file_id}-{rate}.wav"

    def add(self, name: str, upload: Path) -> tuple[str, float]:
        """Convert an upload (WAV/MP3/OGG, at most 10 minutes) into class `name`'s folder:
        (its new id, seconds). AudioError says why a file is refused; nothing is kept then."""
        file_id = secrets.token_hex(6)
        stored = audio.convert(upload, audio.sniff(upload), self.root / name / file_id, MAX_SECONDS)
        return file_id, audio.duration(stored[8000])

    def remove(self, name: str, file_id: str) -> None:
        for rate in audio.RATES:
            self.file_path(name, file_id, rate).unlink(missing_ok=True)

    def remove_class(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)


def prepare_voice(data_dir: Path | str, language: str = "en") -> threading.Thread:
    """Make the prompts and the built-in track in a thread of their own (PBX start on the box: ready
    before the first caller, signalling not delayed); the thread, for whoever wants to wait."""
    def run() -> None:
        try:
            PromptLibrary(data_dir, language).ensure()
            library = MohLibrary(data_dir)
            for rate in audio.RATES:
                library.builtin(rate)
        except Exception:  # logged: prompts are then made on first use, and fail there with the reason
            log.exception("voice prompts or hold music could not be prepared")

    thread = threading.Thread(target=run, name="voice-prepare", daemon=True)
    thread.start()
    return thread


def _synthesise(folder: Path) -> Path:
    """The piece at 16 kHz in `folder`: each chord's notes on channels of their own, started one after
    the other (delay) and mixed down, then the chords joined and given a room."""
    chords = []
    for index, chord in enumerate(CHORDS):
        notes = chord.split()
        out = folder / f"chord{index}.wav"
        synth = [arg for note in notes for arg in ("pluck", note)]
        delays = [f"{NOTE_GAP * i:.2f}" for i in range(len(notes))]
        # pluck needs 44.1-48 kHz: made at 48 kHz, resampled on output
        audio.run_sox("-r", "48000", "-c", str(len(notes)), "-n", "-r", "16000", out,
                      "synth", f"{CHORD_SECONDS}", *synth, "delay", *delays, "remix", "-",
                      "fade", "0", f"{CHORD_SECONDS}", "0.05")
        chords.append(out)
    piece = folder / "piece.wav"
    audio.run_sox(*chords, piece, *RECIPE["effects"].split())
    return piece
