"""The prompt library of a box: the generated set (espeak-ng, cached by a hash of the catalogue) with the
admin's uploads over it.

Layout: <data>/cache/pbx/prompts/<fingerprint>/<lang>/<key>-<rate>.wav, made again whenever the catalogue,
the voices or espeak-ng change (not in backups: it can always be made again, it is never downloaded);
<data>/state/pbx/prompts/<lang>/<key>-<rate>.wav for uploads (backed up with the rest of the state).
Generation holds a file lock (the web admin and the PBX may run in different processes) and builds in a
temporary folder renamed into place when complete, so a reader sees a whole set or none.
Blocking (sox, espeak-ng): call from a thread, never from an event loop; ensure() at PBX start.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import audio, catalogue, numbers

log = logging.getLogger("officebox.pbx.prompts")
GENERATOR = 1  # bump when the way prompts are made changes (sox parameters...)
PROMPT_MAX_SECONDS = 120
ALIASES = {"zh": "zh-TW", "cmn": "zh-TW", "zh-hant": "zh-TW"}


def normalise_language(lang: str | None) -> str | None:
    """'fr-CA' -> 'fr', 'zh_tw' / 'zh' -> 'zh-TW'; None for a language we have no prompts in."""
    if not lang:
        return None
    code = lang.replace("_", "-").strip()
    if code in catalogue.LANGUAGES:
        return code
    low = code.lower()
    if low in ALIASES or low.startswith(("zh-tw", "zh-hant", "cmn-")):
        return ALIASES.get(low, "zh-TW")
    return low.split("-")[0] if low.split("-")[0] in ("en", "fr") else None


class PromptError(Exception):
    """An unknown prompt key or language; the message is for the admin or the application's log."""


class PromptsUnavailable(PromptError):
    """The generated set cannot be made (espeak-ng or sox missing or failing)."""


