"""Matching replies to requests (identifier, sequence, timeouts, duplicates) and the summary."""
import ipaddress
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.ping.icmp import EchoReply, IcmpError, LocalError
from tomato_gevent.ping.tracker import (DifferentAddress, Duplicate, EchoTracker, Failed, Late, Lost, Reply,
                                        Statistics, format_summary)

IDENT = 0x4242
TARGET = ipaddress.ip_address("10.9.0.2")
OTHER = ipaddress.ip_address("10.9.0.3")
PAYLOAD = b"\x00\x01\x02\x03"


def tracker(timeout=1.0):
    return EchoTracker(IDENT, PAYLOAD, timeout)


def reply(seq, ident=IDENT, payload=PAYLOAD):
    return EchoReply(ident, seq, payload)


def test_sequence_starts_at_one_and_wraps_like_iputils():
    t = tracker()
    assert [t.start_request(0.0, TARGET) for _ in range(3)] == [1, 2, 3]
    t.transmitted = 65534
    assert [t.start_request(0.0, TARGET) for _ in range(3)] == [65535, 0, 1]


def test_reply_matches_and_measures_rtt():
    t = tracker()
    seq = t.start_request(10.0, TARGET)
    event = t.receive(reply(seq), 10.25, TARGET)
    assert event == Reply(seq, 0.25, 8 + len(PAYLOAD), True)
    assert (t.transmitted, t.received, t.outstanding) == (1, 1, 0)


def test_reply_with_other_identifier_is_foreign():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    assert t.receive(reply(seq, ident=IDENT + 1), 0.1, TARGET) is None
    assert (t.received, t.outstanding) == (0, 1)


def test_reply_to_a_sequence_never_sent_is_foreign():
    t = tracker()
    t.start_request(0.0, TARGET)
    assert t.receive(reply(500), 0.1, TARGET) is None
    assert t.received == 0


def test_none_message_is_ignored():
    assert tracker().receive(None, 0.0, TARGET) is None


def test_changed_payload_is_flagged_but_counted():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    assert t.receive(reply(seq, payload=b"xxxx"), 0.1, TARGET).payload_matches is False
    assert t.received == 1


def test_second_reply_is_a_duplicate():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    t.receive(reply(seq), 0.1, TARGET)
    assert t.receive(reply(seq), 0.2, TARGET) == Duplicate(seq, 0.2, 12)
    assert (t.received, t.duplicates) == (1, 1)


def test_timeout_then_late_reply_stays_lost():
    t = tracker(timeout=1.0)
    seq = t.start_request(0.0, TARGET)
    assert t.next_deadline() == 1.0
    assert t.expire(0.99) == []
    assert t.expire(1.0) == [Lost(seq)]
    assert t.next_deadline() is None
    assert t.receive(reply(seq), 1.5, TARGET) == Late(seq, 1.5, 12)
    assert (t.received, t.outstanding) == (0, 0)


def test_expire_in_send_order_and_next_deadline_is_the_oldest():
    t = tracker(timeout=1.0)
    first, second, third = (t.start_request(now, TARGET) for now in (0.0, 0.5, 1.0))
    t.receive(reply(second), 0.6, TARGET)
    assert t.next_deadline() == 1.0
    assert t.expire(2.5) == [Lost(first), Lost(third)]


def test_icmp_error_fails_the_request():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    error = IcmpError(4, 3, 1, 0, IDENT, seq, TARGET)
    assert t.receive(error, 0.1, TARGET) == Failed(seq, error)
    assert (t.errors, t.outstanding) == (1, 0)
    assert t.receive(error, 0.2, TARGET) is None  # a second error for the same request
    assert t.receive(IcmpError(4, 3, 1, 0, IDENT + 1, seq + 1, TARGET), 0.2, TARGET) is None  # someone else's


# -- the address check (issue 10.12): only the target answers; anyone can forge a reply --
def counters(t):
    return (t.transmitted, t.received, t.duplicates, t.errors, t.outstanding)


def test_reply_from_another_address_is_reported_and_not_counted():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    before = counters(t)
    assert t.receive(reply(seq), 0.1, OTHER) == DifferentAddress(seq, 12, TARGET)
    assert counters(t) == before
    assert t.receive(reply(seq), 0.2, TARGET) == Reply(seq, 0.2, 12, True)  # the real one still counts


def test_forged_reply_to_an_answered_request_is_not_a_duplicate():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    t.receive(reply(seq), 0.1, TARGET)
    assert t.receive(reply(seq), 0.2, OTHER) == DifferentAddress(seq, 12, TARGET)
    assert t.duplicates == 0


def test_forged_reply_to_a_lost_request_is_not_late():
    t = tracker(timeout=1.0)
    seq = t.start_request(0.0, TARGET)
    t.expire(1.0)
    assert t.receive(reply(seq), 1.5, OTHER) == DifferentAddress(seq, 12, TARGET)


def test_icmp_error_about_a_request_to_another_destination_is_foreign():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    assert t.receive(IcmpError(4, 3, 1, 0, IDENT, seq, OTHER), 0.1, OTHER) is None
    assert t.receive(IcmpError(4, 3, 1, 0, IDENT, seq, None), 0.1, OTHER) is None  # cannot tell: not ours
    assert (t.errors, t.outstanding) == (0, 1)
    # Who reports the error does not matter (any router on the path may): what it quotes does.
    assert isinstance(t.receive(IcmpError(4, 3, 1, 0, IDENT, seq, TARGET), 0.2, OTHER), Failed)


