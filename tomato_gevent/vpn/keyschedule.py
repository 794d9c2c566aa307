"""Key schedule of protocol v3 (pure): from the two passwords to one data key per direction.

    password key   Kp = scrypt(password, "tomato-vpn v3 password", n=2^15, r=8, p=1), 32 bytes,
                   once per start for -lp and for -pp (the process keeps no password in clear)
    PRS            lv_cat(Kp of the initiator's -lp, Kp of the responder's -lp): both ends build
                   the same string (the initiator from (lp, pp), the responder from (pp, lp)),
                   ordered by role, so a host's own initiation reflected back at it uses
                   (pp, lp) and agrees on nothing (the passwords differ: the CLI refuses equal ones)
    CI             "tomato-vpn v3"
    sid            the initiation's 16 random bytes
    ISK            CPace (cpace.py) over ristretto255 / SHA-512, initiator-responder transcript
    data keys      HKDF-SHA-512(ikm=ISK, salt="tomato-vpn v3", info=label, 32 bytes) with
                   info "initiator to responder" / "responder to initiator": one AES-256-GCM
                   key per direction and per handshake
    mac1           keyed BLAKE2s-128 under BLAKE2s-256("tomato-vpn v3 mac1") over the message
                   up to mac1: a public checksum that lets junk and other versions be dropped
                   before any group operation (it proves nothing about passwords: it must not,
                   or it would be an offline password oracle)
    cookie         BLAKE2s-128 keyed by a random secret (new every COOKIE_SECRET_SECONDS) over the
                   source address; mac2 = BLAKE2s-128 keyed by the cookie over the message up to mac2
"""
import hashlib

from . import cpace

PROTOCOL_VERSION = 3
PROTOCOL = "tomato-vpn v%d" % PROTOCOL_VERSION
CHANNEL_ID = PROTOCOL.encode()                          # CPace's CI
SCRYPT_SALT = CHANNEL_ID + b" password"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1            # as v2: ~32 MiB and ~0.1 s, once per start
PASSWORD_KEY_SIZE = 32
DATA_KEY_SIZE = 32                                      # AES-256-GCM
HKDF_SALT = CHANNEL_ID
LABEL_INITIATOR_TO_RESPONDER = b"initiator to responder"
LABEL_RESPONDER_TO_INITIATOR = b"responder to initiator"
MAC_SIZE = 16
COOKIE_SIZE = 16
MAC1_KEY = hashlib.blake2s(CHANNEL_ID + b" mac1").digest()


def derive_password_key(password):
    """scrypt of a password (str or bytes): the slow step, done once per start."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if isinstance(password, str):
        password = password.encode("utf-8")
    return Scrypt(salt=SCRYPT_SALT, length=PASSWORD_KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password)


def password_related_string(initiator_key, responder_key):
    """CPace's PRS: the two password keys, the initiator's first."""
    return cpace.lv_cat(initiator_key, responder_key)


def data_keys(isk):
    """(initiator-to-responder key, responder-to-initiator key) of one handshake."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return tuple(HKDF(algorithm=hashes.SHA512(), length=DATA_KEY_SIZE, salt=HKDF_SALT, info=label).derive(isk)
                 for label in (LABEL_INITIATOR_TO_RESPONDER, LABEL_RESPONDER_TO_INITIATOR))


def mac1(data):
    return hashlib.blake2s(data, digest_size=MAC_SIZE, key=MAC1_KEY).digest()


def make_cookie(secret, source_bytes):
    return hashlib.blake2s(source_bytes, digest_size=COOKIE_SIZE, key=secret).digest()


def mac2(cookie, data):
    return hashlib.blake2s(data, digest_size=MAC_SIZE, key=cookie).digest()


__all__ = ["PROTOCOL", "PROTOCOL_VERSION", "derive_password_key", "password_related_string", "data_keys", "mac1",
           "make_cookie", "mac2"]
