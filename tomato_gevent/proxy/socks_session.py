"""The SOCKS5 front end: one client connection whose first byte was 0x05 (server.py's
front door hands it over). The wire format is socks5.py's; routing, connecting and
relaying are outbound.py's, the same as for HTTP.

    greeting -> method choice (no auth; username/password when --auth-file is given)
    [RFC 1929 username/password -> success | failure and close]
    request  -> CONNECT: canonical host -> rules (Outbound.route) -> block: reply 0x02
                                                   direct: connect, reply 0x00, relay
                                                   forward: HTTP CONNECT via -f, reply 0x00, relay
                UDP ASSOCIATE: a UDP port of ours on the address the client connected
                    to, reply 0x00 with it; each datagram of the client is sent on when
                    the rules say direct for its destination (forward has no UDP way
                    through an HTTP proxy and block is block: those are dropped), and
                    answers come back wrapped (udp_association.py says who counts as
                    which). It ends with the TCP connection, or after the tunnel idle
                    timeout without a datagram.
                BIND: reply 0x07 (not supported) and close

The whole handshake (greeting to request) must arrive within idle_timeout, as an
HTTP request head must. Bad input is closed with the reply the protocol has for it,
logged at debug, never raised. One line per request, as for HTTP:
"PEER SOCKS5 CONNECT host:port direction status up= down= ms" (for UDP ASSOCIATE:
the address the client said it sends from, its datagram bytes, and what was dropped
why), where status is the
HTTP status the same outcome gets over HTTP (200, 403, 502, 504; 501 for an
unsupported command) and an error names the SOCKS reply code.
"""
import collections
import errno
import logging
import time

import gevent
from gevent import socket

from ..errors import NextHopError, Refused, TomatoError
from ..rules import Action, BadHost
from . import exchange, socket_io, socks5
from .auth import display_name
from .outbound import RECV_BYTES, UpstreamRefused, reason_of
from .socket_io import send_all
from .socks5 import SocksError
from .udp_association import Association

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65535

# SOCKS reply code -> the HTTP status of the same outcome (stats and the log line).
_HTTP_STATUS = {
    socks5.SUCCEEDED: 200, socks5.GENERAL_FAILURE: 502, socks5.NOT_ALLOWED: 403,
    socks5.NETWORK_UNREACHABLE: 502, socks5.HOST_UNREACHABLE: 502, socks5.CONNECTION_REFUSED: 502,
    socks5.TTL_EXPIRED: 504, socks5.COMMAND_NOT_SUPPORTED: 501, socks5.ADDRESS_TYPE_NOT_SUPPORTED: 501,
}


_DIRECTION = {action: action.value for action in Action}     # for the log line and the stats


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


def handle(sock, first_bytes, context):
    """The socks5_handler for ProxyServer: one SOCKS5 client (context.authenticator, from
    --auth-file, or None)."""
    _Session(sock, first_bytes, context).serve()


