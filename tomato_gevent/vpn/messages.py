r"""Handshake messages of protocol v3 (pure): layouts, encoding, parsing.

Every v3 datagram starts with a type byte whose high nibble is the protocol version (3):

  0x30 data           (keypair.py)
  0x31 initiation     type | 0 0 0 | sender index (4) | timestamp ms (8) | sid (16) | Ya (32) | mac1 | mac2
                      96 bytes; ADa = bytes 0..32 (type .. sid)
  0x32 response       type | 0 0 0 | sender index (4) | receiver index (4) | Yb (32) | Tb (16) | mac1
                      76 bytes; ADb = bytes 0..12 (type .. receiver index)
  0x33 confirmation   type | 0 0 0 | receiver index (4) | Ta (16)                       24 bytes
  0x34 cookie reply   type | 0 0 0 | receiver index (4) | mac1 echoed (16) | cookie (16) 40 bytes

Integers are big-endian; mac1 and mac2 are 16 bytes (keyschedule.py) over all bytes before
them; reserved bytes are sent as zero and a message whose reserved bytes are not zero is
refused. A datagram of another layout or length is refused by parse_* with BadPacket.
A datagram of another version is named by versions.py.
"""
import collections
import struct

from ..errors import BadPacket
from . import keyschedule
from .cpace import POINT_SIZE, TAG_SIZE
from .keyschedule import MAC_SIZE, COOKIE_SIZE

VERSION_NIBBLE = keyschedule.PROTOCOL_VERSION << 4
DATA = VERSION_NIBBLE | 0
INITIATION = VERSION_NIBBLE | 1
RESPONSE = VERSION_NIBBLE | 2
CONFIRMATION = VERSION_NIBBLE | 3
COOKIE_REPLY = VERSION_NIBBLE | 4

SID_SIZE = 16
INDEX_SIZE = 4
TIMESTAMP_SIZE = 8

_INITIATION_HEAD = struct.Struct(">B3xIQ16s")           # type, sender, timestamp, sid: ADa
_RESPONSE_HEAD = struct.Struct(">B3xII")                 # type, sender, receiver: ADb
_SHORT_HEAD = struct.Struct(">B3xI")                     # type, receiver
_INITIATION_FIXED = struct.Struct(">IIQ")                # type and reserved, sender, timestamp
INITIATION_AD_SIZE = _INITIATION_HEAD.size               # 32
RESPONSE_AD_SIZE = _RESPONSE_HEAD.size                   # 12
INITIATION_SIZE = INITIATION_AD_SIZE + POINT_SIZE + 2 * MAC_SIZE          # 96
RESPONSE_SIZE = RESPONSE_AD_SIZE + POINT_SIZE + TAG_SIZE + MAC_SIZE       # 76
CONFIRMATION_SIZE = _SHORT_HEAD.size + TAG_SIZE                           # 24
COOKIE_REPLY_SIZE = _SHORT_HEAD.size + MAC_SIZE + COOKIE_SIZE             # 40
INITIATION_MAC1_OFFSET = INITIATION_SIZE - 2 * MAC_SIZE
INITIATION_MAC2_OFFSET = INITIATION_SIZE - MAC_SIZE
RESPONSE_MAC1_OFFSET = RESPONSE_SIZE - MAC_SIZE
SMALLEST_MESSAGE = CONFIRMATION_SIZE

Initiation = collections.namedtuple("Initiation", "sender timestamp_ms sid share ad mac1 mac2 raw")
Response = collections.namedtuple("Response", "sender receiver share tag ad")
Confirmation = collections.namedtuple("Confirmation", "receiver tag")
CookieReply = collections.namedtuple("CookieReply", "receiver mac1 cookie")


def message_type(datagram):
    return datagram[0] if len(datagram) else None


# -- encoding -----------------------------------------------------------------------
def initiation_ad(sender, timestamp_ms, sid):
    return _INITIATION_HEAD.pack(INITIATION, sender, timestamp_ms, sid)


