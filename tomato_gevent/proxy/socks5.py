"""SOCKS5 (RFC 1928) and its username/password method (RFC 1929) as pure codecs.

Wire (all integers big-endian):

    client greeting   VER=5 | NMETHODS | METHODS (NMETHODS bytes)
    method choice     VER=5 | METHOD             (0x00 none, 0x02 user/pass, 0xFF none acceptable)
    user/pass         VER=1 | ULEN | UNAME | PLEN | PASSWD      (RFC 1929)
    user/pass reply   VER=1 | STATUS             (0x00 success, anything else: close)
    request           VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT (2)
    reply             VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT (2)
    UDP datagram      RSV=0 (2) | FRAG | ATYP | DST.ADDR | DST.PORT (2) | DATA   (RFC 1928 7)
      ATYP 1: 4-byte IPv4; 3: length byte + name; 4: 16-byte IPv6
      CMD 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE

Each ``parse_*(buf)`` takes the bytes received so far and returns None while a
message is incomplete ("need more"), else a value whose ``length`` says how
many bytes of buf it used (a client may send the next message behind it).
Bad input raises ``SocksError``; its ``reply`` is what the protocol lets us say
before closing: the reply code for a bad request, None where SOCKS has no way
to say it (a wrong version byte) - the caller then just closes. No I/O here.
"""
import ipaddress
import socket
import struct
from typing import FrozenSet, NamedTuple, Optional

from ..errors import RemoteProtocolError

VERSION = 0x05
AUTH_VERSION = 0x01                 # RFC 1929 subnegotiation version

METHOD_NO_AUTH = 0x00
METHOD_USERNAME_PASSWORD = 0x02
METHOD_NONE_ACCEPTABLE = 0xFF

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP_ASSOCIATE = 0x03
COMMAND_NAMES = {CMD_CONNECT: "CONNECT", CMD_BIND: "BIND", CMD_UDP_ASSOCIATE: "UDP-ASSOCIATE"}

ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

# Reply codes (RFC 1928 6).
SUCCEEDED = 0x00
GENERAL_FAILURE = 0x01
NOT_ALLOWED = 0x02                  # connection not allowed by ruleset
NETWORK_UNREACHABLE = 0x03
HOST_UNREACHABLE = 0x04
CONNECTION_REFUSED = 0x05
TTL_EXPIRED = 0x06                  # we use it for "timed out"
COMMAND_NOT_SUPPORTED = 0x07
ADDRESS_TYPE_NOT_SUPPORTED = 0x08

AUTH_SUCCESS = 0x00
AUTH_FAILURE = 0x01


class SocksError(RemoteProtocolError):
    """The client broke SOCKS5. reply: the code to answer before closing, or None (just close)."""

    def __init__(self, msg, reply=None):
        super().__init__(msg, status_hint=400)
        self.reply = reply


class Greeting(NamedTuple):
    methods: FrozenSet[int]
    length: int


class Credentials(NamedTuple):
    username: bytes
    password: bytes
    length: int


class Request(NamedTuple):
    command: int                    # CMD_*
    host: str                       # IP literal text, or the name as sent (UTF-8 decoded)
    port: int
    address_type: int               # ATYP_*
    length: int


def parse_greeting(buf) -> Optional[Greeting]:
    """VER NMETHODS METHODS -> Greeting, None if incomplete; SocksError if not SOCKS5."""
    if not buf:
        return None
    if buf[0] != VERSION:
        raise SocksError("not SOCKS5 (version byte 0x%02x)" % buf[0])
    if len(buf) < 2:
        return None
    count = buf[1]
    if count == 0:
        raise SocksError("greeting offers no authentication method", reply=METHOD_NONE_ACCEPTABLE)
    end = 2 + count
    if len(buf) < end:
        return None
    return Greeting(frozenset(buf[2:end]), end)


def choose_method(methods, password_required: bool) -> int:
    """The method to select from the client's offer; METHOD_NONE_ACCEPTABLE if none fits.

    With credentials configured only username/password will do. Without, no-auth is
    preferred; a client that offers only username/password is let in with any.
    """
    if password_required:
        return METHOD_USERNAME_PASSWORD if METHOD_USERNAME_PASSWORD in methods else METHOD_NONE_ACCEPTABLE
    if METHOD_NO_AUTH in methods:
        return METHOD_NO_AUTH
    if METHOD_USERNAME_PASSWORD in methods:
        return METHOD_USERNAME_PASSWORD
    return METHOD_NONE_ACCEPTABLE


def render_method_choice(method: int) -> bytes:
    return bytes((VERSION, method))


def parse_credentials(buf) -> Optional[Credentials]:
    """RFC 1929 VER ULEN UNAME PLEN PASSWD -> Credentials, None if incomplete.

    SocksError(reply=AUTH_FAILURE) for a wrong subnegotiation version or an empty
    username (RFC 1929: 1 to 255 bytes each; an empty password is tolerated).
    """
    if not buf:
        return None
    if buf[0] != AUTH_VERSION:
        raise SocksError("username/password subnegotiation version 0x%02x, expected 0x01" % buf[0],
                         reply=AUTH_FAILURE)
    if len(buf) < 2:
        return None
    user_end = 2 + buf[1]
    if buf[1] == 0:
        raise SocksError("empty username", reply=AUTH_FAILURE)
    if len(buf) < user_end + 1:
        return None
    pass_end = user_end + 1 + buf[user_end]
    if len(buf) < pass_end:
        return None
    return Credentials(bytes(buf[2:user_end]), bytes(buf[user_end + 1:pass_end]), pass_end)


def render_auth_reply(ok: bool) -> bytes:
    return bytes((AUTH_VERSION, AUTH_SUCCESS if ok else AUTH_FAILURE))


