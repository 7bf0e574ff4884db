"""Opus (RFC 6716) through libopus (Debian libopus0) with ctypes, for browser legs that offer no G.711:
mono at 8 kHz (what the G.711 side carries), 20 ms frames. Stdlib only (the gateway process imports it)."""
from __future__ import annotations

import ctypes
import ctypes.util

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
RTP_CLOCK = 48000  # Opus' RTP clock, whatever the coded rate (RFC 7587)
APPLICATION_VOIP = 2048
MAX_PACKET = 1500
_lib = None


class OpusError(Exception):
    pass


def library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(ctypes.util.find_library("opus") or "libopus.so.0")
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int,
                                    ctypes.c_int]
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


class Opus:
    """An encoder and a decoder: 16-bit mono PCM at 8 kHz in 20 ms frames <-> Opus packets."""

    def __init__(self) -> None:
        lib = library()
        self._lib = lib
        err = ctypes.c_int()
        self._enc = lib.opus_encoder_create(RATE, 1, APPLICATION_VOIP, ctypes.byref(err))
        if err.value != 0 or not self._enc:
            raise OpusError(f"opus_encoder_create: {err.value}")
        self._dec = lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
        if err.value != 0 or not self._dec:
            lib.opus_encoder_destroy(self._enc)
            raise OpusError(f"opus_decoder_create: {err.value}")
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self._pcm = ctypes.create_string_buffer(2 * RATE // 10)  # up to 100 ms a packet may hold

    def encode(self, pcm: bytes) -> bytes:
        n = self._lib.opus_encode(self._enc, pcm, len(pcm) // 2, self._out, MAX_PACKET)
        if n < 0:
            raise OpusError(f"opus_encode: {n}")
        return self._out.raw[:n]

    def decode(self, packet: bytes) -> bytes:
        n = self._lib.opus_decode(self._dec, packet, len(packet), self._pcm, RATE // 10, 0)
        if n < 0:
            raise OpusError(f"opus_decode: {n}")
        return self._pcm.raw[:2 * n]

    def close(self) -> None:
        if self._enc:
            self._lib.opus_encoder_destroy(self._enc)
            self._lib.opus_decoder_destroy(self._dec)
            self._enc = self._dec = None