def encode_initiation(ad, share, cookie=None):
    """The 96-byte initiation: ADa, Ya, mac1, mac2 (zero without a cookie)."""
    body = ad + share
    body += keyschedule.mac1(body)
    return body + (keyschedule.mac2(cookie, body) if cookie is not None else bytes(MAC_SIZE))


def response_ad(sender, receiver):
    return _RESPONSE_HEAD.pack(RESPONSE, sender, receiver)


def encode_response(ad, share, tag):
    body = ad + share + tag
    return body + keyschedule.mac1(body)


def encode_confirmation(receiver, tag):
    return _SHORT_HEAD.pack(CONFIRMATION, receiver) + tag


def encode_cookie_reply(receiver, echoed_mac1, cookie):
    return _SHORT_HEAD.pack(COOKIE_REPLY, receiver) + echoed_mac1 + cookie


# -- parsing: BadPacket for anything else --------------------------------------------
def _check(datagram, size, kind):
    if len(datagram) != size:
        raise BadPacket("bad %s length" % kind)
    if datagram[1] or datagram[2] or datagram[3]:
        raise BadPacket("bad %s reserved bytes" % kind)


def parse_initiation(datagram):
    """Initiation fields; BadPacket for a bad length, reserved bytes or mac1 (mac2 is the
    caller's: it needs the cookie). Lean: it runs for every initiation a flood sends."""
    if len(datagram) != INITIATION_SIZE:
        raise BadPacket("bad initiation length")
    datagram = bytes(datagram)
    head, sender, timestamp_ms = _INITIATION_FIXED.unpack_from(datagram)
    if head != INITIATION << 24:
        raise BadPacket("bad initiation reserved bytes")
    mac1 = datagram[INITIATION_MAC1_OFFSET:INITIATION_MAC2_OFFSET]
    if keyschedule.mac1(datagram[:INITIATION_MAC1_OFFSET]) != mac1:
        raise BadPacket("bad initiation mac1")
    return Initiation(sender, timestamp_ms, datagram[16:INITIATION_AD_SIZE],
                      datagram[INITIATION_AD_SIZE:INITIATION_MAC1_OFFSET], datagram[:INITIATION_AD_SIZE], mac1,
                      datagram[INITIATION_MAC2_OFFSET:], datagram)


def initiation_mac2_valid(datagram, cookie):
    if type(datagram) is not bytes:
        datagram = bytes(datagram)
    return keyschedule.mac2(cookie, datagram[:INITIATION_MAC2_OFFSET]) == datagram[INITIATION_MAC2_OFFSET:]


def parse_response(datagram):
    datagram = bytes(datagram)
    _check(datagram, RESPONSE_SIZE, "response")
    if keyschedule.mac1(datagram[:RESPONSE_MAC1_OFFSET]) != datagram[RESPONSE_MAC1_OFFSET:]:
        raise BadPacket("bad response mac1")
    _, sender, receiver = _RESPONSE_HEAD.unpack_from(datagram)
    share_end = RESPONSE_AD_SIZE + POINT_SIZE
    return Response(sender, receiver, datagram[RESPONSE_AD_SIZE:share_end], datagram[share_end:RESPONSE_MAC1_OFFSET],
                    datagram[:RESPONSE_AD_SIZE])


def parse_confirmation(datagram):
    datagram = bytes(datagram)
    _check(datagram, CONFIRMATION_SIZE, "confirmation")
    return Confirmation(_SHORT_HEAD.unpack_from(datagram)[1], datagram[_SHORT_HEAD.size:])


def parse_cookie_reply(datagram):
    datagram = bytes(datagram)
    _check(datagram, COOKIE_REPLY_SIZE, "cookie reply")
    start = _SHORT_HEAD.size
    return CookieReply(_SHORT_HEAD.unpack_from(datagram)[1], datagram[start:start + MAC_SIZE],
                       datagram[start + MAC_SIZE:])
