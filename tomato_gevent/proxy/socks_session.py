"""The SOCKS5 front end: one client connection whose first byte was 0x05 (server.py's
front door hands it over). The wire format is socks5.py's; routing, connecting and
relaying are outbound.py's, the same as for HTTP.

    greeting -> method choice (no auth; username/password when --auth-file is given)
    [RFC 1929 username/password -> success | failure and close]
    request  -> CONNECT: canonical host -> rules -> block: reply 0x02
                                                   direct: connect, reply 0x00, relay
                                                   forward: HTTP CONNECT via -f, reply 0x00, relay
                BIND, UDP ASSOCIATE: reply 0x07 (not supported) and close

The whole handshake (greeting to request) must arrive within idle_timeout, as an
HTTP request head must. Bad input is closed with the reply the protocol has for it,
logged at debug, never raised. One line per request, as for HTTP:
"PEER SOCKS5 CONNECT host:port direction status up= down= ms", where status is the
HTTP status the same outcome gets over HTTP (200, 403, 502, 504; 501 for an
unsupported command) and an error names the SOCKS reply code.
"""
import errno
import logging
import time

from gevent import socket

from ..errors import NextHopError, Refused, TomatoError
from ..rules import BadHost, canonical_host
from . import socks5
from .outbound import RECV_BYTES, UpstreamRefused
from .socks5 import SocksError

log = logging.getLogger(__name__)

# SOCKS reply code -> the HTTP status of the same outcome (stats and the log line).
_HTTP_STATUS = {
    socks5.SUCCEEDED: 200, socks5.GENERAL_FAILURE: 502, socks5.NOT_ALLOWED: 403,
    socks5.NETWORK_UNREACHABLE: 502, socks5.HOST_UNREACHABLE: 502, socks5.CONNECTION_REFUSED: 502,
    socks5.TTL_EXPIRED: 504, socks5.COMMAND_NOT_SUPPORTED: 501, socks5.ADDRESS_TYPE_NOT_SUPPORTED: 501,
}


class _Closed(Exception):
    """The client went away, stalled or broke the protocol: end the session quietly."""


def reply_for(error):
    """The SOCKS reply code for a failure of the outbound side (typed errors of outbound.py)."""
    if isinstance(error, Refused):
        return socks5.NOT_ALLOWED
    if isinstance(error, UpstreamRefused):
        status = error.response.status
        return {403: socks5.NOT_ALLOWED, 407: socks5.NOT_ALLOWED,
                504: socks5.TTL_EXPIRED}.get(status, socks5.HOST_UNREACHABLE)
    if isinstance(error, NextHopError):
        if error.status_hint == 504:
            return socks5.TTL_EXPIRED
        if getattr(error, "errno", None) == errno.ECONNREFUSED:
            return socks5.CONNECTION_REFUSED
        return socks5.HOST_UNREACHABLE
    return socks5.GENERAL_FAILURE


def make_handler(authenticator=None):
    """The socks5_handler for ProxyServer; authenticator (auth.Authenticator) or None."""
    def handle(sock, first_bytes, context):
        _Session(sock, first_bytes, context, authenticator).serve()
    return handle


