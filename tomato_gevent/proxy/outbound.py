"""Where a request goes and how the proxy gets there: gevent I/O shared by every
front end (HTTP today, SOCKS5 through the same port).

    Outbound.decide(name) -> Action          the rules, else the default; forward without -f = direct
    Outbound.route(host) -> (name, Action)   canonical_host + decide, cached per host as the
                                             request names it (ROUTE_CACHE_ENTRIES at most,
                                             emptied by set_rules); BadHost for a bad host
    Outbound.connect_direct(host, port, client) -> socket
                                             every address in turn (IPv6 first, RFC 8305);
                                             loopback / link-local refused for remote clients
    Outbound.connect_upstream() -> socket    the -f proxy
    Outbound.tunnel_via_upstream(host, port) -> (socket, early bytes)
                                             CONNECT through the -f proxy; its refusal is
                                             UpstreamRefused (with its answer, for HTTP clients)
    Outbound.open_tunnel(action, host, port, client) -> (socket, early bytes)
                                             all of the above for a tunnel to host:port,
                                             as decide(host) said
    relay(a, b, idle_timeout, b_asked) -> (a->b bytes, b->a bytes)
                                             both directions until both ended or nothing
                                             moved either way for idle_timeout
    read_response_head(sock, method, buf, deadline) -> ResponseHead

Failures are typed (errors.py): Refused 403 (block rule, destination), ResolveError and
NextHopError 502 (unreachable) / 504 (timed out), RemoteProtocolError 502 (bad answer).
`host` is always the normalised host (rules.canonical_host); `client` an ip_address.
"""
import errno
import logging
import os
import time

import gevent
from gevent import socket

from ..errors import NextHopError, Refused
from ..http1 import http
from ..netutil import format_address
from ..rules import Action, canonical_host
from . import exchange, lean_socket, socket_io
from .resolver import Resolver

log = logging.getLogger(__name__)

_EINPROGRESS, _EALREADY, _EISCONN = errno.EINPROGRESS, errno.EALREADY, errno.EISCONN
# Looked up once: on Python 3.11 Action.BLOCK passes through EnumType.__getattr__ (~900
# instructions) at every use, and open_tunnel runs once per tunnel.
_BLOCK, _FORWARD = Action.BLOCK, Action.FORWARD

# -- implementation constants ----------------------------------------------------
RECV_BYTES = 64 * 1024              # one recv while reading heads
# One recv while relaying bodies and tunnels. recv() (not recv_into a buffer of our own)
# allocates per call and frees at once when the socket has nothing: an idle tunnel or a
# slow body holds no buffer, a busy one moves up to this much per system call.
RELAY_RECV_BYTES = 256 * 1024
# A tunnel's read shorter than this is taken as all there was (a request, a TLS record, an
# answer: the other side now waits for the reply): the next read waits for the watcher to say
# there are bytes instead of finding none (an EAGAIN and its exception object, ~7k
# instructions). Longer reads (bulk) read on until EAGAIN, as before.
SMALL_READ_BYTES = 8192
IDLE_TIMEOUT_SECONDS = 60.0         # client between/inside requests; upstream silence
CONNECT_TIMEOUT_SECONDS = 10.0      # per address tried
TUNNEL_IDLE_TIMEOUT_SECONDS = 600.0  # tinyproxy's Timeout default
# Routing decisions remembered (host as requested -> (canonical host, Action)): the same few
# hosts come back on every request. Full = emptied: a flood of new names costs one clear()
# per this many hosts, and memory stays bounded (a host is at most 253 characters).
ROUTE_CACHE_ENTRIES = 4096


class UpstreamRefused(NextHopError):
    """The -f proxy answered CONNECT with a non-2xx: .response (ResponseHead), .buffer
    (bytes after its head) and .sock (still open, the caller closes it) let an HTTP
    client see that answer as it is."""

    def __init__(self, response, buffer, sock):
        super().__init__("upstream proxy refused CONNECT: %d %s" % (
            response.status, response.reason.decode("latin-1")), 502)
        self.response, self.buffer, self.sock = response, buffer, sock