def render_credentials(username: bytes, password: bytes) -> bytes:
    """The client's side of RFC 1929 (tests and the benchmark speak it)."""
    return bytes((AUTH_VERSION, len(username))) + username + bytes((len(password),)) + password


def parse_request(buf) -> Optional[Request]:
    """VER CMD RSV ATYP DST.ADDR DST.PORT -> Request, None if incomplete.

    SocksError with reply COMMAND_NOT_SUPPORTED (unknown CMD), ADDRESS_TYPE_NOT_SUPPORTED
    (unknown ATYP), HOST_UNREACHABLE (a name that is empty or not UTF-8), GENERAL_FAILURE
    (a non-zero reserved byte), None (wrong version: close).
    BIND and UDP ASSOCIATE parse; whether they are served is the caller's business.
    """
    if not buf:
        return None
    if buf[0] != VERSION:
        raise SocksError("request with version byte 0x%02x" % buf[0])
    if len(buf) < 4:
        return None
    command, reserved, address_type = buf[1], buf[2], buf[3]
    if command not in COMMAND_NAMES:
        raise SocksError("unknown command 0x%02x" % command, reply=COMMAND_NOT_SUPPORTED)
    if reserved != 0:
        raise SocksError("reserved byte 0x%02x is not zero" % reserved, reply=GENERAL_FAILURE)
    if address_type == ATYP_IPV4:
        end = 4 + 4
        if len(buf) < end + 2:
            return None
        host = socket.inet_ntop(socket.AF_INET, bytes(buf[4:end]))   # ipaddress's text, in C
    elif address_type == ATYP_IPV6:
        end = 4 + 16
        if len(buf) < end + 2:
            return None
        host = str(ipaddress.IPv6Address(bytes(buf[4:end])))
    elif address_type == ATYP_DOMAIN:
        if len(buf) < 5:
            return None
        end = 5 + buf[4]
        if len(buf) < end + 2:
            return None
        if buf[4] == 0:
            raise SocksError("empty host name", reply=HOST_UNREACHABLE)
        try:
            host = bytes(buf[5:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise SocksError("host name is not UTF-8: %r" % bytes(buf[5:end])[:80],
                             reply=HOST_UNREACHABLE) from None
    else:
        raise SocksError("unknown address type 0x%02x" % address_type, reply=ADDRESS_TYPE_NOT_SUPPORTED)
    port = struct.unpack_from("!H", buf, end)[0]
    return Request(command, host, port, address_type, end + 2)


def render_request(command: int, host: str, port: int) -> bytes:
    """The client's side of a request: IP literals as ATYP 1/4, anything else as a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("utf-8")
        if not 0 < len(name) < 256:
            raise ValueError("a SOCKS5 host name is 1 to 255 bytes") from None
        target = bytes((ATYP_DOMAIN, len(name))) + name
    else:
        target = bytes((ATYP_IPV4 if address.version == 4 else ATYP_IPV6,)) + address.packed
    return bytes((VERSION, command, 0)) + target + struct.pack("!H", port)


def render_reply(code: int, bound=None) -> bytes:
    """Reply with code; bound = (ip text, port) of our end of the outgoing connection
    (for success; getsockname()'s text, an IPv6 zone allowed), else 0.0.0.0:0 as most
    servers send on failure. inet_pton, not ipaddress: this runs once per session."""
    if bound is None:
        return bytes((VERSION, code, 0, ATYP_IPV4)) + bytes(6)
    host, port = bound[0], bound[1]
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        return bytes((VERSION, code, 0, ATYP_IPV6)) + packed + port.to_bytes(2, "big")
    return bytes((VERSION, code, 0, ATYP_IPV4)) + socket.inet_pton(socket.AF_INET, host) + port.to_bytes(2, "big")


class UdpDatagram(NamedTuple):
    host: str                       # as in Request
    port: int
    address_type: int
    payload: bytes


def parse_udp_datagram(datagram) -> UdpDatagram:
    """A datagram from a UDP ASSOCIATE client -> UdpDatagram; SocksError if malformed,
    truncated or a fragment (FRAG != 0: RFC 1928 lets a relay that does not reassemble
    drop those, and we do)."""
    if len(datagram) < 4:
        raise SocksError("UDP datagram of %d bytes, shorter than its header" % len(datagram))
    if datagram[0] or datagram[1]:
        raise SocksError("UDP datagram with non-zero reserved bytes")
    if datagram[2]:
        raise SocksError("fragmented UDP datagram (FRAG 0x%02x): not supported" % datagram[2])
    header = parse_request(bytes((VERSION, CMD_UDP_ASSOCIATE, 0)) + bytes(datagram[3:]))
    if header is None:
        raise SocksError("UDP datagram truncated inside its address")
    return UdpDatagram(header.host, header.port, header.address_type, bytes(datagram[header.length:]))


def render_udp_header(host: str, port: int) -> bytes:
    """The header in front of a datagram relayed to the client (host: an IP literal, where
    it came from), or of one a client sends (host: a literal or a name)."""
    return b"\0\0\0" + render_request(CMD_UDP_ASSOCIATE, host, port)[3:]


class Reply(NamedTuple):
    code: int
    host: str
    port: int
    length: int


def parse_reply(buf) -> Optional[Reply]:
    """The client's side: a server's reply (tests and the benchmark read it)."""
    if len(buf) < 4:
        return None
    if buf[0] != VERSION:
        raise SocksError("reply with version byte 0x%02x" % buf[0])
    request = parse_request(bytes((VERSION, CMD_CONNECT, 0)) + bytes(buf[3:]))
    if request is None:
        return None
    return Reply(buf[1], request.host, request.port, request.length)
