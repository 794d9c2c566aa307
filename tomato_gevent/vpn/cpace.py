"""CPace over ristretto255 with SHA-512 (draft-irtf-cfrg-cpace, suite CPACE-RISTR255-SHA512), pure.

The balanced PAKE of the v3 handshake (handshake.py). Both parties hold the same
password-related string PRS; each sends one share Y = y * g, where the generator g is
hashed from PRS, the channel identifier CI and the session id sid; both derive

    K   = y_own * Y_other                (refused if it is the identity or Y does not decode)
    ISK = SHA-512(lv_cat(DSI || "_ISK", sid, K) || lv_cat(Ya, ADa) || lv_cat(Yb, ADb))

(initiator-responder transcript). A recording of Ya, Yb and anything keyed by ISK gives
an eavesdropper nothing to test a password guess against; an active party learns
whether one guess (the PRS it used) was right, per run. The group operations are
libsodium's (crypto_core_ristretto255_from_hash, crypto_scalarmult_ristretto255:
constant time, prime-order group, invalid encodings refused), through pysodium.
Explicit key confirmation follows the draft's "Key confirmation" section: each party
sends Ta or Tb, a MAC over its own message under mac_key = SHA-512("CPaceMac" || sid || ISK).

Names follow the draft (prepend_len, lv_cat, generator_string, ...), so its test
vectors (tests/unit/test_vpn_cpace.py) apply function by function.
"""
import hashlib
import hmac

DSI = b"CPaceRistretto255"
HASH_BLOCK_BYTES = 128          # SHA-512's input block size (H.s_in_bytes)
POINT_SIZE = 32                 # an encoded ristretto255 element
SCALAR_SIZE = 32
IDENTITY = bytes(POINT_SIZE)    # G.I, the encoding of the neutral element
TAG_SIZE = 16                   # confirmation tags: HMAC-SHA-512 truncated (RFC 4868 style)


class CPaceError(Exception):
    """The peer's share does not decode to a group element, or the result is the identity."""


def _sodium():
    import pysodium     # libsodium through ctypes; imported on first use (the data path never needs it)

    return pysodium


def prepend_len(data):
    """LEB128 length of data, then data."""
    length = len(data)
    encoded = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        encoded.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(encoded) + bytes(data)


def lv_cat(*parts):
    return b"".join(prepend_len(part) for part in parts)


def generator_string(dsi, prs, ci, sid, s_in_bytes=HASH_BLOCK_BYTES):
    """lv_cat(DSI, PRS, zero padding, CI, sid): DSI, PRS and the padding fill the first hash block."""
    len_zpad = max(0, s_in_bytes - 1 - len(prepend_len(prs)) - len(prepend_len(dsi)))
    return lv_cat(dsi, prs, bytes(len_zpad), ci, sid)


def calculate_generator(prs, ci, sid):
    """The generator g (encoded) for this password, channel and session."""
    digest = hashlib.sha512(generator_string(DSI, prs, ci, sid)).digest()
    return _sodium().crypto_core_ristretto255_from_hash(digest)


def sample_scalar(random_bytes):
    """32 random bytes with the bits above the group size (252) cleared, as the draft recommends."""
    scalar = bytearray(random_bytes(SCALAR_SIZE))
    scalar[31] &= 0x0F
    return bytes(scalar)


def scalar_mult(scalar, point):
    """scalar * point, encoded; CPaceError if point does not decode or the result is the identity."""
    try:
        return _sodium().crypto_scalarmult_ristretto255(scalar, point)
    except ValueError:
        raise CPaceError("invalid share") from None


def scalar_mult_vfy(scalar, point):
    """The draft's scalar_mult_vfy: IDENTITY for a point that does not decode or a result that is the identity."""
    try:
        return scalar_mult(scalar, point)
    except CPaceError:
        return IDENTITY


def transcript_ir(ya, ada, yb, adb):
    return lv_cat(ya, ada) + lv_cat(yb, adb)


def intermediate_session_key(sid, k, ya, ada, yb, adb):
    """ISK of the initiator-responder setting."""
    return hashlib.sha512(lv_cat(DSI + b"_ISK", sid, k) + transcript_ir(ya, ada, yb, adb)).digest()


def derive_isk(own_scalar, peer_share, sid, ya, ada, yb, adb):
    """K = own_scalar * peer_share, then the ISK; CPaceError (abort) where the draft says K = G.I."""
    k = scalar_mult_vfy(own_scalar, peer_share)
    if hmac.compare_digest(k, IDENTITY):
        raise CPaceError("invalid share")
    return intermediate_session_key(sid, k, ya, ada, yb, adb)


def confirmation_tags(sid, isk, ya, ada, yb, adb):
    """(Ta, Tb): each party's MAC over its own message, under mac_key = SHA-512("CPaceMac" || sid || ISK)."""
    mac_key = hashlib.sha512(b"CPaceMac" + sid + isk).digest()
    ta = hmac.digest(mac_key, lv_cat(ya, ada), "sha512")[:TAG_SIZE]
    tb = hmac.digest(mac_key, lv_cat(yb, adb), "sha512")[:TAG_SIZE]
    return ta, tb


__all__ = ["CPaceError", "calculate_generator", "sample_scalar", "scalar_mult", "derive_isk", "confirmation_tags",
           "lv_cat", "prepend_len", "generator_string", "scalar_mult_vfy", "intermediate_session_key"]