class PromptLibrary:
    def __init__(self, data_dir: Path | str, default_language: str = "en") -> None:
        data_dir = Path(data_dir)
        self.cache_root = data_dir / "cache" / "pbx" / "prompts"
        self.custom_root = data_dir / "state" / "pbx" / "prompts"
        self.default_language = normalise_language(default_language) or "en"
        self._generated: Path | None = None
        self._lock = threading.Lock()

    # -- the generated set ---------------------------------------------------------------------
    @staticmethod
    def fingerprint() -> str:
        version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=10).stdout
        blob = json.dumps([GENERATOR, version.strip(), catalogue.VOICES, catalogue.SPEED,
                           {lang: catalogue.entries(lang) for lang in catalogue.LANGUAGES}], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def ensure(self) -> Path:
        """The folder of the generated set, made first if the catalogue changed (a few seconds)."""
        with self._lock:
            if self._generated is None:
                try:
                    self._generated = self._ensure_generated()
                except (OSError, subprocess.SubprocessError, audio.AudioError) as err:
                    raise PromptsUnavailable(f"the voice prompts cannot be made: {err}") from err
            return self._generated

    def _ensure_generated(self) -> Path:
        self.cache_root.mkdir(parents=True, exist_ok=True)
        target = self.cache_root / self.fingerprint()
        with open(self.cache_root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_dir():
                started = time.monotonic()
                with tempfile.TemporaryDirectory(dir=self.cache_root, prefix=".making-") as tmp:
                    self._generate(Path(tmp))
                    log.info("voice prompts generated with espeak-ng in %.1f s", time.monotonic() - started)
                    Path(tmp).rename(target)
                    Path(tmp).mkdir()  # for TemporaryDirectory's clean-up
            for old in self.cache_root.iterdir():
                if old.is_dir() and old != target and not old.name.startswith("."):
                    shutil.rmtree(old, ignore_errors=True)
        return target

    @staticmethod
    def _generate(folder: Path) -> None:
        jobs = [(lang, key) for lang in catalogue.LANGUAGES for key in catalogue.entries(lang)]
        for lang in catalogue.LANGUAGES:
            (folder / lang).mkdir()

        def make(job: tuple[str, str]) -> None:
            lang, key = job
            speak(catalogue.spoken_text(lang, key), lang, folder / lang / key)

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(make, jobs))

    # -- finding prompts -----------------------------------------------------------------------
    def language(self, lang: str | None) -> str:
        return normalise_language(lang) or self.default_language

    def prompt_path(self, key: str, lang: str | None = None, rate: int = 8000) -> Path:
        """The file to play: the upload if there is one, else the generated prompt; in `lang`, else in
        the box's default language, else English."""
        if rate not in audio.RATES:
            raise PromptError(f"prompts are stored at {audio.RATES} Hz, not {rate}")
        if not any(key in catalogue.entries(lang) for lang in catalogue.LANGUAGES):  # never a path of its own
            raise PromptError(f"there is no prompt {key!r}")
        generated = self.ensure()
        for candidate in dict.fromkeys((self.language(lang), self.default_language, "en")):
            for folder in (self.custom_root / candidate, generated / candidate):
                path = folder / f"{key}-{rate}.wav"
                if path.is_file():
                    return path
        raise PromptError(f"there is no prompt {key!r}")

    def say_number(self, n: int, lang: str | None = None, rate: int = 8000, counting: bool = False,
                   feminine: bool = False) -> list[Path]:
        """The files saying `n` (numbers.py: `counting` before a measure word, `feminine` noun in French)."""
        lang = self.language(lang)
        return [self.prompt_path(key, lang, rate) for key in numbers.number_keys(n, lang, counting, feminine)]

    def say_digits(self, digits: str, lang: str | None = None, rate: int = 8000) -> list[Path]:
        lang = self.language(lang)
        return [self.prompt_path(key, lang, rate) for key in numbers.digit_keys(digits, lang)]

    # -- the admin's uploads -------------------------------------------------------------------
    def _check(self, key: str, lang: str) -> None:
        if lang not in catalogue.LANGUAGES:
            raise PromptError(f"there are no prompts in {lang!r}")
        if key not in catalogue.entries(lang):
            raise PromptError(f"there is no prompt {key!r} in {catalogue.LANGUAGES[lang]}")

    def is_custom(self, key: str, lang: str) -> bool:
        return (self.custom_root / lang / f"{key}-8000.wav").is_file()

    def replace(self, key: str, lang: str, upload: Path) -> None:
        """Use an uploaded WAV/MP3/OGG for this prompt, converted once; AudioError says why not."""
        self._check(key, lang)
        audio.convert(upload, audio.sniff(upload), self.custom_root / lang / key, PROMPT_MAX_SECONDS)

    def restore(self, key: str, lang: str) -> None:
        """Back to the generated prompt."""
        self._check(key, lang)
        for rate in audio.RATES:
            (self.custom_root / lang / f"{key}-{rate}.wav").unlink(missing_ok=True)

    def listing(self, lang: str) -> list[dict]:
        """Every prompt of a language for the web admin: key, text, whether it was replaced, and the number
        to record it by phone (None for number words)."""
        numbers = {key: n for n, key in enumerate(catalogue.numbered(), 1)}
        return [{"key": key, "text": catalogue.display_text(lang, key), "custom": self.is_custom(key, lang),
                 "number": numbers.get(key)} for key in catalogue.entries(lang)]


SPOKEN_MAX = 2000  # characters of typed text synthesised at once


def speak(text: str, lang: str, dest_stem: Path) -> dict[int, Path]:
    """Say `text` with the language's espeak-ng voice into `dest_stem`-8000.wav and -16000.wav (blocking:
    from a thread). For typed texts (attendant greetings, names) as for the catalogue."""
    lang = normalise_language(lang) or "en"
    if not text.strip() or len(text) > SPOKEN_MAX:
        raise audio.AudioError(f"a text to speak has 1 to {SPOKEN_MAX} characters")
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    raw = dest_stem.parent / f".{dest_stem.name}.raw.wav"
    try:
        done = subprocess.run(
            ["espeak-ng", "-b", "1", "-v", catalogue.VOICES[lang], "-s", str(catalogue.SPEED[lang]),
             "-w", str(raw), "--stdin"], input=text.encode(), capture_output=True, timeout=60)
        if done.returncode != 0 or not raw.exists():
            raise audio.AudioError(f"espeak-ng failed on {dest_stem.name}: {done.stderr.decode()[-200:]}")
        return audio.write_from_raw(raw, dest_stem)
    finally:
        raw.unlink(missing_ok=True)
