"""ping/pinger.py without root: resolution, socket set-up and the receive path over a fake
socket object, and the Pinger's schedule, matching and log lines over a fake ICMP socket.

The fakes stand where the kernel does: FakeSock scripts what recvmsg() returns (data,
ancillary data, address), FakeIcmpSocket answers each request it is asked to send with
scripted messages and wakes the receiving greenlet through a socketpair.
"""
import errno
import ipaddress
import logging
import socket
import struct

import pytest

from tomato_gevent.errors import ConfigError
from tomato_gevent.ping import icmp, pinger
from tomato_gevent.ping.icmp import EchoReply, IcmpError, LocalError
from tomato_gevent.ping.pinger import DATAGRAM, RAW, IcmpSocket, Pinger, Target

IDENT = 0x4242
TARGET = ipaddress.ip_address("10.9.0.2")
OTHER = ipaddress.ip_address("10.9.0.3")
ROUTER = ipaddress.ip_address("10.9.0.1")
DEAD = ipaddress.ip_address("10.9.9.9")  # no route to it
PAYLOAD = icmp.make_payload(56)
LOG = "tomato_gevent.ping.pinger"


# -- resolve -------------------------------------------------------------------------
@pytest.mark.parametrize("host, version, address, sockaddr", [
    ("10.9.0.2", None, "10.9.0.2", ("10.9.0.2", 0)),
    ("10.9.0.2", 4, "10.9.0.2", ("10.9.0.2", 0)),
    ("fd00::2", None, "fd00::2", ("fd00::2", 0, 0, 0)),
    ("fd00::2", 6, "fd00::2", ("fd00::2", 0, 0, 0)),
])
def test_resolve_numeric_addresses(host, version, address, sockaddr):
    target = pinger.resolve(host, version)
    assert (target.host, target.address, target.sockaddr) == (host, ipaddress.ip_address(address), sockaddr)
    assert target.version == ipaddress.ip_address(address).version and target.numeric


def test_resolve_scoped_link_local_keeps_the_scope_in_the_sockaddr_only():
    target = pinger.resolve("fe80::1%lo")
    assert target.address == ipaddress.ip_address("fe80::1") and target.numeric
    assert target.sockaddr == ("fe80::1", 0, 0, socket.if_nametoindex("lo"))


@pytest.mark.parametrize("host, version, message", [
    ("10.9.0.2", 6, "10.9.0.2 is an IPv4 address, but -6 was given"),
    ("fd00::2", 4, "fd00::2 is an IPv6 address, but -4 was given"),
    ("x" * 64 + ".test", None, "not a valid host name"),  # a label longer than 63: IDNA refuses
])
def test_resolve_refuses(host, version, message):
    with pytest.raises(ConfigError, match=message):
        pinger.resolve(host, version)


def fake_getaddrinfo(monkeypatch, result):
    calls = []

    def getaddrinfo(host, port, family, kind, proto, flags):
        calls.append((host, family, flags))
        if isinstance(result, Exception):
            raise result
        return result
    monkeypatch.setattr(pinger.socket, "getaddrinfo", getaddrinfo)
    return calls