def reason_of(error):
    """Short text for an OSError (its strerror) or anything else."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class Outbound:
    """Routing and outgoing connections. rules: lookup(name) -> Action | None; replace
    with set_rules() at any time (SIGHUP). upstream: (host, port) of -f, or None."""

    def __init__(self, rules, default_action=Action.DIRECT, upstream=None, resolver=None,
                 idle_timeout=IDLE_TIMEOUT_SECONDS, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                 tunnel_idle_timeout=TUNNEL_IDLE_TIMEOUT_SECONDS, allow_private=False,
                 via=http.VIA, upstream_authorization=None):
        self.rules = rules
        self.default_action = default_action
        self.upstream = upstream
        self.resolver = resolver or Resolver()
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.tunnel_idle_timeout = tunnel_idle_timeout
        self.allow_private = allow_private
        self.via = via                      # our Via pseudonym, the loop guard's token
        self.via_lines = http.via_lines(via)
        self.upstream_authorization = upstream_authorization
        # Field lines for the -f proxy only: its credentials (-f user:password@host:port).
        self.upstream_fields = (b"Proxy-Authorization: %s\r\n" % upstream_authorization
                                if upstream_authorization else b"")
        self.upstream_text = format_address(upstream) if upstream is not None else "-"
        self._routes = {}
        self.origins = {}                   # canonical host -> where its rule came from (access log)
        self._targets = {}                  # (id(client), id(address)) -> (client, address, target)

    def set_rules(self, rules):
        """Replace the rules (SIGHUP); no cached decision of the old ones survives."""
        self.rules = rules
        self._routes = {}
        self.origins = {}

    def rule_origin(self, name):
        """Where the rule deciding name came from ("file:line"), "default" if none; cached
        in .origins (emptied with the routes) so that a request's line costs a dict probe."""
        origin = self.rules.origin(name) or "default"
        origins = self.origins
        if len(origins) >= ROUTE_CACHE_ENTRIES:
            origins.clear()
        origins[name] = origin
        return origin

    def route(self, host):
        """(canonical host, Action) for a host as the request names it (BadHost if it is
        neither a name nor an IP literal). The decision of the current rules, cached."""
        routes = self._routes
        cached = routes.get(host)
        if cached is not None:
            return cached
        name = canonical_host(host)
        decided = (name, self.decide(name))
        if len(routes) >= ROUTE_CACHE_ENTRIES:
            routes.clear()
        routes[host] = decided
        return decided

    def decide(self, name):
        """The Action for a normalised host: the rule's, else the default."""
        action = self.rules.lookup(name)
        if action is None:
            action = self.default_action
        if action is Action.FORWARD and self.upstream is None:
            action = Action.DIRECT
        return action

    # -- connecting ------------------------------------------------------------------
    def allowed_destinations(self, addresses, client):
        """The addresses client may reach through us (exchange.destination_allowed, --allow-private)."""
        return [a for a in addresses if exchange.destination_allowed(client, a, self.allow_private)]

    def connect_direct(self, host, port, client):
        """Connected socket to host:port; Refused(403) if every address is forbidden for client."""
        addresses = self.resolver.resolve(host)
        targets = self._allowed_targets(addresses, client)
        if not targets:
            raise Refused("destination %s is %s" % (addresses[0], exchange.refused_destination(addresses[0])),
                          403)
        return self._connect(targets, port, host)

    def _allowed_targets(self, addresses, client):
        """[(family, address text)] of the addresses client may reach, in their order: the
        destination policy's answer (exchange.destination_allowed) and the text, remembered
        per (client, address): both are pure, about a dozen Python calls of ipaddress each
        time, and the same few pairs come back. Bounded as the route cache.
        Keyed by the objects' ids, not by the objects: hashing the pair asks each ipaddress
        object for its Python __hash__ (hex of the integer, ~5k instructions a pair). The entry
        holds both objects, so no other object can have their ids while it is remembered. The
        same objects do come back: netutil.ip_literal and the resolver's cache hand out the
        objects they made (other equal ones are a miss, answered and remembered anew)."""
        remembered = self._targets
        targets = []
        for address in addresses:
            key = (id(client), id(address))
            entry = remembered.get(key)
            if entry is None:
                target = (_target(address) if exchange.destination_allowed(client, address, self.allow_private)
                          else ())
                if len(remembered) >= ROUTE_CACHE_ENTRIES:
                    remembered.clear()
                remembered[key] = (client, address, target)
            else:
                target = entry[2]
            if target:
                targets.append(target)
        return targets

    def connect_upstream(self):
        host, port = self.upstream
        return self._connect([_target(a) for a in self.resolver.resolve(host)], port, host, "upstream proxy ")

    def _connect(self, targets, port, host, what=""):
        """The first of targets [(family, address text)] that answers on port; host (and
        what, a prefix) only for the error's text, made when there is one."""
        last_error = None
        for family, address in targets:
            try:
                sock = lean_socket.dialling(family)
            except OSError as e:            # EMFILE: answer this client, keep serving
                last_error = e
                continue
            try:
                _connect_within(sock, (address, port), self.connect_timeout)
            except socket.timeout:
                sock.close()
                continue
            except OSError as e:
                sock.close()
                last_error = e
                continue
            sock._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.timeout = self.idle_timeout
            return sock
        what += format_address((host, port))
        if last_error is not None:
            error = NextHopError("cannot connect to %s: %s" % (what, reason_of(last_error)), 502)
            error.errno = getattr(last_error, "errno", None)    # SOCKS5 tells "refused" apart
            raise error
        raise NextHopError("timed out connecting to %s" % what, 504)

    def tunnel_via_upstream(self, host, port, request=None):
        """CONNECT host:port through the -f proxy -> (socket, bytes the far end sent first).

        request: the CONNECT head to send (default: a minimal one).
        """
        if request is None:
            request = http.render_connect_request(exchange.authority_for(host, port, b":"),
                                                  self._upstream_headers())
        sock = self.connect_upstream()
        try:
            try:
                sock.sendall(request)
            except OSError as e:
                raise NextHopError("upstream proxy connection failed: %s" % reason_of(e), 502) from None
            buf = bytearray()
            response = read_response_head(sock, "CONNECT", buf, time.monotonic() + self.idle_timeout)
            if not 200 <= response.status < 300:
                raise UpstreamRefused(response, buf, sock)
        except UpstreamRefused:
            raise
        except BaseException:
            sock.close()
            raise
        return sock, bytes(buf)

    def _upstream_headers(self):
        headers = [(b"Via", b"1.1 " + self.via)]
        if self.upstream_authorization:
            headers.append((b"Proxy-Authorization", self.upstream_authorization))
        return headers

    def open_tunnel(self, action, host, port, client):
        """(socket, early bytes) of a tunnel to host:port for action (decide(host));
        Refused(403) for a block rule."""
        if action is _BLOCK:
            raise Refused("blocked by proxy rule: %s" % host, 403)
        if action is _FORWARD:
            return self.tunnel_via_upstream(host, port)
        return self.connect_direct(host, port, client), b""