def test_each_request_is_checked_against_its_own_destination():
    # A name re-resolved to another address: requests already out were sent to the old one.
    t = tracker()
    old = t.start_request(0.0, OTHER)
    new = t.start_request(0.1, TARGET)
    assert isinstance(t.receive(reply(old), 0.2, OTHER), Reply)
    assert isinstance(t.receive(reply(new), 0.2, OTHER), DifferentAddress)
    assert isinstance(t.receive(reply(new), 0.3, TARGET), Reply)


def test_a_multicast_request_is_answered_from_the_members_addresses():
    t = tracker()
    seq = t.start_request(0.0, ipaddress.ip_address("ff02::1"))
    assert isinstance(t.receive(reply(seq), 0.1, ipaddress.ip_address("fe80::1")), Reply)
    assert isinstance(t.receive(reply(seq), 0.2, ipaddress.ip_address("fe80::2")), Duplicate)


def test_local_error_fails_the_request():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    assert isinstance(t.receive(LocalError(IDENT, seq, 90, 1400), 0.1, TARGET), Failed)


def test_send_failure_counts_as_transmitted_error():
    t = tracker()
    seq = t.start_request(0.0, TARGET)
    t.request_failed(seq)
    stats = t.statistics()
    assert (stats.transmitted, stats.received, stats.errors, stats.loss_percent) == (1, 0, 1, 100.0)


def test_wrapped_sequence_replaces_a_request_still_outstanding():
    t = tracker(timeout=1e9)
    first = t.start_request(0.0, TARGET)
    t.transmitted = 65536  # the next request reuses sequence 1
    assert t.start_request(1.0, TARGET) == first
    assert t.outstanding == 1
    assert t.receive(reply(first), 1.5, TARGET).rtt == 0.5


def test_statistics_match_iputils_formulas():
    t = tracker()
    for rtt in (0.001, 0.002, 0.003):
        seq = t.start_request(0.0, TARGET)
        t.receive(reply(seq), rtt, TARGET)
    t.start_request(0.0, TARGET)  # one lost
    stats = t.statistics()
    assert (stats.transmitted, stats.received) == (4, 3)
    assert stats.loss_percent == 25.0
    assert stats.rtt_min == 0.001 and stats.rtt_max == 0.003
    assert stats.rtt_avg == pytest.approx(0.002)
    assert stats.rtt_mdev == pytest.approx(math.sqrt(2 / 3) * 0.001)  # population deviation


def test_statistics_without_replies():
    stats = tracker().statistics()
    assert stats == Statistics(0, 0, 0, 0, None, None, None, None)
    assert stats.loss_percent == 0.0


def test_format_summary_all_received():
    stats = Statistics(3, 3, 0, 0, 0.000041, 0.000052, 0.000060, 0.000008)
    assert format_summary("127.0.0.1", stats, 0.4024) == [
        "--- 127.0.0.1 ping statistics ---",
        "3 packets transmitted, 3 received, 0% packet loss, time 402ms",
        "rtt min/avg/max/mdev = 0.041/0.052/0.060/0.008 ms",
    ]


def test_format_summary_duplicates_errors_and_fractional_loss():
    stats = Statistics(3, 2, 1, 1, 0.001, 0.0015, 0.002, 0.0005)
    assert format_summary("host", stats, 2.0)[1] == \
        "3 packets transmitted, 2 received, +1 duplicates, +1 errors, 33.3333% packet loss, time 2000ms"


def test_format_summary_no_replies_has_no_rtt_line():
    assert format_summary("10.9.0.7", Statistics(2, 0, 0, 2, None, None, None, None), 0.2) == [
        "--- 10.9.0.7 ping statistics ---",
        "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 200ms",
    ]


# Every request ends up exactly once as received, lost, failed or still outstanding,
# whatever arrives in whatever order; replies and errors about other addresses change nothing.
operations = st.lists(st.one_of(
    st.tuples(st.just("send")),
    st.tuples(st.just("reply"), st.integers(0, 12), st.sampled_from([IDENT, IDENT + 1]),
              st.sampled_from([TARGET, OTHER])),
    st.tuples(st.just("error"), st.integers(0, 12), st.sampled_from([TARGET, OTHER])),
    st.tuples(st.just("fail_send")),
    st.tuples(st.just("tick"), st.floats(0.0, 2.0)),
), max_size=60)


@given(operations)
def test_every_request_is_accounted_for_once(ops):
    t = tracker(timeout=1.0)
    now = 0.0
    lost = replies = 0
    for op in ops:
        if op[0] == "send":
            t.start_request(now, TARGET)
        elif op[0] == "fail_send":
            t.request_failed(t.start_request(now, TARGET))
        elif op[0] == "reply":
            before = counters(t)
            event = t.receive(reply(op[1], ident=op[2]), now, op[3])
            replies += isinstance(event, Reply)
            if op[3] != TARGET:  # a reply from elsewhere changes nothing
                assert counters(t) == before and event in (None, DifferentAddress(op[1], 12, TARGET))
        elif op[0] == "error":
            before = counters(t)
            t.receive(IcmpError(4, 3, 1, 0, IDENT, op[1], op[2]), now, OTHER)
            if op[2] != TARGET:
                assert counters(t) == before
        else:
            now += op[1]
            lost += len(t.expire(now))
    assert t.received == replies
    assert t.received + t.errors + lost + t.outstanding == t.transmitted
    stats = t.statistics()
    if stats.received:
        assert stats.rtt_min <= stats.rtt_avg + 1e-12 and stats.rtt_avg <= stats.rtt_max + 1e-12
        assert stats.rtt_mdev >= 0
