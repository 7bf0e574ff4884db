"""Signal processing for the engine's local endpoints, stdlib only: G.711 (audioop), G.722 (Debian's
libspandsp through ctypes, when installed), WAV reading and crash-safe writing, tones, DTMF detection
(Goertzel). 16-bit signed little-endian mono PCM everywhere; G.711 at 8 kHz, G.722 at 16 kHz."""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import operator
import os
import struct
import warnings
import wave

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop: in the standard library up to 3.12
    import audioop

FRAME = 0.02  # seconds of audio per RTP packet
RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}  # sample rate of the PCM a codec carries
DTMF_LOW = (697, 770, 852, 941)
DTMF_HIGH = (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")
EVENT_KEYS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15


class CodecError(ValueError):
    pass


def _spandsp():
    name = ctypes.util.find_library("spandsp") or "libspandsp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    for fn in ("g722_encode_init", "g722_decode_init"):
        getattr(lib, fn).restype = ctypes.c_void_p
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.g722_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    lib.g722_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    for fn in ("g722_encode_free", "g722_decode_free"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    return lib


_SPANDSP = _spandsp()


def codecs() -> list[str]:
    """The codecs this engine can terminate."""
    return ["PCMU", "PCMA"] + (["G722"] if _SPANDSP is not None else [])


class Codec:
    """One direction's state of a codec: encode() PCM -> payload, decode() payload -> PCM."""

    def __init__(self, name: str) -> None:
        if name not in codecs():
            raise CodecError(f"cannot terminate {name}")
        self.name = name
        self.rate = RATES[name]
        self._enc = self._dec = None
        if name == "G722":
            self._enc = _SPANDSP.g722_encode_init(None, 64000, 0)
            self._dec = _SPANDSP.g722_decode_init(None, 64000, 0)

    def encode(self, pcm: bytes) -> bytes:
        if self.name == "PCMU":
            return audioop.lin2ulaw(pcm, 2)
        if self.name == "PCMA":
            return audioop.lin2alaw(pcm, 2)
        out = ctypes.create_string_buffer(len(pcm) // 4 + 1)
        n = _SPANDSP.g722_encode(self._enc, out, pcm, len(pcm) // 2)
        return out.raw[:n]

    def decode(self, payload: bytes) -> bytes:
        if self.name == "PCMU":
            return audioop.ulaw2lin(payload, 2)
        if self.name == "PCMA":
            return audioop.alaw2lin(payload, 2)
        out = ctypes.create_string_buffer(len(payload) * 4)
        n = _SPANDSP.g722_decode(self._dec, out, payload, len(payload))
        return out.raw[:2 * n]

    def close(self) -> None:
        if self._enc:
            _SPANDSP.g722_encode_free(self._enc)
            _SPANDSP.g722_decode_free(self._dec)
            self._enc = self._dec = None


class WavSource:
    """A WAV file of 16-bit PCM mono at 8 or 16 kHz, read frame by frame and resampled to `rate`."""

    def __init__(self, path: str, rate: int) -> None:
        try:
            self.wav = wave.open(path, "rb")
        except (OSError, EOFError, wave.Error) as exc:
            raise CodecError(f"cannot read {path}: {exc}") from None
        if self.wav.getsampwidth() != 2 or self.wav.getnchannels() != 1 or self.wav.getframerate() not in (8000, 16000):
            self.wav.close()
            raise CodecError(f"{path}: not 16-bit mono PCM at 8 or 16 kHz")
        self.src_rate, self.rate = self.wav.getframerate(), rate
        self.state = None

    def read(self, samples: int) -> bytes | None:
        """The next `samples` samples at `rate` (the last frame padded with silence); None at the end."""
        data = self.wav.readframes(samples * self.src_rate // self.rate)
        if not data:
            return None
        if self.src_rate != self.rate:
            data, self.state = audioop.ratecv(data, 2, 1, self.src_rate, self.rate, self.state)
        return data[:2 * samples].ljust(2 * samples, b"\0")

    def close(self) -> None:
        self.wav.close()


class ToneSource:
    """A sum of sine waves (`freqs`, whole Hz) switched on `on` ms and off `off` ms (0: steady), for
    `seconds`. One second of the waveform is computed once (whole-Hz tones repeat every second) and
    cached, so a tone costs a slice per frame."""

    _cycles: dict[tuple, bytes] = {}

    def __init__(self, freqs: list[float], rate: int, seconds: float, on: int = 0, off: int = 0,
                 amplitude: float = 8000.0) -> None:
        self.freqs, self.rate = tuple(round(float(f)) for f in freqs)[:4], rate
        self.total = int(seconds * rate)
        self.on, self.off = on * rate // 1000, off * rate // 1000
        self.amplitude = min(32000.0, float(amplitude)) / max(1, len(self.freqs))
        self.pos = 0
        key = (self.freqs, rate, round(self.amplitude))
        if key not in self._cycles:
            if len(self._cycles) >= 64:
                self._cycles.pop(next(iter(self._cycles)))
            self._cycles[key] = struct.pack(f"<{rate}h", *(
                int(self.amplitude * sum(math.sin(2 * math.pi * f * n / rate) for f in self.freqs))
                for n in range(rate)))
        self.cycle = self._cycles[key]

    def read(self, samples: int) -> bytes | None:
        if self.pos >= self.total:
            return None
        period = self.on + self.off
        out = bytearray()
        n, end = self.pos, self.pos + samples
        while n < end:
            if n >= self.total:
                out += bytes(2 * (end - n))
                break
            if period and self.off:
                phase = n % period
                span = min(end, n + (period - phase if phase >= self.on else self.on - phase)) - n
                if phase >= self.on:
                    out += bytes(2 * span)
                    n += span
                    continue
            else:
                span = end - n
            span = min(span, self.rate - n % self.rate, self.total - n)
            first = 2 * (n % self.rate)
            out += self.cycle[first:first + 2 * span]
            n += span
        self.pos = end
        return bytes(out)

    def close(self) -> None:
        pass


def dtmf_tone(key: str, rate: int, seconds: float) -> ToneSource:
    row = next(i for i, r in enumerate(KEYS) if key in r)
    return ToneSource([DTMF_LOW[row], DTMF_HIGH[KEYS[row].index(key)]], rate, seconds, amplitude=12000)


class WavWriter:
    """A WAV file written as it grows, `sync_every` seconds of audio at a time, each write followed by
    the header's sizes patched: a process killed at any moment leaves a valid file with all audio up
    to the last write. fsync at the end. With `disk` (disk.DiskThread) the writes run in its thread:
    a write error shows at the next write(), and close(done) calls done(error or None) once written."""

    HEADER = 44

    def __init__(self, path: str, rate: int, sync_every: float = 1.0, disk=None) -> None:
        self.path, self.rate, self.disk = path, rate, disk
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)  # never over an existing file
        self.data_bytes = 0  # written (by the disk thread, when there is one)
        self.taken = 0  # handed over to be written
        self.error: OSError | None = None  # a write failed (in the disk thread)
        self.refused: OSError | None = None  # the disk thread's queue was full: what follows is not kept
        self.closing = False
        self.pending = bytearray()
        self.sync_bytes = int(rate * 2 * sync_every)
        try:
            os.write(self.fd, self._header(0))
        except OSError:
            os.close(self.fd)
            raise

    def _header(self, size: int) -> bytes:
        return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16) + b"data" + struct.pack("<I", size))

    @property
    def size(self) -> int:
        """Bytes of audio taken (written or about to be)."""
        return self.taken + len(self.pending)

    @property
    def seconds(self) -> float:
        return self.size / (2 * self.rate)

    def _patch(self) -> None:
        os.pwrite(self.fd, self._header(self.data_bytes & ~1), 0)  # whole samples only

    def write(self, pcm: bytes) -> None:
        """Audio is written in chunks of `sync_every` seconds, each followed by the header's patch."""
        if self.error is not None or self.refused is not None:
            raise self.error or self.refused
        self.pending += pcm
        if len(self.pending) >= self.sync_bytes:
            data, self.pending = bytes(self.pending), bytearray()
            self.taken += len(data)
            if self.disk is None:
                self._write(data)
                return
            try:
                self.disk.submit(lambda: self._write_or_note(data))
            except OSError as exc:  # the disk does not keep up: this chunk is lost, the file ends here
                self.taken -= len(data)
                self.refused = exc
                raise

    def _write(self, data: bytes) -> None:
        while data:
            written = os.write(self.fd, data)
            self.data_bytes += written
            data = data[written:]
            if not written:
                break
        self._patch()
        if data:
            raise OSError(28, "No space left on device")  # the header keeps what did fit

    def _write_or_note(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._write(data)
            except OSError as exc:
                self.error = exc

    def _finish(self, data: bytes) -> None:
        try:
            if self.error is not None:
                raise self.error
            self._write(data)
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def close(self, done=None) -> None:
        """The rest written, fsync, closed (once: a second close only reports). Without `done` an error
        is raised; with it, done(error or None) once closed (from the loop, with a disk thread)."""
        if self.closing:
            if done is not None:
                done(self.error)
            return
        self.closing = True
        data, self.pending = (b"" if self.refused else bytes(self.pending)), bytearray()
        self.taken += len(data)
        if self.disk is not None:  # after the file's writes, in the thread, whatever the queue holds
            report = done or (lambda error: None)
            self.disk.submit(lambda: self._finish(data), lambda error: report(error or self.refused), last=True)
            return
        try:
            self._finish(data)
        except OSError as exc:
            if done is None:
                raise
            done(exc)
            return
        if done is not None:
            done(None)


_TABLES: dict[int, list[tuple[tuple[float, ...], tuple[float, ...]]]] = {}


def _tables(n: int) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """cos/sin of the 8 DTMF frequencies over `n` samples at 8 kHz (cached per frame length)."""
    if n not in _TABLES:
        _TABLES[n] = [(tuple(math.cos(2 * math.pi * f * k / 8000) for k in range(n)),
                       tuple(math.sin(2 * math.pi * f * k / 8000) for k in range(n)))
                      for f in DTMF_LOW + DTMF_HIGH]
        if len(_TABLES) > 8:
            _TABLES.pop(next(iter(_TABLES)))
    return _TABLES[n]


def _powers(samples: tuple, group: slice) -> list[float]:
    """|X(f)|^2 at DTMF frequencies of `group` (what Goertzel's recurrence gives, as dot products in C)."""
    out = []
    for cos, sin in _tables(len(samples))[group]:
        re_, im = sum(map(operator.mul, samples, cos)), sum(map(operator.mul, samples, sin))
        out.append(re_ * re_ + im * im)
    return out


class DtmfDetector:
    """In-band DTMF (the Goertzel powers over 20 ms of 8 kHz audio): a key is reported once when two frames in a
    row carry the same pair (one low, one high tone, each well above the other tones of its group,
    together most of the frame's energy, twist within 8 dB); it can repeat after a frame without it."""

    MIN_RMS = 300  # quieter frames are not looked at (speech pauses, silence: no cost)

    def __init__(self) -> None:
        self.candidate = ""
        self.reported = ""

    def frame(self, pcm8k: bytes) -> str | None:
        key = self._classify(pcm8k)
        found = None
        if key and key == self.candidate and key != self.reported:
            self.reported = found = key
        if not key:
            self.reported = ""
        self.candidate = key
        return found

    def _classify(self, pcm: bytes) -> str:
        if len(pcm) < 200 or audioop.rms(pcm, 2) < self.MIN_RMS:
            return ""
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        energy = audioop.rms(pcm, 2) ** 2 * len(samples)
        low = _powers(samples, slice(0, 4))
        li = max(range(4), key=low.__getitem__)
        lp = low[li]
        if lp * 2 / len(samples) < 0.2 * energy:
            return ""  # no strong low-group tone: speech or noise, the high group is not computed
        high = _powers(samples, slice(4, 8))
        hi = max(range(4), key=high.__getitem__)
        hp = high[hi]
        if lp <= 0 or hp <= 0 or not 1 / 6.3 < hp / lp < 6.3:  # twist within 8 dB
            return ""
        if any(p * 6.3 > lp for i, p in enumerate(low) if i != li) or \
                any(p * 6.3 > hp for i, p in enumerate(high) if i != hi):
            return ""
        # the pair's power against the frame's energy (a pure tone of amplitude A: power = (N*A/2)^2)
        if (lp + hp) * 2 / len(samples) < 0.6 * energy:
            return ""
        return KEYS[li][hi]
