"""ICMP echo codec for IPv4 and IPv6: bytes in, values out. No sockets, no logging.

Wire format (RFC 792, RFC 4443), the same 8-byte header for both versions:

    type (1) | code (1) | checksum (2) | identifier (2) | sequence (2) | payload ...

Outbound: `build_echo_request(version, ident, seq, payload)`. The IPv4 checksum is
computed here (RFC 1071); the ICMPv6 one covers a pseudo-header with the source address
the kernel picks, so it is left 0 and the kernel fills it (always done for ICMPv6 raw and
datagram sockets).

Inbound, in the shapes sockets hand them over:
  - raw IPv4 socket: the whole IP datagram -> `parse_ipv4_packet()` -> (source, ttl, ICMP bytes);
  - raw IPv6 socket and ICMP datagram sockets: the ICMP message alone;
  - `parse_icmp_message(version, data)` -> `EchoReply` | `IcmpError` | None.
    None means well-formed but not about an echo request (our own requests seen on a
    raw socket, neighbour discovery, an error about someone's UDP packet, redirects).
    `BadPacket` means malformed: truncated, bad IPv4 checksum, a cut-off quote.
    An ICMP error quotes the start of the packet that caused it (IP header + at least the
    8-byte echo header), which carries the identifier and sequence it is matched by and
    the destination the request was sent to.
  - datagram sockets report ICMP errors through the socket error queue instead, as a
    `struct sock_extended_err` plus the request we sent, with the request's destination
    as the entry's address: `parse_extended_error()`.
Matching identifiers, sequences and addresses against what was sent is the caller's job
(tracker.py).
"""
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Optional, Union

from ..errors import BadPacket
from ..netutil import internet_checksum

# -- wire constants ------------------------------------------------------------
ECHO_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
ECHO_HEADER_SIZE = ECHO_HEADER.size
IPV4_MIN_HEADER_SIZE = 20
IPV6_HEADER_SIZE = 40
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
MAX_IP_PACKET_SIZE = 65535
# IPv4 total length counts its own header; IPv6's payload length does not.
MAX_PAYLOAD_SIZE = {
    4: MAX_IP_PACKET_SIZE - IPV4_MIN_HEADER_SIZE - ECHO_HEADER_SIZE,
    6: MAX_IP_PACKET_SIZE - ECHO_HEADER_SIZE,
}
IP_HEADER_SIZE = {4: IPV4_MIN_HEADER_SIZE, 6: IPV6_HEADER_SIZE}

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_REDIRECT = 5
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETER_PROBLEM = 12
ICMP_FRAG_NEEDED = 4  # code of ICMP_DEST_UNREACH

ICMPV6_DEST_UNREACH = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAMETER_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129

ECHO_REQUEST_TYPE = {4: ICMP_ECHO_REQUEST, 6: ICMPV6_ECHO_REQUEST}
ECHO_REPLY_TYPE = {4: ICMP_ECHO_REPLY, 6: ICMPV6_ECHO_REPLY}
# Errors that mean "your packet was dropped". Redirects and source quench are advice
# about a packet that was still delivered, so they are not reported against a request.
ERROR_TYPES = {
    4: frozenset({ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETER_PROBLEM}),
    6: frozenset({ICMPV6_DEST_UNREACH, ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED,
                  ICMPV6_PARAMETER_PROBLEM}),
}

# linux/errqueue.h: struct sock_extended_err, followed by the offender's sockaddr.
SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, type, code, pad, info, data
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
SOCKADDR_FAMILY = struct.Struct("=H")


# -- values --------------------------------------------------------------------
@dataclass(frozen=True)
class EchoReply:
    ident: int
    seq: int
    payload: bytes

    @property
    def size(self):
        """Bytes of ICMP message, as iputils' "64 bytes from ..." counts them."""
        return ECHO_HEADER_SIZE + len(self.payload)


@dataclass(frozen=True)
class IcmpError:
    """An ICMP error about an echo request, identified by its quoted ident, seq and destination.

    info is the MTU for "fragmentation needed" / "packet too big", the pointer for
    "parameter problem", else 0. destination is where the failed request was sent
    (an ipaddress object; None if the error does not say).
    """
    version: int
    icmp_type: int
    icmp_code: int
    info: int
    ident: int
    seq: int
    destination: Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]

    @property
    def reason(self):
        return describe_icmp_error(self.version, self.icmp_type, self.icmp_code, self.info)


@dataclass(frozen=True)
class LocalError:
    """The local stack refused one of our requests after accepting it (error queue, origin local)."""
    ident: int
    seq: int
    errno: int
    info: int

    @property
    def reason(self):
        text = "local error: %s" % os.strerror(self.errno)
        if self.info:
            text += " (mtu = %d)" % self.info
        return text


