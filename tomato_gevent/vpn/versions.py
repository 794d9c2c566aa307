"""Which protocol version a datagram that is not ours speaks (pure).

An end of another version is refused with one log line that names both versions
(report.py), over UDP and TCP alike: the handshake (handshake.py) asks
foreign_version() about any datagram whose type byte is none of ours, and raises
VersionMismatch(version) for one it recognises. The check looks at the layout only (no
key, no crypto: a flood of look-alikes costs a comparison each):

  v2    the datagram starts with a session id whose top 48 bits are its sender's start
        time in ms since the epoch (first byte 0x00 or 0x01 until 2039), and is at
        least a v2 keepalive long (36 bytes: session id 8, counter 4, timestamp 8,
        tag 16); the start time lies within V2_PLAUSIBLE_MS of our clock
  v4+   a datagram of at least SMALLEST_MESSAGE bytes whose type byte is 0xN0 .. 0xN4
        for N > 3 (later versions keep the version in the high four bits)
Anything else is not named (it is refused as an unknown message type).
"""
from ..errors import BadPacket
from .keyschedule import PROTOCOL_VERSION
from .messages import COOKIE_REPLY, SMALLEST_MESSAGE

V2_MIN_SIZE = 8 + 4 + 8 + 16                            # a v2 keepalive
V2_PLAUSIBLE_MS = 10 * 365 * 86400 * 1000               # a v2 session id's start time within 10 years of ours
_LAST_KIND = COOKIE_REPLY & 0x0F


class VersionMismatch(BadPacket):
    """A datagram of another protocol version (version: its number)."""

    def __init__(self, version):
        super().__init__("protocol version %d" % version)
        self.version = version


def foreign_version(datagram, now_ms):
    """The protocol version another implementation's datagram speaks, or None if it does not look like one."""
    if not len(datagram):
        return None
    version, kind = datagram[0] >> 4, datagram[0] & 0x0F
    if version > PROTOCOL_VERSION and kind <= _LAST_KIND and len(datagram) >= SMALLEST_MESSAGE:
        return version
    if datagram[0] <= 1 and len(datagram) >= V2_MIN_SIZE:
        start_ms = int.from_bytes(bytes(datagram[:6]), "big")
        if abs(start_ms - now_ms) <= V2_PLAUSIBLE_MS:
            return 2
    return None
