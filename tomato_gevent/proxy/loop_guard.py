"""Forwarding loops: a proxy whose -f leads back to itself, directly or through others.

    new_via_token() -> bytes          "tomato-" + 8 random hex digits: this proxy's Via
                                      pseudonym (RFC 9110 7.6.3), one per ProxyServer, made
                                      before --workers fork, so all workers share it
    carries_token(fields, token)      does a request's Via (in its end-to-end field lines)
                                      name us? Then it came through this proxy before: 508.
                                      The caller tests `token in fields` first (no call)
    forward_is_self(forward_addresses, forward_port, listen_address, listen_port, is_local)
                                      would -f reach our own listener? (checked at start)

Two proxies forwarding to each other, or one whose -f resolves to itself, pass each request
round until every client slot is taken; the Via token ends the round at the first repeat:
the proxy that sees its own token answers 508 Loop Detected (RFC 5842 7.2) and every proxy
on the way passes that answer back. Pure but for new_via_token's randomness and the
is_local callable it is given (local_address below is the socket-binding one).
"""
import ipaddress
import os
import socket

from ..http1.fields import pairs


def new_via_token():
    return b"tomato-" + os.urandom(4).hex().encode("ascii")


def carries_token(field_lines, token):
    """field_lines: a request's end-to-end field lines (CRLF each, as RequestHead.fields)."""
    for name, value in pairs(field_lines):
        if name.lower() != b"via":
            continue
        for entry in value.split(b","):
            # entry = protocol received-by [comment]
            parts = entry.split()
            if len(parts) >= 2 and parts[1] == token:
                return True
    return False


def forward_is_self(forward_addresses, forward_port, listen_address, listen_port, is_local):
    """True if connecting to any of forward_addresses on forward_port reaches the listener
    bound to (listen_address, listen_port). A wildcard listener (0.0.0.0, or :: which takes
    IPv4 too when dual-stack) is reached at every local address: is_local(ip_address) says
    which those are. Addresses are ipaddress objects (IPv4-mapped ones are unwrapped)."""
    if forward_port != listen_port:
        return False
    listen = _unwrap(listen_address)
    for address in forward_addresses:
        address = _unwrap(address)
        if address == listen:
            return True
        if listen.is_unspecified and (listen.version == 6 or address.version == 4) and is_local(address):
            return True
    return False


def _unwrap(address):
    return address.ipv4_mapped or address if address.version == 6 else address


def local_address(address):
    """Is address one of this host's (loopback, or on an interface)? A socket may bind to it
    only then (EADDRNOTAVAIL otherwise)."""
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.bind((str(address), 0))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def resolve_all(host, port, getaddrinfo=socket.getaddrinfo):
    """Every address host:port names (ipaddress objects), [] if it does not resolve.
    getaddrinfo: the unpatched one in a parent that forks workers (supervisor.py)."""
    try:
        infos = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
