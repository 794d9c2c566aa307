"""LinkReport: which data-path events become log lines at the default level, and how often."""
import logging

import pytest

from tomato_gevent.errors import BadPacket
from tomato_gevent.netutil import format_address
from tomato_gevent.vpn.packet import PROTOCOL
from tomato_gevent.vpn.report import LinkReport, diagnosed
from tomato_gevent.vpn.session import AUTHENTICATION_FAILED, PeerEndpoint, TimestampRefused

PEER = ("10.9.0.2", 5000)


@pytest.fixture
def caplog_info(caplog):
    caplog.set_level(logging.INFO, logger="tomato_gevent.vpn.report")
    return caplog


def describe(source):        # as the transports' describe: a sockaddr, or a TCP connection (its .peer)
    return format_address(getattr(source, "peer", source))


def report(endpoint=None, silent_after=60.0):
    endpoint = endpoint or PeerEndpoint(fixed=PEER)
    return LinkReport("tun0", endpoint, 10.0, silent_after, describe, now=0.0, wall=lambda: 1_700_000_000.0)


def lines(caplog, level=logging.INFO):
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_tunnel_up_on_the_first_datagram_then_silent_and_back(caplog_info):
    r = report()
    r.tick(30.0)
    assert lines(caplog_info) == []
    r.received(PEER, 0xABC, 31.0)
    r.received(PEER, 0xABC, 32.0)
    assert lines(caplog_info) == ["tunnel tun0 up: first authenticated datagram from 10.9.0.2:5000 "
                                  "(peer session 0000000000000abc)"]
    r.tick(91.9)
    r.tick(92.0)
    r.tick(93.0)
    silent = lines(caplog_info, logging.WARNING)
    assert len(silent) == 1 and silent[0].startswith("peer silent since ") and "(1 min)" in silent[0]
    r.received(PEER, 0xABC, 152.0)
    assert lines(caplog_info)[-1] == "peer 10.9.0.2:5000 back after 2 min of silence"


def test_never_heard_is_reported_as_silent_since_the_start(caplog_info):
    r = report(silent_after=60.0)
    r.tick(60.0)
    assert lines(caplog_info) == ["peer silent since the start (1 min): no authenticated datagram yet"]


def test_authentication_failures_from_the_peer_are_throttled(caplog_info):
    r = report()
    failed = BadPacket("authentication failed")
    for second in range(0, 60):
        r.refused(failed, ("10.9.0.2", 40000), float(second))     # any port: NAT may change it
    r.refused(failed, PEER, 60.0)
    hint = ("fail authentication: check the passwords, that -pp here matches -lp there, and that both ends run "
            "the same protocol version (%s)" % PROTOCOL)
    warned = lines(caplog_info, logging.WARNING)
    assert warned == ["datagrams from 10.9.0.2:40000 " + hint,
                      "datagrams from 10.9.0.2:5000 " + hint + " (59 more like this in the last 1 min)"]


def test_refusals_from_elsewhere_are_not_diagnosed(caplog_info):
    r = report()
    r.refused(BadPacket("authentication failed"), ("203.0.113.9", 5000), 0.0)
    r.refused(TimestampRefused(30_000), ("203.0.113.9", 5000), 0.0)
    assert lines(caplog_info) == []


def test_stream_sources_are_judged_by_their_remote_address(caplog_info):
    """TCP hands over connection objects; their .peer is the sockaddr."""
    from types import SimpleNamespace

    r = report()
    r.refused(BadPacket("authentication failed"), SimpleNamespace(peer=("203.0.113.9", 5000)), 0.0)
    assert lines(caplog_info) == []
    r.refused(BadPacket("authentication failed"), SimpleNamespace(peer=("10.9.0.2", 41000)), 0.0)
    assert len(lines(caplog_info, logging.WARNING)) == 1


def test_dynamic_mode_diagnoses_anyone_until_a_peer_is_known(caplog_info):
    endpoint = PeerEndpoint(forget_after=60.0)
    r = report(endpoint)
    r.refused(BadPacket("authentication failed"), ("10.9.0.7", 1234), 0.0)
    assert len(lines(caplog_info, logging.WARNING)) == 1
    endpoint.learn(PEER, 1.0)
    r.learned(PEER, 1.0)
    r.refused(BadPacket("authentication failed"), ("10.9.0.7", 1234), 100.0)   # not the peer now
    assert lines(caplog_info)[1:] == ["peer address is now 10.9.0.2:5000"]
    r.forgot(PEER, 70.0)
    assert lines(caplog_info)[-1] == "forgot peer address 10.9.0.2:5000: nothing authentic for 60 s"


def test_clock_skew_names_the_difference_and_pvt(caplog_info):
    r = report()
    r.refused(TimestampRefused(-30_200), PEER, 0.0)
    r.refused(TimestampRefused(45_000, "session starts in the future"), PEER, 1.0)    # same cause: held back
    assert [line.split(" (")[0] for line in lines(caplog_info)] == [
        "datagrams from 10.9.0.2:5000 refused: peer clock differs by -30 s; -pvt is 10 s"]


