"""Voicemail boxes on disk: <state>/pbx/voicemail/<ext>/{INBOX,Old,Saved}/<id>.wav + <id>.json.

A message is recorded into the box's own folder as `.rec-<id>.wav` with its envelope `.rec-<id>.json`
written first (time, caller, called extension); when the recording ends the WAV, then the envelope
(now with the duration) are renamed into INBOX. A message counts once its envelope is in a folder, so
a reader never sees half a message. After a crash (kill -9 during a recording) `recover()` finishes
what was left: the WAV keeps everything up to the last half second (endpoint.record).

Every change of a box's counts is published on the bus: topic `pbx.mailbox`, key = extension, retained,
data {"extension", "new", "old"} (old: heard messages, in Old and Saved). Blocking file work of a few
milliseconds per call; a message may have an MP3 copy beside its WAV (<id>.mp3, compressed.py), moved
and deleted with it; greetings: greet-unavailable.wav, greet-busy.wav, greet-temporary.wav, name.wav in
the box folder. `.warned` in the box folder: the owner was told the box passed WARN_AT (told once per crossing).
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
import wave
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("officebox.pbx.voicemail")

TOPIC = "pbx.mailbox"
FOLDERS = ("INBOX", "Old", "Saved")
MIN_SECONDS = 1.0  # shorter messages are not kept
GREETINGS = ("unavailable", "busy", "temporary", "name")  # temporary: overrides the others until removed
WARN_AT = 0.9  # share of a limit (messages or minutes) that warns the owner
_ID = re.compile(r"^[0-9]{10}-[0-9a-f]{8}$")
_EXT = re.compile(r"^[0-9]{2,6}$")


class BoxFull(Exception):
    """The box holds its maximum of messages or of minutes."""


@dataclass
class Message:
    id: str
    folder: str
    envelope: dict
    wav: Path

    @property
    def seconds(self) -> float:
        return float(self.envelope.get("duration", 0.0))


@dataclass
class Pending:
    """A message being recorded: record into `wav`, then Mailbox.deposit(pending, seconds)."""
    id: str
    wav: Path
    envelope: dict


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, EOFError, wave.Error):
        return 0.0


class Mailbox:
    def __init__(self, root: Path, extension: str, limits, bus=None) -> None:
        if not _EXT.match(extension):
            raise ValueError(f"{extension!r} is not an extension number")
        self.extension = extension
        self.dir = Path(root) / extension
        self.limits = limits
        self.bus = bus
        for folder in FOLDERS:
            (self.dir / folder).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- reading ---------------------------------------------------------------------------------
    def messages(self, folder: str) -> list[Message]:
        """The messages of a folder, oldest first."""
        found = []
        for env_path in sorted((self.dir / folder).glob("*.json")):
            wav = env_path.with_suffix(".wav")
            if not _ID.match(env_path.stem) or not wav.is_file():
                continue
            try:
                envelope = json.loads(env_path.read_text())
            except (OSError, ValueError):
                log.warning("mailbox %s: unreadable envelope %s skipped", self.extension, env_path.name)
                continue
            found.append(Message(env_path.stem, folder, envelope, wav))
        return found

    def counts(self) -> dict:
        new = len(self.messages("INBOX"))
        old = len(self.messages("Old")) + len(self.messages("Saved"))
        return {"extension": self.extension, "new": new, "old": old}

    def used(self) -> tuple[int, float]:
        """(messages, seconds) in all folders."""
        every = [m for f in FOLDERS for m in self.messages(f)]
        return len(every), sum(m.seconds for m in every)

    def room_seconds(self) -> float:
        """Seconds a new message may last; BoxFull when there is no room for one."""
        count, seconds = self.used()
        left = self.limits.storage_minutes * 60 - seconds
        if count >= self.limits.max_messages or left < MIN_SECONDS + 1:
            raise BoxFull(f"mailbox {self.extension}: {count} messages, {seconds / 60:.1f} minutes")
        return min(float(self.limits.max_message_seconds), left)

    def fill(self) -> float:
        """The larger share of the two limits in use (messages, minutes): 0.0 to 1.0 and more."""
        count, seconds = self.used()
        return max(count / self.limits.max_messages, seconds / (self.limits.storage_minutes * 60))

    def crossed_warning(self) -> bool:
        """True once each time the box passes WARN_AT (remembered on disk); falling below re-arms it."""
        flag = self.dir / ".warned"
        if self.fill() < WARN_AT:
            flag.unlink(missing_ok=True)
            return False
        if flag.exists():
            return False
        flag.touch()
        return True

    def find(self, ident: str) -> Message | None:
        """A message by id in any folder (None for an unknown or malformed id)."""
        if not _ID.match(ident or ""):
            return None
        for folder in FOLDERS:
            for msg in self.messages(folder):
                if msg.id == ident:
                    return msg
        return None

    def greeting(self, kind: str) -> Path | None:
        path = self.dir / f"greet-{kind}.wav" if kind != "name" else self.dir / "name.wav"
        return path if path.is_file() else None

    # -- writing ---------------------------------------------------------------------------------
    def begin(self, caller: str, caller_name: str) -> Pending:
        """A new message to record: its envelope is on disk before the first sample."""
        ident = f"{int(time.time()):010d}-{secrets.token_hex(4)}"
        envelope = {"id": ident, "time": time.time(), "caller": caller, "caller_name": caller_name,
                    "extension": self.extension, "duration": 0.0}
        _write_json(self.dir / f".rec-{ident}.json", envelope)
        return Pending(ident, self.dir / f".rec-{ident}.wav", envelope)

    def deposit(self, pending: Pending, seconds: float | None = None) -> Message | None:
        """Move a finished recording into INBOX (None and removed when shorter than MIN_SECONDS)."""
        seconds = wav_seconds(pending.wav) if seconds is None else seconds
        env_tmp = self.dir / f".rec-{pending.id}.json"
        if seconds < MIN_SECONDS or not pending.wav.is_file():
            pending.wav.unlink(missing_ok=True)
            env_tmp.unlink(missing_ok=True)
            return None
        envelope = dict(pending.envelope, duration=round(seconds, 2))
        _write_json(env_tmp, envelope)
        inbox = self.dir / "INBOX"
        os.replace(pending.wav, inbox / f"{pending.id}.wav")
        os.replace(env_tmp, inbox / f"{pending.id}.json")
        _sync_dir(inbox)
        self.publish()
        return Message(pending.id, "INBOX", envelope, inbox / f"{pending.id}.wav")

    def move(self, msg: Message, folder: str) -> Message:
        if folder not in FOLDERS:
            raise ValueError(f"no folder {folder!r}")
        if folder == msg.folder:
            return msg
        target = self.dir / folder
        os.replace(msg.wav, target / msg.wav.name)
        if msg.wav.with_suffix(".mp3").is_file():
            os.replace(msg.wav.with_suffix(".mp3"), target / f"{msg.id}.mp3")
        os.replace(msg.wav.with_suffix(".json"), target / f"{msg.id}.json")
        _sync_dir(target)
        self.publish()
        return Message(msg.id, folder, msg.envelope, target / msg.wav.name)

    def delete(self, msg: Message) -> None:
        msg.wav.with_suffix(".json").unlink(missing_ok=True)  # the envelope first: no half message seen
        msg.wav.unlink(missing_ok=True)
        msg.wav.with_suffix(".mp3").unlink(missing_ok=True)
        if self.fill() < WARN_AT:
            (self.dir / ".warned").unlink(missing_ok=True)  # the next crossing warns again
        self.publish()

    def save_greeting(self, kind: str, recorded: Path) -> None:
        if kind not in GREETINGS:
            raise ValueError(f"no greeting {kind!r}")
        os.replace(recorded, self.dir / (f"greet-{kind}.wav" if kind != "name" else "name.wav"))

    def remove_greeting(self, kind: str) -> bool:
        path = self.greeting(kind)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def recover(self) -> list[Message]:
        """Finish recordings a crash cut short; returns the messages it kept (to be mailed as any new one)."""
        kept = []
        for env_path in self.dir.glob(".rec-*.json"):
            ident = env_path.stem[len(".rec-"):]
            try:
                envelope = json.loads(env_path.read_text())
            except (OSError, ValueError):
                envelope = {"id": ident, "time": env_path.stat().st_mtime, "caller": "", "caller_name": "",
                            "extension": self.extension}
            msg = self.deposit(Pending(ident, self.dir / f".rec-{ident}.wav", envelope))
            if msg is not None:
                kept.append(msg)
        for wav in self.dir.glob(".rec-*.wav"):  # a WAV without its envelope: nothing says whose it is
            if not wav.with_suffix(".json").exists():
                wav.unlink(missing_ok=True)
        return kept

    def publish(self) -> None:
        if self.bus is not None:
            self.bus.publish(TOPIC, self.extension, self.counts(), retain=True)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
