"""Reaching the peer through an HTTP proxy: the CONNECT exchange (pure, no I/O).

    us -> proxy   CONNECT host:port HTTP/1.1 / Host: host:port / (blank line)
    proxy -> us   HTTP/1.1 2xx ... (blank line), then the proxy relays bytes both ways

connect_request(host, port) is what we send; parse_connect_reply(buf) returns None
while the reply head is incomplete, else its length in bytes. Anything but a 2xx
answer, or a malformed or oversized head, raises RemoteProtocolError with the
proxy's status in the message. The head is parsed by the proxy's own parser
(proxy/http.py), so both tools read HTTP alike.
"""
from ..errors import RemoteProtocolError
from ..netutil import format_address
from ..proxy.http import parse_response_head, render_connect_request


def connect_request(host, port):
    """The CONNECT request for host (name or IP literal) and port, as bytes."""
    return render_connect_request(format_address((host, port)).encode("idna" if not host.isascii() else "ascii"))


def parse_connect_reply(buf):
    """None while incomplete; the head's length once the proxy agreed (2xx)."""
    head = parse_response_head(buf, "CONNECT")
    if head is None:
        return None
    if not 200 <= head.status < 300:
        reason = head.reason.decode("ascii", "replace")[:80]
        raise RemoteProtocolError("the HTTP proxy answered %d %s" % (head.status, reason))
    return head.length