def _target(address):
    """(family, text) of an ip_address, as a dial takes it."""
    return (socket.AF_INET6 if address.version == 6 else socket.AF_INET), str(address)


def _connect_within(sock, address, timeout):
    """Connect sock to a numeric address within timeout (socket.timeout after it, OSError if
    refused or unreachable). connect_ex, not connect: an errno, not an exception object
    (~7k instructions each). A second connect_ex right after EINPROGRESS says 0 when the
    handshake is already done (loopback, a near host: the kernel completes it within the first
    call), the error when it already failed, EALREADY while it goes on: only then is there a
    wait, on the socket's own write watcher (socket_io.wait_writable), and a getsockopt() for
    the outcome. gevent's connect() costs two connect()s, a wait and two exceptions."""
    raw = sock._sock
    error = raw.connect_ex(address)
    if error == _EINPROGRESS:
        error = raw.connect_ex(address)
        if error == _EALREADY:
            socket_io.wait_writable(sock, timeout)
            error = raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error and error != _EISCONN:
        raise OSError(error, os.strerror(error))


# -- reading an answer -------------------------------------------------------------------
def read_response_head(sock, method, buf, deadline, stale_ok=False, seen=None, later=False):
    """The next response head from sock (bytes already in buf are parsed first).

    The whole head, however many recvs it takes, must arrive before `deadline`
    (time.monotonic()): NextHopError(504) after it; each wait lasts what is left of it (the
    socket's own timeout is not used nor changed: socket_io.recv). None only if stale_ok and the connection closed before sending a byte (a stale
    kept-alive connection). seen: the table of field lines for http.parse_response_head.
    later: the request went out just now, so the first recv waits for readable first
    (socket_io.recv_later) instead of finding nothing.
    Bad answers are RemoteProtocolError(502); a failed connection NextHopError(502).
    """
    searched = 0
    received = bool(buf)
    while True:
        if buf:
            response = http.parse_response_head(buf, method, searched, seen)
            if response is not None:
                del buf[:response.length]
                return response
            searched = len(buf)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NextHopError("no complete answer from upstream in time", 504)
        try:
            data = (socket_io.recv if received or not later else socket_io.recv_later)(
                sock, RECV_BYTES, remaining)
        except socket.timeout:
            raise NextHopError("no complete answer from upstream in time", 504) from None
        except OSError as e:
            if stale_ok and not received:
                return None
            raise NextHopError("upstream connection failed: %s" % reason_of(e), 502) from None
        if not data:
            if stale_ok and not received:
                return None
            raise NextHopError("upstream closed the connection %s" % (
                "in the middle of its answer" if received else "without answering"), 502)
        received = True
        buf += data


