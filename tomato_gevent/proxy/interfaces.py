"""This host's interface addresses with their prefixes, from the kernel (netlink RTM_GETADDR),
for the proxy's default client networks (client_policy.py): which network is the listen
address on? Linux only; elsewhere (or if netlink fails) the answer is empty.

    local_networks() -> [ipaddress.IPv4Interface | IPv6Interface]   e.g. 10.0.1.1/30
    parse_addresses(data) -> the same, from the bytes of a dump (pure; tested on its own)

Wire (include/uapi/linux/netlink.h, if_addr.h): nlmsghdr (len 4, type 2, flags 2, seq 4,
pid 4), ifaddrmsg (family 1, prefixlen 1, flags 1, scope 1, index 4), then rtattrs (len 2,
type 2, data, padded to 4). IFA_LOCAL is the interface's own address where IFA_ADDRESS is a
point-to-point peer (tun devices), so it is preferred.
"""
import _socket          # the C module: never monkey-patched, so no gevent hub in a parent that forks
import ipaddress
import socket
import struct

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2

_NLMSGHDR = struct.Struct("=LHHLL")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 16}


def _align(n):
    return (n + 3) & ~3


def parse_addresses(data):
    """The interface addresses in a buffer of netlink messages (RTM_NEWADDR; others skipped)."""
    found = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        body = offset + _NLMSGHDR.size
        if kind == RTM_NEWADDR and length >= _NLMSGHDR.size + _IFADDRMSG.size:
            family, prefixlen = _IFADDRMSG.unpack_from(data, body)[:2]
            attributes = {}
            at = body + _IFADDRMSG.size
            while at + _RTATTR.size <= offset + length:
                attr_length, attr_type = _RTATTR.unpack_from(data, at)
                if attr_length < _RTATTR.size:
                    break
                attributes[attr_type] = bytes(data[at + _RTATTR.size:at + attr_length])
                at += _align(attr_length)
            raw = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
            if family in _FAMILIES and raw is not None and len(raw) == _FAMILIES[family]:
                found.append(ipaddress.ip_interface((ipaddress.ip_address(raw), prefixlen)))
        offset += _align(length)
    return found


def local_networks():
    """Every address of this host's interfaces with its prefix; [] where netlink is missing."""
    try:
        sock = _socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    except (AttributeError, OSError):
        return []
    try:
        sock.settimeout(2.0)
        request = _NLMSGHDR.pack(_NLMSGHDR.size + _IFADDRMSG.size, RTM_GETADDR,
                                 NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + _IFADDRMSG.pack(0, 0, 0, 0, 0)
        sock.send(request)
        found = []
        while True:
            data = sock.recv(65536)
            if not data:
                return found
            found += parse_addresses(data)
            if _ends_dump(data):
                return found
    except OSError:
        return []
    finally:
        sock.close()


def _ends_dump(data):
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < _NLMSGHDR.size:
            return True
        offset += _align(length)
    return False