class _Session:
    def __init__(self, sock, first_bytes, context, authenticator):
        self.client = sock
        self.context = context
        self.outbound = context.outbound
        self.authenticator = authenticator
        self.buffer = bytearray(first_bytes)
        self.deadline = time.monotonic() + context.idle_timeout
        self.sent_down = 0

    def serve(self):
        try:
            request = self._handshake()
        except _Closed:
            return
        started = time.monotonic()
        if request.command != socks5.CMD_CONNECT:
            name = socks5.COMMAND_NAMES[request.command]
            self._fail(name, request.host, request.port, "-", socks5.COMMAND_NOT_SUPPORTED, started,
                       "%s is not supported (CONNECT only)" % name)
            return
        self._connect(request, started)

    # -- handshake -------------------------------------------------------------------
    def _read(self, parse):
        """The next message parsed out of the buffer, receiving until it is complete."""
        while True:
            try:
                message = parse(self.buffer)
            except SocksError as e:
                log.debug("%s: SOCKS5: %s: closing", self.context.peer, e)
                if e.reply is not None:
                    if parse is socks5.parse_greeting:
                        self._send(socks5.render_method_choice(e.reply))
                    elif parse is socks5.parse_credentials:
                        self._send(socks5.render_auth_reply(False))
                    else:
                        self._send(socks5.render_reply(e.reply))
                raise _Closed() from None
            if message is not None:
                del self.buffer[:message.length]
                return message
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self._stalled()
            self.client.settimeout(remaining)
            try:
                data = self.client.recv(RECV_BYTES)
            except socket.timeout:
                self._stalled()
            except OSError:
                raise _Closed() from None
            if not data:
                log.debug("%s: SOCKS5: client closed during the handshake", self.context.peer)
                raise _Closed()
            self.buffer += data

    def _stalled(self):
        log.debug("%s: SOCKS5: closing, handshake incomplete after %.0fs", self.context.peer,
                  self.context.idle_timeout)
        raise _Closed()

    def _handshake(self):
        greeting = self._read(socks5.parse_greeting)
        method = socks5.choose_method(greeting.methods, self.authenticator is not None)
        self._send(socks5.render_method_choice(method))
        if method == socks5.METHOD_NONE_ACCEPTABLE:
            log.debug("%s: SOCKS5: no acceptable method among %s: closing", self.context.peer,
                      sorted(greeting.methods))
            raise _Closed()
        if method == socks5.METHOD_USERNAME_PASSWORD:
            credentials = self._read(socks5.parse_credentials)
            ok = self.authenticator is None or self.authenticator.check(credentials.username,
                                                                        credentials.password)
            self._send(socks5.render_auth_reply(ok))
            if not ok:
                log.info("%s: SOCKS5: authentication failed for user %r", self.context.peer,
                         credentials.username.decode("utf-8", "replace")[:64])
                self.context.stats.record("-", 407)
                raise _Closed()
        request = self._read(socks5.parse_request)
        self.client.settimeout(self.context.idle_timeout)
        return request

    # -- CONNECT ---------------------------------------------------------------------------
    def _connect(self, request, started):
        port = request.port
        try:
            host = canonical_host(request.host)
        except BadHost as e:
            self._fail("CONNECT", request.host[:80], port, "-", socks5.HOST_UNREACHABLE, started, str(e))
            return
        try:
            action, upstream, early = self.outbound.open_tunnel(host, port, self.context.client)
        except (TomatoError, OSError) as e:
            if isinstance(e, UpstreamRefused):
                e.sock.close()
            direction = self.outbound.decide(host).value     # for the log line only
            self._fail("CONNECT", host, port, direction, reply_for(e), started,
                       getattr(e, "strerror", None) or str(e))
            return
        direction = action.value
        try:
            try:
                bound = upstream.getsockname()[:2]
            except OSError:
                bound = None
            if not self._send(socks5.render_reply(socks5.SUCCEEDED, bound) + early):
                self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, 0, 0, started,
                                    "the client went away before our reply")
                return
            up = 0
            if self.buffer:                 # the client did not wait for our reply
                upstream.sendall(self.buffer)
                up = len(self.buffer)
                self.buffer.clear()
            relayed_up, relayed_down = self.context.relay(self.client, upstream)
            self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, up + relayed_up,
                                self.sent_down + relayed_down, started)
        except OSError:
            self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, 0, self.sent_down, started)
        finally:
            upstream.close()

    def _fail(self, command, host, port, direction, code, started, why):
        self._send(socks5.render_reply(code))
        self.context.finish("SOCKS5 " + command, host, port, direction, _HTTP_STATUS[code], 0,
                            self.sent_down, started, "reply 0x%02x: %s" % (code, why))

    def _send(self, data):
        try:
            self.client.sendall(data)
        except OSError:
            return False
        self.sent_down += len(data)
        return True