# -- tunnels -----------------------------------------------------------------------------
def relay(a, b, idle_timeout, b_asked=True):
    """Copy a -> b and b -> a until both directions are done (EOF is passed on as a
    half-close) or nothing moved either way for idle_timeout seconds (then both are shut).
    Returns (bytes a->b, bytes b->a). The caller closes both sockets right after.
    b_asked=False: b has been sent nothing yet (a SOCKS5 tunnel just opened: the next hop
    waits for the client's first bytes), so its first recv waits for bytes instead of finding
    none (an EAGAIN and its exception object: ~7k instructions and a system call).

    One watchdog timer per tunnel, not a timeout per wait: every idle_timeout it compares
    the bytes moved with what it saw last time, so the end comes between one and two
    idle_timeouts after the last byte (a send stalled that long ends the tunnel too).
    A read shorter than SMALL_READ_BYTES ends that direction's turn without a second recv:
    the watcher is level-triggered, so bytes that came meanwhile are seen on the next turn.
    Both directions run in the caller's greenlet (_both) while every send goes out whole at
    once (a short SOCKS5 session, a request and its answer: one greenlet, not two); the
    first send the kernel does not take whole hands the other direction to a helper
    greenlet, so that a stalled receiver on one side never stops the other direction
    (_pipe each way, as before). An idle tunnel holds at most two greenlets, one timer,
    two sockets and no buffers.
    """
    counts = [0, 0]
    seen = [0]

    def check():
        moved = counts[0] + counts[1]
        if moved == seen[0]:
            _shut(a, b)             # wakes both directions: their recv sees the end
        seen[0] = moved
    watchdog = gevent.get_hub().loop.timer(idle_timeout, idle_timeout)
    watchdog.start(check)
    other = None
    try:
        blocked = _both(a, b, counts, b_asked)
        if blocked is not None:
            index, rest, other_done = blocked
            src, dst = (a, b) if index == 0 else (b, a)
            a.settimeout(None)      # for gevent's sendall of a rest: the watchdog keeps time
            b.settimeout(None)
            if not other_done:
                other = gevent.spawn(_pipe, dst, src, counts, 1 - index)
            try:
                dst.sendall(rest)
                counts[index] += len(rest)
            except OSError:
                _shut(src, dst)
            else:
                _pipe(src, dst, counts, index)
            if other is not None:
                other.join()
    finally:
        if other is not None:
            other.kill()
        watchdog.close()
    return counts[0], counts[1]


def _both(a, b, counts, b_ready=True):
    """Both directions in this greenlet, while sends go out whole. None when both are done;
    (index, the bytes not sent, whether the other direction is done) when a send would wait."""
    ends = ((a, b._sock, b), (b, a._sock, a))
    ready = [True, b_ready]
    done = [False, False]
    try:
        while True:
            for index in (0, 1):
                if not ready[index] or done[index]:
                    continue
                ready[index] = False
                src, out, dst = ends[index]
                raw = src._sock
                while True:
                    try:
                        data = raw.recv(RELAY_RECV_BYTES)
                    except BlockingIOError:
                        break
                    if not data:
                        done[index] = True
                        socket_io.release(src)
                        if not done[1 - index]:     # the last one: the caller's close says it
                            try:
                                dst.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                        break
                    try:
                        sent = out.send(data)
                    except BlockingIOError:
                        sent = 0
                    counts[index] += sent
                    if sent != len(data):
                        return index, memoryview(data)[sent:], done[1 - index]
                    if sent < SMALL_READ_BYTES:
                        break
            if done[0] and done[1]:
                return None
            if done[0]:
                ready[1] = True
                socket_io.wait_readable(b)
            elif done[1]:
                ready[0] = True
                socket_io.wait_readable(a)
            else:
                ready[socket_io.wait_either(a, b)] = True
    except OSError:
        # Reset or closed: the whole tunnel is over.
        _shut(a, b)
        return None


def _shut(*socks):
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pipe(src, dst, counts, index):
    recv = socket_io.recv
    try:
        while True:
            data = recv(src, RELAY_RECV_BYTES, None)
            if not data:
                break
            socket_io.send_all(dst, data)
            counts[index] += len(data)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    except OSError:
        # Reset or closed: the whole tunnel is over; wake the other direction.
        _shut(src, dst)