def test_resolve_a_name_asks_for_the_family_and_takes_the_first_address(monkeypatch):
    calls = fake_getaddrinfo(monkeypatch, [
        (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("fd00::5", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("10.9.0.5", 0)),
    ])
    target = pinger.resolve("peer.test", 6)
    assert calls == [("peer.test", socket.AF_INET6, 0)]
    assert target.address == ipaddress.ip_address("fd00::5") and not target.numeric


def test_resolve_failure_is_a_config_error(monkeypatch):
    fake_getaddrinfo(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(ConfigError, match="cannot resolve peer.test: Name or service not known"):
        pinger.resolve("peer.test")


def test_resolve_without_a_usable_address(monkeypatch):
    fake_getaddrinfo(monkeypatch, [])
    with pytest.raises(ConfigError, match="cannot resolve peer.test: no IPv4 address"):
        pinger.resolve("peer.test", 4)


# -- opening the socket -----------------------------------------------------------------
class FakeSock:
    """A socket as IcmpSocket uses it; recvmsg() plays back `normal` and `errqueue` entries
    (a tuple (data, ancillary, flags, address) or an exception), then BlockingIOError."""

    def __init__(self, family=socket.AF_INET, kind=socket.SOCK_DGRAM, normal=(), errqueue=(), port=4242,
                 bind_error=None):
        self.family, self.kind = family, kind
        self.normal, self.errqueue = list(normal), list(errqueue)
        self.port, self.bind_error = port, bind_error
        self.options, self.bound, self.blocking, self.closed = [], None, None, False

    def bind(self, address):
        if self.bind_error:
            raise self.bind_error
        self.bound = address

    def setsockopt(self, level, option, value):
        self.options.append((level, option, value))

    def setblocking(self, flag):
        self.blocking = flag

    def getsockname(self):
        return (self.bound[0], self.port)

    def close(self):
        self.closed = True

    def recvmsg(self, size, ancillary_size, flags=0):
        queue = self.errqueue if flags & socket.MSG_ERRQUEUE else self.normal
        if not queue:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        entry = queue.pop(0)
        if isinstance(entry, BaseException):
            raise entry
        return entry


def socket_factory(monkeypatch, datagram, raw):
    """socket.socket stand-in: each of datagram/raw is a FakeSock to return or an errno to raise."""
    opened = []

    def factory(family, kind, protocol):
        outcome = datagram if kind == socket.SOCK_DGRAM else raw
        opened.append((family, kind, protocol))
        if isinstance(outcome, int):
            raise OSError(outcome, errno.errorcode[outcome])
        outcome.family, outcome.kind = family, kind
        return outcome
    monkeypatch.setattr(pinger.socket, "socket", factory)
    return opened


@pytest.mark.parametrize("version, options", [
    (4, [(socket.SOL_IP, pinger.IP_RECVERR, 1), (socket.SOL_IP, pinger.IP_RECVTTL, 1)]),
    (6, [(socket.IPPROTO_IPV6, pinger.IPV6_RECVERR, 1), (socket.IPPROTO_IPV6, pinger.IPV6_RECVHOPLIMIT, 1)]),
])
def test_open_prefers_a_datagram_socket_and_takes_its_port_as_identifier(monkeypatch, version, options):
    sock = FakeSock(port=777)
    opened = socket_factory(monkeypatch, sock, errno.EPERM)
    icmp_socket = IcmpSocket.open(version)
    assert opened == [(pinger.FAMILY[version], socket.SOCK_DGRAM, pinger.PROTOCOL[version])]
    assert (icmp_socket.kind, icmp_socket.version, icmp_socket.ident) == (DATAGRAM, version, 777)
    assert sock.bound == (pinger.WILDCARD[version], 0) and sock.options == options and sock.blocking is False


@pytest.mark.parametrize("refusal", [errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT])
def test_open_falls_back_to_raw_with_a_kernel_filter(monkeypatch, refusal):
    sock = FakeSock()
    socket_factory(monkeypatch, refusal, sock)
    icmp_socket = IcmpSocket.open(4)
    assert icmp_socket.kind == RAW and 0 <= icmp_socket.ident <= 0xFFFF and sock.blocking is False
    # Bits set = types blocked: everything but echo reply (0) and the three error types.
    passed = (1 << 0) | (1 << 3) | (1 << 11) | (1 << 12)
    assert sock.options == [(pinger.SOL_RAW, pinger.ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF & ~passed))]


def test_raw_ipv6_filter_passes_echo_reply_and_errors_only():
    words = pinger._block_mask({icmp.ICMPV6_ECHO_REPLY} | icmp.ERROR_TYPES[6], 256)
    passed = {kind for kind in range(256) if not words[kind >> 5] & (1 << (kind & 31))}
    assert passed == {1, 2, 3, 4, 129}


def test_raw_ipv6_socket_asks_for_the_hop_limit(monkeypatch):
    sock = FakeSock()
    socket_factory(monkeypatch, errno.EACCES, sock)
    assert IcmpSocket.open(6).kind == RAW
    assert [option[:2] for option in sock.options] == [
        (socket.IPPROTO_ICMPV6, pinger.ICMP6_FILTER), (socket.IPPROTO_IPV6, pinger.IPV6_RECVHOPLIMIT)]


@pytest.mark.parametrize("datagram, raw, message", [
    (errno.EACCES, errno.EPERM, "no permission for ICMP sockets: run as root, or add your group to "
                                "net.ipv4.ping_group_range"),
    (errno.EMFILE, None, "cannot open an ICMP socket: "),
    (errno.EACCES, errno.ENOBUFS, "cannot open an ICMP socket: "),
])
def test_open_failures_are_config_errors(monkeypatch, datagram, raw, message):
    socket_factory(monkeypatch, datagram, raw)
    with pytest.raises(ConfigError, match=message):
        IcmpSocket.open(4)


def test_set_up_failure_closes_the_socket(monkeypatch):
    sock = FakeSock(bind_error=OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    socket_factory(monkeypatch, sock, errno.EPERM)
    with pytest.raises(ConfigError, match="cannot set up the ICMP socket: Cannot assign requested address"):
        IcmpSocket.open(4)
    assert sock.closed


def test_icmp_socket_is_a_context_manager_that_closes():
    sock = FakeSock()
    with IcmpSocket(sock, 4, DATAGRAM, 1) as icmp_socket:
        assert icmp_socket.sock is sock
    assert sock.closed


# -- the receive path ---------------------------------------------------------------------
def echo_reply(version, ident, seq, payload=PAYLOAD):
    request = icmp.build_echo_request(version, ident, seq, payload)
    reply = bytes([icmp.ECHO_REPLY_TYPE[version]]) + request[1:]
    if version == 4:  # the type changed: fix the checksum (the request's covered type 8)
        reply = reply[:2] + b"\0\0" + reply[4:]
        reply = reply[:2] + struct.pack("!H", icmp.internet_checksum(reply)) + reply[4:]
    return reply


def ipv4_packet(source, ttl, message):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(message), 0, 0, ttl, icmp.IPPROTO_ICMP, 0,
                         ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address("10.9.0.1").packed)
    return header + message


def ttl_option(ttl):
    return (socket.SOL_IP, pinger.IP_TTL, struct.pack("=i", ttl))


def extended_error(origin, kind, code, offender=None):
    data = icmp.SOCK_EXTENDED_ERR.pack(errno.EHOSTUNREACH, origin, kind, code, 0, 0, 0)
    if offender:
        data += struct.pack("=H", socket.AF_INET) + b"\0\0" + ipaddress.IPv4Address(offender).packed + bytes(8)
    return data


def test_datagram_socket_delivers_reply_with_source_and_ttl():
    sock = FakeSock(normal=[(echo_reply(4, IDENT, 1), [ttl_option(57)], 0, ("10.9.0.2", 0))])
    received = IcmpSocket(sock, 4, DATAGRAM, IDENT).receive_pending()
    assert received == [(EchoReply(IDENT, 1, PAYLOAD), TARGET, 57)]


def test_raw_ipv4_socket_takes_source_and_ttl_from_the_ip_header():
    packet = ipv4_packet("10.9.0.2", 61, echo_reply(4, IDENT, 3))
    sock = FakeSock(normal=[(packet, [], 0, ("10.9.0.2", 0))])
    assert IcmpSocket(sock, 4, RAW, IDENT).receive_pending() == [(EchoReply(IDENT, 3, PAYLOAD), TARGET, 61)]


def test_raw_ipv6_socket_takes_the_hop_limit_from_ancillary_data():
    hop_limit = (socket.IPPROTO_IPV6, pinger.IPV6_HOPLIMIT, struct.pack("=i", 63))
    sock = FakeSock(socket.AF_INET6, normal=[(echo_reply(6, IDENT, 2), [hop_limit], 0, ("fd00::2%veth0", 0, 0, 3))])
    received = IcmpSocket(sock, 6, RAW, IDENT).receive_pending()
    assert received == [(EchoReply(IDENT, 2, PAYLOAD), ipaddress.ip_address("fd00::2"), 63)]


def test_error_queue_entries_carry_offender_and_the_request_destination():
    request = icmp.build_echo_request(4, IDENT, 5, PAYLOAD)
    sock = FakeSock(errqueue=[
        (request, [(socket.SOL_IP, pinger.IP_TTL, b"\0" * 4),  # not an error: skipped
                   (socket.SOL_IP, pinger.IP_RECVERR, extended_error(icmp.SO_EE_ORIGIN_ICMP, 3, 1, "10.9.0.1"))],
         socket.MSG_ERRQUEUE, ("10.9.0.2", 0)),
    ])
    received = IcmpSocket(sock, 4, DATAGRAM, IDENT).receive_pending()
    assert received == [(IcmpError(4, 3, 1, 0, IDENT, 5, TARGET), ROUTER, None)]


def test_bad_packets_and_socket_errors_are_dropped_with_a_debug_line(caplog):
    corrupt = bytearray(echo_reply(4, IDENT, 1))
    corrupt[-1] ^= 0xFF
    sock = FakeSock(
        normal=[
            OSError(errno.EHOSTUNREACH, "No route to host"),  # the pending error of a queued ICMP error
            (bytes(corrupt), [], 0, ("10.9.0.66", 0)),
            (icmp.build_echo_request(4, IDENT, 1, b""), [], 0, ("10.9.0.1", 0)),  # not about echo: None
            (echo_reply(4, IDENT, 2), [], 0, ("10.9.0.2", 0)),
        ],
        errqueue=[(icmp.build_echo_request(4, IDENT, 1, b""), [(socket.SOL_IP, pinger.IP_RECVERR, b"short")],
                   socket.MSG_ERRQUEUE, ("10.9.0.2", 0))])
    with caplog.at_level(logging.DEBUG, LOG):
        received = IcmpSocket(sock, 4, DATAGRAM, IDENT).receive_pending()
    assert received == [(EchoReply(IDENT, 2, PAYLOAD), TARGET, None)]
    assert caplog.messages == [
        "ignored an error-queue entry: truncated sock_extended_err (5 bytes)",
        "socket error No route to host; reading the error queue",
        "ignored a packet from 10.9.0.66: bad ICMP checksum",
    ]


def test_one_wakeup_reads_a_bounded_number_of_packets():
    flood = [(echo_reply(4, IDENT, 1), [], 0, ("10.9.0.2", 0))] * (pinger.MAX_READS_PER_WAKEUP + 10)
    sock = FakeSock(normal=flood)
    assert len(IcmpSocket(sock, 4, DATAGRAM, IDENT).receive_pending()) == pinger.MAX_READS_PER_WAKEUP
    assert len(sock.normal) == 10  # left for the next wakeup, after the sender had its turn


# -- the Pinger ---------------------------------------------------------------------------
def reply_from(source, seq, payload=PAYLOAD, ttl=64):
    return (EchoReply(IDENT, seq, payload), source, ttl)


def answer_every_request(seq, sockaddr):
    return [reply_from(TARGET, seq)]


class FakeIcmpSocket:
    """An IcmpSocket whose network is a function: answer(seq, sockaddr) -> messages to receive,
    each (message, source, ttl) as receive_pending() returns them; sending to `unreachable`
    fails as without a route. A socketpair byte wakes the Pinger's receiving greenlet as a
    readable ICMP socket would."""

    kind, version, ident = DATAGRAM, 4, IDENT

    def __init__(self, answer=answer_every_request, unreachable=None):
        self.answer = answer
        self.unreachable = unreachable
        self.sent = []  # (seq, sockaddr)
        self._pending = []
        self._readable, self._waker = socket.socketpair()
        self._readable.setblocking(False)

    def fileno(self):
        return self._readable.fileno()

    def send(self, packet, sockaddr):
        kind, _, _, ident, seq = icmp.ECHO_HEADER.unpack_from(packet)
        assert (kind, ident, packet[8:]) == (icmp.ICMP_ECHO_REQUEST, IDENT, PAYLOAD)
        self.sent.append((seq, sockaddr))
        if sockaddr[0] == self.unreachable:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        self.deliver(self.answer(seq, sockaddr))

    def deliver(self, messages):
        if messages:
            self._pending.extend(messages)
            self._waker.send(b"!")

    def receive_pending(self):
        try:
            self._readable.recv(4096)
        except BlockingIOError:
            pass
        messages, self._pending = self._pending, []
        return messages

    def close(self):
        self._readable.close()
        self._waker.close()


@pytest.fixture
def network():
    """network(answer, unreachable, kind=FakeIcmpSocket) -> a fake ICMP socket, closed after the test."""
    sockets = []

    def make(answer=answer_every_request, unreachable=None, kind=FakeIcmpSocket):
        sockets.append(kind(answer, unreachable))
        return sockets[-1]
    yield make
    for fake in sockets:
        fake.close()


def target(host="10.9.0.2", address=TARGET):
    return Target(host, address, (str(address), 0))


def run_pinger(caplog, fake, count=3, interval=0.01, timeout=5.0, host_target=None):
    ping = Pinger(fake, host_target or target(), interval, count, timeout)
    with caplog.at_level(logging.DEBUG, LOG):
        stats = ping.run()
    lines = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == LOG]
    return ping, stats, lines


