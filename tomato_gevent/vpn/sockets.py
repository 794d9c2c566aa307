"""The transports' sockets: made, optioned and bound in one call (I/O).

open_bound_socket(address, sock_type, describe, options, listen_backlog): udp.py's
datagram socket and tcp.py's listener. Refusals become one TomatoError line naming what
could not be done and where ("cannot bind UDP 0.0.0.0:5000: Address already in use").
"""
import _socket

from ..errors import TomatoError
from ..netutil import format_address


def open_bound_socket(address, sock_type, describe, options=(), listen_backlog=None):
    """Non-blocking socket of sock_type bound to a sockaddr tuple (IPv4, or dual-stack IPv6).

    options: (level, name, value, required) set before bind; an optional one the kernel
    refuses keeps its default. listen_backlog: listen() after bind. An OSError on the way
    closes the socket and becomes a TomatoError "cannot <describe> <address>: <reason>"."""
    family = _socket.AF_INET6 if len(address) == 4 else _socket.AF_INET
    sock = _socket.socket(family, sock_type)
    try:
        if family == _socket.AF_INET6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
        for level, name, value, required in options:
            try:
                sock.setsockopt(level, name, value)
            except OSError:
                if required:
                    raise
        sock.bind(address)
        if listen_backlog is not None:
            sock.listen(listen_backlog)
    except OSError as e:
        sock.close()
        raise TomatoError("cannot %s %s: %s" % (describe, format_address(address), e.strerror)) from None
    sock.setblocking(False)
    return sock


__all__ = ["open_bound_socket"]
