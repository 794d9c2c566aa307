"""Matching replies to requests (identifier, sequence, timeouts, duplicates) and the summary."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.ping.icmp import EchoReply, IcmpError, LocalError
from tomato_gevent.ping.tracker import (Duplicate, EchoTracker, Failed, Late, Lost, Reply, Statistics,
                                        format_summary)

IDENT = 0x4242
PAYLOAD = b"\x00\x01\x02\x03"


def tracker(timeout=1.0):
    return EchoTracker(IDENT, PAYLOAD, timeout)


def reply(seq, ident=IDENT, payload=PAYLOAD):
    return EchoReply(ident, seq, payload)


def test_sequence_starts_at_one_and_wraps_like_iputils():
    t = tracker()
    assert [t.start_request(0.0) for _ in range(3)] == [1, 2, 3]
    t.transmitted = 65534
    assert [t.start_request(0.0) for _ in range(3)] == [65535, 0, 1]


def test_reply_matches_and_measures_rtt():
    t = tracker()
    seq = t.start_request(10.0)
    event = t.receive(reply(seq), 10.25)
    assert event == Reply(seq, 0.25, 8 + len(PAYLOAD), True)
    assert (t.transmitted, t.received, t.outstanding) == (1, 1, 0)


def test_reply_with_other_identifier_is_foreign():
    t = tracker()
    seq = t.start_request(0.0)
    assert t.receive(reply(seq, ident=IDENT + 1), 0.1) is None
    assert (t.received, t.outstanding) == (0, 1)


def test_reply_to_a_sequence_never_sent_is_foreign():
    t = tracker()
    t.start_request(0.0)
    assert t.receive(reply(500), 0.1) is None
    assert t.received == 0


def test_none_message_is_ignored():
    assert tracker().receive(None, 0.0) is None


def test_changed_payload_is_flagged_but_counted():
    t = tracker()
    seq = t.start_request(0.0)
    assert t.receive(reply(seq, payload=b"xxxx"), 0.1).payload_matches is False
    assert t.received == 1


def test_second_reply_is_a_duplicate():
    t = tracker()
    seq = t.start_request(0.0)
    t.receive(reply(seq), 0.1)
    assert t.receive(reply(seq), 0.2) == Duplicate(seq, 0.2, 12)
    assert (t.received, t.duplicates) == (1, 1)


def test_timeout_then_late_reply_stays_lost():
    t = tracker(timeout=1.0)
    seq = t.start_request(0.0)
    assert t.next_deadline() == 1.0
    assert t.expire(0.99) == []
    assert t.expire(1.0) == [Lost(seq)]
    assert t.next_deadline() is None
    assert t.receive(reply(seq), 1.5) == Late(seq, 1.5, 12)
    assert (t.received, t.outstanding) == (0, 0)


def test_expire_in_send_order_and_next_deadline_is_the_oldest():
    t = tracker(timeout=1.0)
    first, second, third = (t.start_request(now) for now in (0.0, 0.5, 1.0))
    t.receive(reply(second), 0.6)
    assert t.next_deadline() == 1.0
    assert t.expire(2.5) == [Lost(first), Lost(third)]


def test_icmp_error_fails_the_request():
    t = tracker()
    seq = t.start_request(0.0)
    error = IcmpError(4, 3, 1, 0, IDENT, seq)
    assert t.receive(error, 0.1) == Failed(seq, error)
    assert (t.errors, t.outstanding) == (1, 0)
    assert t.receive(error, 0.2) is None  # a second error for the same request
    assert t.receive(IcmpError(4, 3, 1, 0, IDENT + 1, seq + 1), 0.2) is None  # someone else's


def test_local_error_fails_the_request():
    t = tracker()
    seq = t.start_request(0.0)
    assert isinstance(t.receive(LocalError(IDENT, seq, 90, 1400), 0.1), Failed)


def test_send_failure_counts_as_transmitted_error():
    t = tracker()
    seq = t.start_request(0.0)
    t.request_failed(seq)
    stats = t.statistics()
    assert (stats.transmitted, stats.received, stats.errors, stats.loss_percent) == (1, 0, 1, 100.0)


def test_wrapped_sequence_replaces_a_request_still_outstanding():
    t = tracker(timeout=1e9)
    first = t.start_request(0.0)
    t.transmitted = 65536  # the next request reuses sequence 1
    assert t.start_request(1.0) == first
    assert t.outstanding == 1
    assert t.receive(reply(first), 1.5).rtt == 0.5


def test_statistics_match_iputils_formulas():
    t = tracker()
    for rtt in (0.001, 0.002, 0.003):
        seq = t.start_request(0.0)
        t.receive(reply(seq), rtt)
    t.start_request(0.0)  # one lost
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
# whatever arrives in whatever order.
operations = st.lists(st.one_of(
    st.tuples(st.just("send")),
    st.tuples(st.just("reply"), st.integers(0, 12), st.sampled_from([IDENT, IDENT + 1])),
    st.tuples(st.just("error"), st.integers(0, 12)),
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
            t.start_request(now)
        elif op[0] == "fail_send":
            t.request_failed(t.start_request(now))
        elif op[0] == "reply":
            replies += isinstance(t.receive(reply(op[1], ident=op[2]), now), Reply)
        elif op[0] == "error":
            t.receive(IcmpError(4, 3, 1, 0, IDENT, op[1]), now)
        else:
            now += op[1]
            lost += len(t.expire(now))
    assert t.received == replies
    assert t.received + t.errors + lost + t.outstanding == t.transmitted
    stats = t.statistics()
    if stats.received:
        assert stats.rtt_min <= stats.rtt_avg + 1e-12 and stats.rtt_avg <= stats.rtt_max + 1e-12
        assert stats.rtt_mdev >= 0
