"""Where the attendants' and assistants' greetings live, and typed texts made into speech.

    <data>/state/pbx/attendant/<attendant>/<menu>-<rate>.wav    recorded by phone or uploaded
    <data>/state/pbx/attendant/<attendant>/<menu>.<state>-<rate>.wav   the same, for one state of the
                                                                 time profile (open, break, closed, holiday)
    <data>/state/pbx/assistant/<ext>-<rate>.wav                  a user's assistant greeting
    <data>/cache/pbx/speech/<hash>-<rate>.wav                    typed text (and names) by espeak-ng

Blocking (sox, espeak-ng): call from a thread. Both the PBX and the web admin use these paths; what
the web admin (root) writes there is handed to the owner of the PBX's folder at once (hand_over), so
the PBX's own user reads an upload and extends the cache without waiting for its next start.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..prompts import audio, speak

MAX_SECONDS = 120


def hand_over(base: Path, made: list[Path]) -> None:
    """Root's files and folders between `base` (state/pbx or cache/pbx) and each of `made` become the
    owner's of `base` (the PBX's user, appliance/serviceusers.py); nothing to do when not root."""
    if os.geteuid() != 0 or not base.is_dir():
        return
    owner = base.stat()
    if owner.st_uid == 0:
        return
    for path in made:
        for step in (path, *path.parents):
            if step == base or base not in step.parents:
                break
            if step.exists() and step.lstat().st_uid == 0:
                os.lchown(step, owner.st_uid, owner.st_gid)


class Greetings:
    def __init__(self, data_dir: Path | str) -> None:
        data_dir = Path(data_dir)
        self.state = data_dir / "state" / "pbx"
        self.attendants = self.state / "attendant"
        self.assistants = self.state / "assistant"
        self.cache = data_dir / "cache" / "pbx" / "speech"

    def menu_stem(self, attendant: str, menu: str, state: str = "") -> Path:
        """A menu's greeting; with `state`, the one for that state of the time profile (names never hold
        a dot, so the two never meet)."""
        return self.attendants / attendant / (f"{menu}.{state}" if state else menu)

    def assistant_stem(self, ext: str) -> Path:
        return self.assistants / ext

    @staticmethod
    def recorded(stem: Path, rate: int = 8000) -> Path | None:
        path = Path(f"{stem}-{rate}.wav")
        return path if path.is_file() else None

    def chosen(self, stem: Path, text: str, lang: str) -> Path | None:
        """What callers hear: the recording, else the typed text spoken, else None (the generated words)."""
        return self.recorded(stem) or (self.spoken(text, lang) if text else None)

    def spoken(self, text: str, lang: str, rate: int = 8000) -> Path:
        """The synthesised file of a typed text (made once, then kept in the cache)."""
        digest = hashlib.sha256(f"{lang}\n{text}".encode()).hexdigest()[:24]
        stem = self.cache / digest
        path = Path(f"{stem}-{rate}.wav")
        if not path.is_file():
            hand_over(self.cache.parent, list(speak(text, lang, stem).values()))
        return path

    @staticmethod
    def store_recording(stem: Path, recorded: Path) -> None:
        """A phone recording (8 or 16 kHz WAV) becomes the greeting, in both stored rates."""
        audio.convert(recorded, "wav", stem, MAX_SECONDS)
        recorded.unlink(missing_ok=True)

    def store_upload(self, stem: Path, upload: Path) -> None:
        """An uploaded WAV/MP3/OGG, checked and converted; AudioError says why not."""
        hand_over(self.state, list(audio.convert(upload, audio.sniff(upload), stem, MAX_SECONDS).values()))

    @staticmethod
    def remove(stem: Path) -> None:
        for rate in audio.RATES:
            with_rate = Path(f"{stem}-{rate}.wav")
            if with_rate.exists():
                os.unlink(with_rate)
