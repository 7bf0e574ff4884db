"""SRTP (RFC 3711) through libsrtp2 (Debian libsrtp2-1) with ctypes: AES_CM_128_HMAC_SHA1_80, the profile
every browser offers for DTLS-SRTP. One `Srtp` protects what we send, another unprotects what we receive.
Stdlib only: the gateway process (engine.py) imports it by path."""
from __future__ import annotations

import ctypes
import ctypes.util

TRAILER = 144  # SRTP_MAX_TRAILER_LEN: room srtp_protect may use after the packet
KEY_LEN, SALT_LEN = 16, 14
SSRC_ANY_INBOUND, SSRC_ANY_OUTBOUND = 2, 3


class _CryptoPolicy(ctypes.Structure):
    _fields_ = [("cipher_type", ctypes.c_uint32), ("cipher_key_len", ctypes.c_int), ("auth_type", ctypes.c_uint32),
                ("auth_key_len", ctypes.c_int), ("auth_tag_len", ctypes.c_int), ("sec_serv", ctypes.c_int)]


class _Policy(ctypes.Structure):
    pass


_Policy._fields_ = [("ssrc_type", ctypes.c_int), ("ssrc_value", ctypes.c_uint), ("rtp", _CryptoPolicy),
                    ("rtcp", _CryptoPolicy), ("key", ctypes.c_char_p), ("keys", ctypes.c_void_p),
                    ("num_master_keys", ctypes.c_ulong), ("deprecated_ekt", ctypes.c_void_p),
                    ("window_size", ctypes.c_ulong), ("allow_repeat_tx", ctypes.c_int),
                    ("enc_xtn_hdr", ctypes.c_void_p), ("enc_xtn_hdr_count", ctypes.c_int),
                    ("next", ctypes.POINTER(_Policy))]

_lib = None


def library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("srtp2") or "libsrtp2.so.1"
        lib = ctypes.CDLL(name)
        for fn in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
            getattr(lib, fn).restype = ctypes.c_int
        lib.srtp_create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Policy)]
        lib.srtp_dealloc.argtypes = [ctypes.c_void_p]
        lib.srtp_crypto_policy_set_rtp_default.argtypes = [ctypes.POINTER(_CryptoPolicy)]
        lib.srtp_crypto_policy_set_rtcp_default.argtypes = [ctypes.POINTER(_CryptoPolicy)]
        if lib.srtp_init() != 0:
            raise OSError("srtp_init failed")
        _lib = lib
    return _lib


class SrtpError(Exception):
    pass


class Srtp:
    """One direction of a session: `outbound` protects, else unprotects (key: 16 bytes, salt: 14)."""

    def __init__(self, key: bytes, salt: bytes, outbound: bool) -> None:
        lib = library()
        self._lib = lib
        self._master = ctypes.create_string_buffer(key + salt, KEY_LEN + SALT_LEN)
        policy = _Policy()
        lib.srtp_crypto_policy_set_rtp_default(ctypes.byref(policy.rtp))
        lib.srtp_crypto_policy_set_rtcp_default(ctypes.byref(policy.rtcp))
        policy.ssrc_type = SSRC_ANY_OUTBOUND if outbound else SSRC_ANY_INBOUND
        policy.key = ctypes.cast(self._master, ctypes.c_char_p)
        policy.window_size = 1024
        policy.allow_repeat_tx = 1  # a browser retransmits nothing; a relay may resend a packet
        self._session = ctypes.c_void_p()
        status = lib.srtp_create(ctypes.byref(self._session), ctypes.byref(policy))
        if status != 0:
            raise SrtpError(f"srtp_create: error {status}")
        self._buf = ctypes.create_string_buffer(2048 + TRAILER)
        self._len = ctypes.c_int()

    def _apply(self, fn, data: bytes) -> bytes:
        if len(data) > 2048:
            raise SrtpError("packet too large")
        ctypes.memmove(self._buf, data, len(data))
        self._len.value = len(data)
        status = fn(self._session, self._buf, ctypes.byref(self._len))
        if status != 0:
            raise SrtpError(f"libsrtp error {status}")
        return self._buf.raw[:self._len.value]

    def protect(self, rtp: bytes) -> bytes:
        return self._apply(self._lib.srtp_protect, rtp)

    def unprotect(self, srtp: bytes) -> bytes:
        return self._apply(self._lib.srtp_unprotect, srtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._apply(self._lib.srtp_protect_rtcp, rtcp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        return self._apply(self._lib.srtp_unprotect_rtcp, srtcp)

    def close(self) -> None:
        if self._session:
            self._lib.srtp_dealloc(self._session)
            self._session = ctypes.c_void_p()
