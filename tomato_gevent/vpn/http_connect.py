"""Reaching the peer through an HTTP proxy: the CONNECT exchange (pure, no I/O).

    us -> proxy   CONNECT host:port HTTP/1.1 / Host: host:port /
                  [Proxy-Authorization: Basic ...] / (blank line)
    proxy -> us   HTTP/1.1 2xx ... (blank line), then the proxy relays bytes both ways

connect_request(host, port) is what we send; parse_connect_reply(buf) returns None
while the reply head is incomplete, else its length in bytes. Anything but a 2xx
answer, or a malformed or oversized head, raises RemoteProtocolError with the
proxy's status in the message; a 407 is ProxyAuthRequired (the proxy wants credentials,
or other ones), which the dialler logs as a warning. The head is parsed by the proxy's own parser
(http1/http.py), so both tools read HTTP alike.
"""
from ..errors import RemoteProtocolError
from ..netutil import format_address
from ..http1.http import parse_response_head, render_connect_request


class ProxyAuthRequired(RemoteProtocolError):
    """The HTTP proxy answered 407: it wants credentials, or refused the ones sent."""


def connect_request(host, port, authorization=None):
    """The CONNECT request for host (name or IP literal) and port, as bytes; authorization:
    the Proxy-Authorization value (upstream_auth.basic_authorization) or None."""
    authority = format_address((host, port)).encode("idna" if not host.isascii() else "ascii")
    return render_connect_request(authority, ((b"Proxy-Authorization", authorization),) if authorization else ())


def parse_connect_reply(buf):
    """None while incomplete; the head's length once the proxy agreed (2xx)."""
    head = parse_response_head(buf, "CONNECT")
    if head is None:
        return None
    if not 200 <= head.status < 300:
        reason = head.reason.decode("ascii", "replace")[:80]
        if head.status == 407:
            raise ProxyAuthRequired("the HTTP proxy answered 407 %s: it wants credentials "
                                    "(--http-proxy USER:PASSWORD@HOST:PORT or --http-proxy-auth-file), "
                                    "or other ones" % reason)
        raise RemoteProtocolError("the HTTP proxy answered %d %s" % (head.status, reason))
    return head.length