def without_times(lines):
    return [(level, text.split(" time=")[0]) for level, text in lines]


def test_every_request_answered(caplog, network):
    fake = network()
    ping, stats, lines = run_pinger(caplog, fake)
    assert [seq for seq, _ in fake.sent] == [1, 2, 3] and {addr for _, addr in fake.sent} == {("10.9.0.2", 0)}
    assert (stats.transmitted, stats.received, stats.errors, stats.loss_percent) == (3, 3, 0, 0.0)
    assert without_times(lines) == [("INFO", "64 bytes from 10.9.0.2: icmp_seq=%d ttl=64" % seq) for seq in (1, 2, 3)]
    assert all(text.endswith(" ms") for _, text in lines)
    assert ping.elapsed >= 0.02  # three requests, two intervals apart


def test_silence_is_loss_after_the_timeout(caplog, network):
    fake = network(lambda seq, sockaddr: [])
    _, stats, lines = run_pinger(caplog, fake, count=2, timeout=0.02)
    assert (stats.transmitted, stats.received, stats.loss_percent) == (2, 0, 100.0)
    assert lines == [("WARNING", "no reply to icmp_seq=1 within 0.02s"),
                     ("WARNING", "no reply to icmp_seq=2 within 0.02s")]


def test_duplicates_changed_payloads_and_foreign_messages(caplog, network):
    script = {
        1: [reply_from(TARGET, 1), reply_from(TARGET, 1)],                   # answered twice
        2: [reply_from(TARGET, 2, payload=b"x" * 56, ttl=None)],             # payload changed on the way
        3: [(EchoReply(IDENT + 1, 3, PAYLOAD), TARGET, 64), reply_from(TARGET, 3)],  # someone else's first
    }
    _, stats, lines = run_pinger(caplog, network(lambda seq, sockaddr: script[seq]))
    assert (stats.received, stats.duplicates) == (3, 1)
    assert without_times(lines) == [
        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=1 ttl=64"),
        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=1 ttl=64"),
        ("WARNING", "64 bytes from 10.9.0.2: icmp_seq=2"),
        ("DEBUG", "ignored EchoReply from 10.9.0.2 (not one of ours)"),
        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=3 ttl=64"),
    ]
    assert lines[1][1].endswith(" ms (DUP!)") and lines[2][1].endswith(" ms (payload differs from the request)")