class _Session:
    def __init__(self, sock, first_bytes, context):
        self.client = sock
        self.context = context
        self.outbound = context.outbound
        self.authenticator = context.authenticator
        self.buffer = bytearray(first_bytes)
        self.deadline = time.monotonic() + context.idle_timeout
        self.sent_down = 0

    def serve(self):
        try:
            request = self._handshake()
        except _Closed:
            return
        started = time.monotonic()
        if request.command == socks5.CMD_UDP_ASSOCIATE:
            self._associate(request, started)
            return
        if request.command != socks5.CMD_CONNECT:
            name = socks5.COMMAND_NAMES[request.command]
            self._fail(name, request.host, request.port, "-", socks5.COMMAND_NOT_SUPPORTED, started,
                       "%s is not supported (CONNECT and UDP ASSOCIATE only)" % name)
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
            try:
                data = socket_io.recv(self.client, RECV_BYTES, remaining)
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
            if self.authenticator is not None:
                self._login(credentials)
        request = self._read(socks5.parse_request)
        if self.context.pending:
            self.context.admit()
        return request

    def _login(self, credentials):
        """RFC 1929: the check, in the client address's turn when it failed before
        (guess_throttle.py); _Closed on a refusal (logged at once, or counted)."""
        context = self.context
        throttle = context.throttle
        key = credentials.username + b"\0" + credentials.password
        penalised = context.client in throttle.clients
        if penalised:
            wait = throttle.turn(context.client, key, time.monotonic())
            if wait is None:
                self._send(socks5.render_auth_reply(False))
                context.stats.record("-", 429)
                raise _Closed()
            if wait:
                gevent.sleep(wait)
        ok = self.authenticator.check(credentials.username, credentials.password)
        self._send(socks5.render_auth_reply(ok))
        if not ok:
            tried = display_name(credentials.username)
            if throttle.failed(context.client, tried, time.monotonic()):
                log.info("%s: SOCKS5: authentication failed for user %r", context.peer, tried)
            context.stats.record("-", 407)
            raise _Closed()
        context.user = self.authenticator.name_of(credentials.username)
        if penalised:
            throttle.succeeded(context.client, key)

    # -- CONNECT ---------------------------------------------------------------------------
    def _connect(self, request, started):
        port = request.port
        try:
            host, action = self.outbound.route(request.host)
        except BadHost as e:
            self._fail("CONNECT", request.host[:80], port, "-", socks5.HOST_UNREACHABLE, started, str(e))
            return
        direction = _DIRECTION[action]
        try:
            upstream, early = self.outbound.open_tunnel(action, host, port, self.context.client)
        except (TomatoError, OSError) as e:
            if isinstance(e, UpstreamRefused):
                e.sock.close()
            self._fail("CONNECT", host, port, direction, reply_for(e), started, reason_of(e))
            return
        try:
            try:
                bound = upstream.getsockname()[:2]
            except OSError:
                bound = None
            if not self._send(socks5.render_reply(socks5.SUCCEEDED, bound) + early):
                self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, 0, 0, started,
                                    "the client went away before our reply")
                return
            self.context.opened("SOCKS5 CONNECT", host, port, direction, started)
            up = 0
            asked = bool(self.buffer)
            if asked:                       # the client did not wait for our reply
                send_all(upstream, self.buffer)
                up = len(self.buffer)
                self.buffer.clear()
            relayed_up, relayed_down = self.context.relay(self.client, upstream, asked)
            self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, up + relayed_up,
                                self.sent_down + relayed_down, started)
        except OSError:
            self.context.finish("SOCKS5 CONNECT", host, port, direction, 200, 0, self.sent_down, started)
        finally:
            upstream.close()

    # -- UDP ASSOCIATE -----------------------------------------------------------------------
    def _associate(self, request, started):
        local_ip = exchange.client_ip(self.client.getsockname())
        udp = socket.socket(socket.AF_INET if local_ip.version == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            udp.bind((str(local_ip), 0))
        except OSError as e:
            udp.close()
            self._fail("UDP-ASSOCIATE", request.host, request.port, "-", socks5.GENERAL_FAILURE, started,
                       "cannot open a UDP port: %s" % (e.strerror or e))
            return
        relay = _DatagramRelay(udp, Association(self.context.client, request.port), self.context, local_ip.version)
        reason = None
        try:
            if self._send(socks5.render_reply(socks5.SUCCEEDED, udp.getsockname()[:2])):
                self.context.opened("SOCKS5 UDP-ASSOCIATE", request.host, request.port, Action.DIRECT.value,
                                    started)
                # The association lives as long as the TCP connection (RFC 1928 7), which
                # carries nothing more; or until the relay has been idle for the tunnel timeout.
                datagrams = gevent.spawn(relay.run)
                control = gevent.spawn(_wait_closed, self.client)
                try:
                    gevent.wait([datagrams, control], count=1)
                finally:
                    datagrams.kill()
                    control.kill()
            else:
                reason = "the client went away before our reply"
        finally:
            udp.close()
        if relay.dropped:
            reason = "dropped " + ", ".join("%d %s" % (count, why) for why, count in sorted(relay.dropped.items()))
        self.context.finish("SOCKS5 UDP-ASSOCIATE", request.host, request.port, Action.DIRECT.value, 200,
                            relay.up, relay.down, started, reason)

    def _fail(self, command, host, port, direction, code, started, why):
        self._send(socks5.render_reply(code))
        self.context.finish("SOCKS5 " + command, host, port, direction, _HTTP_STATUS[code], 0,
                            self.sent_down, started, "reply 0x%02x: %s" % (code, why))

    def _send(self, data):
        try:
            send_all(self.client, data)
        except OSError:
            return False
        self.sent_down += len(data)
        return True


def _wait_closed(sock):
    """Returns when the client closes (or breaks) the connection; what it sends is ignored."""
    try:
        while socket_io.recv(sock, RECV_BYTES, None):
            pass
    except OSError:
        pass


class _DatagramRelay:
    """The UDP side of one association: the client's datagrams out, answers back in."""

    def __init__(self, udp, association, context, ip_version):
        self.udp = udp
        self.association = association
        self.context = context
        self.outbound = context.outbound
        self.ip_version = ip_version
        self.up = self.down = 0                 # payload bytes each way
        self.dropped = collections.Counter()    # why -> datagrams

    def run(self):
        udp, association = self.udp, self.association
        udp.settimeout(self.outbound.tunnel_idle_timeout)
        while True:
            try:
                data, source = udp.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                return
            except OSError:     # e.g. an ICMP port unreachable of an earlier send: not fatal
                continue
            ip, port = exchange.client_ip(source), source[1]
            if association.is_client(ip, port):
                self._send_on(data)
            elif association.answers(ip, port):
                if self._send(socks5.render_udp_header(str(ip), port) + data, association.client_address):
                    self.down += len(data)
            else:
                self.dropped["from strangers"] += 1

    def _send_on(self, data):
        try:
            datagram = socks5.parse_udp_datagram(data)
        except SocksError as e:
            log.debug("%s: SOCKS5 UDP: %s: dropped", self.context.peer, e)
            self.dropped["malformed"] += 1
            return
        target = self._target(datagram.host)
        if target is not None and self._send(datagram.payload, (str(target), datagram.port)):
            self.up += len(datagram.payload)
            self.association.sent_to(target, datagram.port)

    def _target(self, host):
        """The address to send to, or None (counted in dropped) if the datagram may not go."""
        try:
            host, action = self.outbound.route(host)
        except BadHost:
            self.dropped["bad host"] += 1
            return None
        if action is not Action.DIRECT:
            # forward: an HTTP proxy (-f) has no way for UDP.
            self.dropped["blocked" if action is Action.BLOCK else "forward (no UDP through -f)"] += 1
            return None
        try:
            addresses = self.outbound.resolver.resolve(host)
        except TomatoError:
            self.dropped["unresolved"] += 1
            return None
        for address in self.outbound.allowed_destinations(addresses, self.context.client):
            if address.version == self.ip_version:
                return address
        self.dropped["no allowed address"] += 1
        return None

    def _send(self, data, address):
        try:
            self.udp.sendto(data, address)
        except OSError:
            self.dropped["send failed"] += 1
            return False
        return True
