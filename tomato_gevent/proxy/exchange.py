"""The proxy's exchange policy: every decision about one request/response exchange,
as pure functions of parsed heads (no sockets, no clock, no logging).

The front ends (http_session.py, socks_session.py) move bytes and ask this module what
they mean; exchange_state.py puts these decisions in the order of one HTTP exchange (h11's
Connection is the model: the protocol rules live apart from the I/O).

    request head  --keep_client_after_block-->  may a 403 keep the connection?
                  --answer_continue-->      send our own 100 Continue first?
    upstream gone --may_retry-->            resend on a fresh connection? (RFC 9110 9.2.2)
    response head --informational-->        1xx: bytes for the client, or None to swallow
                  --to_client-->            how the body goes to the client, and is the client
                                            connection good for another request after it?
                  --client_framing-->       the first of these alone
                  --keep_upstream-->        may the upstream connection be reused?
    destination   --destination_allowed-->  loopback / link-local only for loopback clients;
                                            multicast and broadcast for nobody
    typed error   --rejection-->            (status, text) the proxy answers with

What becomes which answer (one way: every error the proxy answers carries status_hint):
RemoteProtocolError from the client's head or body (400, 408, 431, 505), from the
upstream's answer (502); Refused (403 block rule or destination, 503 no room);
NextHopError and ResolveError (502 unreachable or failed, 504 timed out).
"""
import ipaddress

from ..errors import RemoteProtocolError
from ..http1 import http
from ..http1.http import Framing
from ..netutil import ip_literal

# RFC 9110 9.2.2: a client or proxy may repeat these automatically after a failure.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def authority_for(host, port, client_authority):
    """host[:port] for Host / the CONNECT target, port only where the client wrote one."""
    shown = "[%s]" % host if ":" in host else host
    explicit_port = client_authority.rpartition(b"]")[2].rfind(b":") >= 0
    if explicit_port:
        return ("%s:%d" % (shown, port)).encode("ascii")
    return shown.encode("ascii")


def keep_client_after_block(request):
    """A body we do not read makes the client connection unusable after our 403."""
    return request.keep_alive and request.framing is Framing.NONE


def answer_continue(request):
    """Answer "Expect: 100-continue" ourselves (RFC 9110 10.1.1 lets a proxy do so),
    so the body follows without an upstream round trip. HTTP/1.0 knows no 100."""
    return request.expect_continue and request.framing is not Framing.NONE and request.version >= (1, 1)


def may_retry(request, reused):
    """After a kept-alive upstream connection turned out closed before it answered:
    resend on a fresh one? Only idempotent, body-less requests (the body is consumed,
    and RFC 9110 9.2.2 forbids repeating e.g. a POST behind the client's back)."""
    return reused and request.method in IDEMPOTENT_METHODS and request.framing is Framing.NONE


def informational(request, response):
    """A 1xx answer on the way: the bytes to pass to the client, or None to swallow it.

    100 is ours to send (answer_continue); other 1xx go to HTTP/1.1 clients only.
    101 is refused: the proxy never forwards Upgrade, so nobody asked to switch.
    """
    if response.status == 101:
        raise RemoteProtocolError("upstream switched protocols, which the proxy never asks for", 502)
    if response.status == 100 or request.version < (1, 1):
        return None
    return http.render_informational(response)


def client_framing(request, response):
    """How the response body goes to the client: as received when delimited by length
    (or absent), otherwise chunked for HTTP/1.1 clients (their connection survives) and
    until-close for HTTP/1.0 ones, which know no chunks."""
    return to_client(request, response)[0]


def to_client(request, response):
    """(how the body goes to the client: client_framing, is the client connection good for
    another request after this answer?)"""
    framing = response.framing
    if framing is not Framing.NONE and framing is not Framing.LENGTH:
        framing = Framing.CHUNKED if request.version >= (1, 1) else Framing.UNTIL_CLOSE
    return framing, request.keep_alive and framing is not Framing.UNTIL_CLOSE


def keep_upstream(response, leftover):
    """May the upstream connection carry the next request (its answer's body relayed in
    full)? Only if the server allows it and nothing unexplained came behind that answer."""
    return response.keep_alive and not leftover


def _unwrap(address):
    return address.ipv4_mapped or address if address.version == 6 else address


_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def destination_allowed(client, destination, allow_private=False):
    """May `client` (an ip_address) reach `destination`? Loopback, link-local and
    unspecified destinations are the proxy host's own services: only clients on
    loopback themselves get there, unless allow_private. Private ranges are fine.
    Multicast (224.0.0.0/4, ff00::/8) and the limited broadcast 255.255.255.255 reach
    every listener on a network of ours (mDNS, SSDP): nobody, whatever allow_private.
    (A subnet's directed broadcast needs SO_BROADCAST, which the proxy never sets.)"""
    target = _unwrap(destination)
    if target.is_multicast or target == _LIMITED_BROADCAST:
        return False
    if allow_private or _unwrap(client).is_loopback:
        return True
    return not (target.is_loopback or target.is_link_local or target.is_unspecified)


def refused_destination(destination):
    """Why destination_allowed refused destination, for the answer's text."""
    target = _unwrap(destination)
    if target.is_multicast:
        return "a multicast address"
    if target == _LIMITED_BROADCAST:
        return "the broadcast address"
    return "a loopback or link-local address of the proxy host"


def client_ip(address):
    """ip_address of a socket peer address tuple (IPv4-mapped addresses unwrapped)."""
    return _unwrap(ip_literal(address[0]))


def rejection(error):
    """(status, text) for an error the proxy answers itself; see the module docstring."""
    return getattr(error, "status_hint", 502), str(error) or type(error).__name__