def test_reply_from_another_address_is_reported_and_not_counted(caplog, network):
    fake = network(lambda seq, sockaddr: [reply_from(OTHER, seq)])
    _, stats, lines = run_pinger(caplog, fake, count=1, timeout=0.02)
    assert (stats.received, stats.duplicates) == (0, 0)
    assert lines == [
        ("WARNING", "64 bytes from 10.9.0.3: icmp_seq=1 ttl=64 (DIFFERENT ADDRESS! expected 10.9.0.2: ignored)"),
        ("WARNING", "no reply to icmp_seq=1 within 0.02s"),
    ]


def test_late_reply_stays_lost(caplog, network):
    # The reply to request 1 arrives with request 2, after request 1 timed out.
    fake = network(lambda seq, sockaddr: [reply_from(TARGET, 1)] if seq == 2 else [])
    _, stats, lines = run_pinger(caplog, fake, count=2, interval=0.2, timeout=0.01)
    assert (stats.transmitted, stats.received) == (2, 0)
    assert without_times(lines)[:2] == [("WARNING", "no reply to icmp_seq=1 within 0.01s"),
                                        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=1 ttl=64")]
    assert lines[1][1].endswith(" ms (late: already counted as lost)")
    assert lines[2:] == [("WARNING", "no reply to icmp_seq=2 within 0.01s")]


def test_icmp_and_local_errors_fail_requests(caplog, network):
    script = {
        1: [(IcmpError(4, 3, 1, 0, IDENT, 1, TARGET), ROUTER, None)],
        2: [(LocalError(IDENT, 2, errno.EMSGSIZE, 1400), None, None)],
        3: [(IcmpError(4, 3, 1, 0, IDENT, 3, OTHER), ROUTER, None), reply_from(TARGET, 3)],  # not about ours
    }
    _, stats, lines = run_pinger(caplog, network(lambda seq, sockaddr: script[seq]))
    assert (stats.transmitted, stats.received, stats.errors) == (3, 1, 2)
    assert without_times(lines) == [
        ("WARNING", "From 10.9.0.1 icmp_seq=1 Destination Host Unreachable"),
        ("WARNING", "icmp_seq=2 local error: Message too long (mtu = 1400)"),
        ("DEBUG", "ignored IcmpError from 10.9.0.1 (not one of ours)"),
        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=3 ttl=64"),
    ]


def test_send_failure_counts_and_a_name_is_resolved_again(caplog, monkeypatch, network):
    moved = Target("peer.test", TARGET, ("10.9.0.2", 0))
    monkeypatch.setattr(pinger, "resolve", lambda host, version: moved)
    fake = network(unreachable="10.9.9.9")
    _, stats, lines = run_pinger(caplog, fake, count=2, host_target=target("peer.test", DEAD))
    assert fake.sent == [(1, ("10.9.9.9", 0)), (2, ("10.9.0.2", 0))]
    assert (stats.transmitted, stats.received, stats.errors) == (2, 1, 1)
    assert without_times(lines) == [
        ("WARNING", "icmp_seq=1 not sent: Network is unreachable"),
        ("INFO", "peer.test now resolves to 10.9.0.2 (was 10.9.9.9)"),
        ("INFO", "64 bytes from 10.9.0.2: icmp_seq=2 ttl=64"),
    ]


def test_failed_re_resolution_keeps_the_old_address(caplog, monkeypatch, network):
    def resolve(host, version):
        raise ConfigError("cannot resolve peer.test: Name or service not known")
    monkeypatch.setattr(pinger, "resolve", resolve)
    fake = network(unreachable="10.9.9.9")
    _, stats, lines = run_pinger(caplog, fake, count=2, host_target=target("peer.test", DEAD))
    assert [sockaddr for _, sockaddr in fake.sent] == [("10.9.9.9", 0)] * 2
    assert lines[1] == ("WARNING", "cannot resolve peer.test: Name or service not known; still using 10.9.9.9")
    assert stats.errors == 2


def test_numeric_targets_are_not_resolved_again(caplog, monkeypatch, network):
    monkeypatch.setattr(pinger, "resolve", lambda host, version: pytest.fail("resolved %s again" % host))
    _, stats, _ = run_pinger(caplog, network(unreachable="10.9.0.2"), count=2)
    assert stats.errors == 2


def test_stop_ends_an_endless_run(caplog, network):
    pingers = []

    def answer(seq, sockaddr):
        if seq == 2:
            pingers[0].stop()
        return [reply_from(TARGET, seq)]
    fake = network(answer)
    ping = Pinger(fake, target(), 0.01, None, 5.0)
    pingers.append(ping)
    stats = ping.run()
    assert stats.transmitted == 2 and ping.finished is not None


class BrokenReceiver(FakeIcmpSocket):
    def receive_pending(self):
        raise RuntimeError("a bug in the receive path")


def test_a_bug_in_the_receiver_surfaces_in_run(network):
    with pytest.raises(RuntimeError, match="a bug in the receive path"):
        Pinger(network(kind=BrokenReceiver), target(), 3600.0, None, 3600.0).run()