def test_only_authentication_and_clock_refusals_are_diagnosed():
    assert diagnosed(BadPacket(AUTHENTICATION_FAILED))
    assert diagnosed(TimestampRefused(30_000))
    assert diagnosed(TimestampRefused(60_000, "session starts in the future"))
    assert not diagnosed(BadPacket("replayed"))
    assert not diagnosed(BadPacket("too short"))


class FakeProbe:
    """versions.VersionProbe's interface: says "tomato-vpn v2" for datagrams starting with b"v2"."""

    def __init__(self):
        self.asked = []

    def older_version(self, datagram, now):
        self.asked.append(bytes(datagram))
        return "tomato-vpn v2" if bytes(datagram).startswith(b"v2") else None


def test_an_older_protocol_is_named_with_ours_in_one_line(caplog_info):
    probe = FakeProbe()
    r = LinkReport("tun0", PeerEndpoint(fixed=PEER), 10.0, 60.0, describe, now=0.0, wall=lambda: 1.0, versions=probe)
    for i in range(5):
        r.refused(BadPacket(AUTHENTICATION_FAILED), PEER, 1.0 + i, b"v2 datagram")
    assert lines(caplog_info) == ["datagrams from 10.9.0.2:5000 are protocol tomato-vpn v2, this end speaks %s: run "
                                  "the same version on both ends" % PROTOCOL]
    assert PROTOCOL == "tomato-vpn v3"


def test_the_probe_is_asked_only_about_the_peers_failed_datagrams(caplog_info):
    probe = FakeProbe()
    r = LinkReport("tun0", PeerEndpoint(fixed=PEER), 10.0, 60.0, describe, now=0.0, wall=lambda: 1.0, versions=probe)
    r.refused(BadPacket(AUTHENTICATION_FAILED), ("192.0.2.9", 5000), 1.0, b"v2 from a stranger")
    r.refused(TimestampRefused(60_000), PEER, 2.0, b"v2 but a clock problem")
    r.refused(BadPacket(AUTHENTICATION_FAILED), PEER, 3.0, b"wrong password")
    assert probe.asked == [b"wrong password"]
    assert "check the passwords" in lines(caplog_info)[-1]


def test_a_v2_keepalive_too_short_for_v3_is_recognised_and_other_short_ones_stay_quiet(caplog_info):
    """A v2 keepalive has 36 bytes, one less than v3's minimum: refused as short before any
    crypto, and the probe still names the version (an idle v2 peer sends nothing else)."""
    from tomato_gevent.vpn.session import SHORT_DATAGRAM

    assert diagnosed(BadPacket(SHORT_DATAGRAM))
    probe = FakeProbe()
    r = LinkReport("tun0", PeerEndpoint(fixed=PEER), 10.0, 60.0, describe, now=0.0, wall=lambda: 1.0, versions=probe)
    r.refused(BadPacket(SHORT_DATAGRAM), PEER, 1.0, b"short junk")
    assert lines(caplog_info) == []
    r.refused(BadPacket(SHORT_DATAGRAM), PEER, 2.0, b"v2 keepalive")
    assert "are protocol tomato-vpn v2" in lines(caplog_info)[-1]


def test_every_change_of_the_peers_address_is_logged(caplog_info):
    """Issue 24 item 8: a roaming peer's second change within a minute was a DEBUG line."""
    endpoint = PeerEndpoint(forget_after=60.0)
    r = report(endpoint)
    for second, address in enumerate([PEER, ("10.9.0.3", 5000), ("10.9.0.3", 6000)]):
        endpoint.learn(address, float(second))
        r.learned(address, float(second))
    assert lines(caplog_info) == ["peer address is now 10.9.0.2:5000",
                                  "peer address is now 10.9.0.3:5000 (was 10.9.0.2:5000)",
                                  "peer address is now 10.9.0.3:6000 (was 10.9.0.3:5000)"]


def test_a_peer_flapping_between_addresses_is_counted_beyond_a_burst(caplog_info):
    from tomato_gevent.vpn.report import ADDRESS_LINES_PER_INTERVAL

    r = report(PeerEndpoint(forget_after=60.0))
    addresses = [PEER, ("10.9.0.3", 5000)]
    for change in range(ADDRESS_LINES_PER_INTERVAL + 5):
        r.learned(addresses[change % 2], change / 10.0)
    assert len(lines(caplog_info)) == ADDRESS_LINES_PER_INTERVAL
    r.learned(PEER, 60.0)
    assert lines(caplog_info)[-1] == "peer address is now 10.9.0.2:5000 (was 10.9.0.3:5000) (5 more changes in the " \
                                     "last 1 min)"


def test_a_peer_restart_is_logged_every_time(caplog_info):
    """Issue 24 item 8: a new peer session (the peer restarted) was a DEBUG line only."""
    r = report()
    r.received(PEER, 0xA0000, 1.0)
    r.received(PEER, 0xA0000, 2.0)
    r.received(PEER, 0xB0000, 3.0)
    r.received(("10.9.0.2", 5001), 0xC0000, 4.0)
    assert lines(caplog_info)[1:] == [
        "peer 10.9.0.2:5000 started a new session 00000000000b0000 (was 00000000000a0000): it restarted",
        "peer 10.9.0.2:5001 started a new session 00000000000c0000 (was 00000000000b0000): it restarted"]