Message = Union[EchoReply, IcmpError, LocalError]


# -- checksum and outbound -----------------------------------------------------
def build_echo_request(version, ident, seq, payload):
    """An echo request message (no IP header). IPv6 leaves the checksum to the kernel."""
    _check_version(version)
    kind = ECHO_REQUEST_TYPE[version]
    message = ECHO_HEADER.pack(kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + bytes(payload)
    if version == 4:
        message = message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]
    return message


def make_payload(size):
    """The request payload: a fixed byte pattern (replies are compared against it)."""
    return bytes(i & 0xFF for i in range(size))


# -- inbound -------------------------------------------------------------------
def parse_ipv4_packet(packet):
    """A raw IPv4 socket's datagram -> (source IPv4Address, ttl, ICMP message bytes)."""
    if len(packet) < IPV4_MIN_HEADER_SIZE:
        raise BadPacket("truncated IPv4 header (%d bytes)" % len(packet))
    if packet[0] >> 4 != 4:
        raise BadPacket("not an IPv4 packet (version %d)" % (packet[0] >> 4))
    header_size = (packet[0] & 0x0F) * 4
    if header_size < IPV4_MIN_HEADER_SIZE or len(packet) < header_size:
        raise BadPacket("bad IPv4 header length %d" % header_size)
    if packet[9] != IPPROTO_ICMP:
        raise BadPacket("not ICMP (protocol %d)" % packet[9])
    return ipaddress.IPv4Address(bytes(packet[12:16])), packet[8], bytes(packet[header_size:])


def parse_icmp_message(version, data) -> Optional[Message]:
    """One ICMP message -> EchoReply | IcmpError (about an echo request) | None (not about echo).

    Raises BadPacket for malformed messages. The IPv4 checksum is verified (a raw socket
    gets packets before the kernel's ICMP layer checks them); the ICMPv6 one needs the
    addresses of the pseudo-header and is verified by the kernel.
    """
    _check_version(version)
    if len(data) < ECHO_HEADER_SIZE:
        raise BadPacket("truncated ICMP header (%d bytes)" % len(data))
    if version == 4 and internet_checksum(data) != 0:
        raise BadPacket("bad ICMP checksum")
    kind, code, _, ident, seq = ECHO_HEADER.unpack_from(data)
    if kind == ECHO_REPLY_TYPE[version]:
        return EchoReply(ident, seq, bytes(data[ECHO_HEADER_SIZE:]))
    if kind in ERROR_TYPES[version]:
        return _parse_icmp_error(version, kind, code, data)
    return None


def _parse_icmp_error(version, kind, code, data):
    if version == 4:
        info = 0
        if kind == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
            info = struct.unpack_from("!H", data, 6)[0]
        elif kind == ICMP_PARAMETER_PROBLEM:
            info = data[4]
    else:
        info = struct.unpack_from("!I", data, 4)[0] if kind in (ICMPV6_PACKET_TOO_BIG,
                                                                ICMPV6_PARAMETER_PROBLEM) else 0
    quoted = _quoted_echo_request(version, bytes(data[ECHO_HEADER_SIZE:]))
    if quoted is None:
        return None
    ident, seq, destination = quoted
    return IcmpError(version, kind, code, info, ident, seq, destination)


def _quoted_echo_request(version, quote):
    """(ident, seq, destination) of the echo request an ICMP error quotes; None if it quotes
    something else."""
    if version == 4:
        if len(quote) < IPV4_MIN_HEADER_SIZE:
            raise BadPacket("ICMP error quotes a truncated IPv4 header")
        header_size = (quote[0] & 0x0F) * 4
        if quote[0] >> 4 != 4 or header_size < IPV4_MIN_HEADER_SIZE:
            raise BadPacket("ICMP error quotes a malformed IPv4 header")
        protocol = quote[9]
        wanted = IPPROTO_ICMP
        destination = ipaddress.IPv4Address(quote[16:20])
    else:
        if len(quote) < IPV6_HEADER_SIZE:
            raise BadPacket("ICMPv6 error quotes a truncated IPv6 header")
        if quote[0] >> 4 != 6:
            raise BadPacket("ICMPv6 error quotes a malformed IPv6 header")
        header_size = IPV6_HEADER_SIZE
        protocol = quote[6]  # next header; we never send extension headers
        wanted = IPPROTO_ICMPV6
        destination = ipaddress.IPv6Address(quote[24:40])
    if protocol != wanted:
        return None
    inner = quote[header_size:]
    if len(inner) < ECHO_HEADER_SIZE:
        raise BadPacket("ICMP error quotes less than an ICMP header")
    kind, _, _, ident, seq = ECHO_HEADER.unpack_from(inner)
    if kind != ECHO_REQUEST_TYPE[version]:
        return None
    return ident, seq, destination


def parse_extended_error(version, extended_error, original, destination):
    """An error-queue entry of an ICMP datagram socket -> (IcmpError | LocalError | None, offender).

    extended_error is the IP_RECVERR / IPV6_RECVERR control message data (struct
    sock_extended_err + offender sockaddr); original is the message data returned with
    it: the echo request we sent, identifier as the kernel rewrote it; destination is
    where that request went (the entry's address as an ipaddress object, or None).
    offender is the address that sent the ICMP error (ipaddress object) or None.
    """
    _check_version(version)
    if len(extended_error) < SOCK_EXTENDED_ERR.size:
        raise BadPacket("truncated sock_extended_err (%d bytes)" % len(extended_error))
    errno, origin, kind, code, _, info, _ = SOCK_EXTENDED_ERR.unpack_from(extended_error)
    if origin == SO_EE_ORIGIN_LOCAL and len(original) < ECHO_HEADER_SIZE:
        # ip_local_error() returns no payload: the request cannot be named, and the
        # sendto() that caused it already failed with the same errno.
        return None, None
    if len(original) < ECHO_HEADER_SIZE:
        raise BadPacket("error queue returned a truncated request (%d bytes)" % len(original))
    sent_kind, _, _, ident, seq = ECHO_HEADER.unpack_from(original)
    if sent_kind != ECHO_REQUEST_TYPE[version]:
        raise BadPacket("error queue returned something that is not an echo request")
    offender = _parse_sockaddr(extended_error[SOCK_EXTENDED_ERR.size:])
    if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
        if kind not in ERROR_TYPES[version]:
            return None, offender
        return IcmpError(version, kind, code, info, ident, seq, destination), offender
    if origin == SO_EE_ORIGIN_LOCAL:
        return LocalError(ident, seq, errno, info), None
    return None, offender


def _parse_sockaddr(data):
    """sockaddr_in / sockaddr_in6 (family in host order, address in network order) -> address."""
    if len(data) < SOCKADDR_FAMILY.size:
        return None
    family = SOCKADDR_FAMILY.unpack_from(data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return ipaddress.IPv4Address(bytes(data[4:8]))
    if family == socket.AF_INET6 and len(data) >= 24:
        return ipaddress.IPv6Address(bytes(data[8:24]))
    return None


# -- human-readable reasons (iputils' wording) ---------------------------------
_IPV4_UNREACHABLE = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    4: "Frag needed and DF set (mtu = {info})",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service",
    13: "Packet filtered",
    14: "Precedence Violation",
    15: "Precedence Cutoff",
}
_IPV4_TIME_EXCEEDED = {0: "Time to live exceeded", 1: "Frag reassembly time exceeded"}
_IPV6_UNREACHABLE = {
    0: "No route",
    1: "Administratively prohibited",
    2: "Beyond scope of source address",
    3: "Address unreachable",
    4: "Port unreachable",
    5: "Source address failed ingress/egress policy",
    6: "Reject route to destination",
}
_IPV6_TIME_EXCEEDED = {0: "Hop limit", 1: "Defragmentation failure"}
_IPV6_PARAMETER_PROBLEM = {0: "Wrong header field", 1: "Unknown header", 2: "Unknown option"}


def describe_icmp_error(version, kind, code, info=0):
    """The text iputils prints for an ICMP error, e.g. "Destination Host Unreachable"."""
    if version == 4:
        if kind == ICMP_DEST_UNREACH:
            return _IPV4_UNREACHABLE.get(code, "Dest Unreachable, Bad Code: %d" % code).format(info=info)
        if kind == ICMP_TIME_EXCEEDED:
            return _IPV4_TIME_EXCEEDED.get(code, "Time exceeded, Bad Code: %d" % code)
        if kind == ICMP_PARAMETER_PROBLEM:
            return "Parameter problem: pointer = %d" % info
        return "Bad ICMP type: %d" % kind
    if kind == ICMPV6_DEST_UNREACH:
        return "Destination unreachable: " + _IPV6_UNREACHABLE.get(code, "Unknown code %d" % code)
    if kind == ICMPV6_PACKET_TOO_BIG:
        return "Packet too big: mtu=%d" % info
    if kind == ICMPV6_TIME_EXCEEDED:
        return "Time exceeded: " + _IPV6_TIME_EXCEEDED.get(code, "Unknown code %d" % code)
    if kind == ICMPV6_PARAMETER_PROBLEM:
        return "Parameter problem: %s at %d" % (_IPV6_PARAMETER_PROBLEM.get(code, "code %d" % code), info)
    return "Unknown ICMPv6 type: %d" % kind


def _check_version(version):
    if version not in (4, 6):
        raise ValueError("IP version must be 4 or 6, not %r" % (version,))
