"""Which echo requests are out, what became of each, and iputils-style statistics.

Pure: no sockets, no logging, the clock is passed in (`now`, seconds, monotonic).

    seq = tracker.start_request(now, destination)   # register, then send the request there
    tracker.request_failed(seq)                     # sendto() failed: transmitted + 1 error
    event = tracker.receive(message, now, source)   # message from icmp.parse_*; None = not ours
    lost = tracker.expire(now)                      # requests older than the timeout
    tracker.next_deadline()                         # when expire() has work next

Requests are matched by identifier and 16-bit sequence (it wraps like iputils'), and by
address: a reply must come from the address its request was sent to (any address for a
multicast destination), an ICMP error must quote that address as the request's
destination. A reply with the right identifier and sequence from another address is
`DifferentAddress` (iputils' "DIFFERENT ADDRESS!") and counts for nothing: anyone can send
a reply, only the target can answer. A reply for a request that already timed out is
`Late` and stays counted as lost, so the summary always agrees with the reply lines; a
second reply to the same request is a `Duplicate` (iputils' "+N duplicates"); an ICMP
error quoting an outstanding request is a `Failed` (iputils' "+N errors"). Anything else
(other identifiers, sequences never sent, errors about requests to other destinations)
is None.
"""
import math
from dataclasses import dataclass
from typing import Optional

from .icmp import EchoReply, IcmpError

SEQUENCE_MODULO = 1 << 16
FIRST_SEQUENCE = 1  # iputils starts at icmp_seq=1


@dataclass(frozen=True)
class Reply:
    seq: int
    rtt: float  # seconds
    size: int  # ICMP bytes
    payload_matches: bool


@dataclass(frozen=True)
class Duplicate:
    seq: int
    rtt: float
    size: int


@dataclass(frozen=True)
class Late:
    seq: int
    rtt: float
    size: int


@dataclass(frozen=True)
class DifferentAddress:
    seq: int
    size: int
    expected: object  # the address the request went to (ipaddress object)


@dataclass(frozen=True)
class Lost:
    seq: int


@dataclass(frozen=True)
class Failed:
    seq: int
    message: object  # icmp.IcmpError or icmp.LocalError


@dataclass(frozen=True)
class Statistics:
    transmitted: int
    received: int
    duplicates: int
    errors: int
    rtt_min: Optional[float]  # seconds; None without replies
    rtt_avg: Optional[float]
    rtt_max: Optional[float]
    rtt_mdev: Optional[float]

    @property
    def loss_percent(self):
        if not self.transmitted:
            return 0.0
        return (self.transmitted - self.received) * 100.0 / self.transmitted


_ANSWERED, _ENDED = "answered", "ended"  # ended = lost or failed


class EchoTracker:
    def __init__(self, ident, payload, timeout):
        self.ident = ident
        self.payload = payload
        self.timeout = timeout
        self.transmitted = 0
        self.received = 0
        self.duplicates = 0
        self.errors = 0
        self._rtt_sum = 0.0
        self._rtt_sum_squares = 0.0
        self._rtt_min = None
        self._rtt_max = None
        # seq -> (send time, destination). Insertion order is send order and the timeout
        # is fixed, so the first entry always has the earliest deadline.
        self._outstanding = {}
        # seq -> (outcome, send time, destination) for requests no longer outstanding, to
        # tell duplicates and late replies from foreign ones; bounded by the sequence space.
        self._finished = {}

    @property
    def outstanding(self):
        return len(self._outstanding)

    def start_request(self, now, destination):
        """Register the next request as sent at `now` to `destination` (ipaddress object);
        returns its wire sequence number."""
        seq = (FIRST_SEQUENCE + self.transmitted) % SEQUENCE_MODULO
        self.transmitted += 1
        if seq in self._outstanding:  # wrapped onto a request still waiting: it is lost
            del self._outstanding[seq]
        self._finished.pop(seq, None)
        self._outstanding[seq] = (now, destination)
        return seq

    def request_failed(self, seq):
        """The request could not be sent: transmitted, not received, one more error."""
        sent, destination = self._outstanding.pop(seq)
        self.errors += 1
        self._finished[seq] = (_ENDED, sent, destination)

    def receive(self, message, now, source):
        """Match a parsed message that came from `source` to a request
        -> Reply/Duplicate/Late/DifferentAddress/Failed, or None."""
        if message is None or message.ident != self.ident:
            return None
        seq = message.seq
        if seq in self._outstanding:
            outcome = None
            sent, destination = self._outstanding[seq]
        elif seq in self._finished:
            outcome, sent, destination = self._finished[seq]
        else:
            return None
        if isinstance(message, EchoReply):
            # A multicast request is answered by every member, each from its own address.
            if source != destination and not destination.is_multicast:
                return DifferentAddress(seq, message.size, destination)
            rtt = max(0.0, now - sent)
            if outcome is None:
                del self._outstanding[seq]
                self._count_reply(rtt)
                self._finished[seq] = (_ANSWERED, sent, destination)
                return Reply(seq, rtt, message.size, message.payload == self.payload)
            if outcome == _ANSWERED:
                self.duplicates += 1
                return Duplicate(seq, rtt, message.size)
            return Late(seq, rtt, message.size)
        # An ICMP error about one of our requests, or a local error (our own stack's word,
        # which names no address).
        if outcome is not None:
            return None
        if isinstance(message, IcmpError) and message.destination != destination:
            return None
        del self._outstanding[seq]
        self.errors += 1
        self._finished[seq] = (_ENDED, sent, destination)
        return Failed(seq, message)

    def expire(self, now):
        """Requests whose timeout has passed, in send order, as Lost events."""
        lost = []
        for seq, (sent, destination) in list(self._outstanding.items()):
            if now < sent + self.timeout:
                break
            del self._outstanding[seq]
            self._finished[seq] = (_ENDED, sent, destination)
            lost.append(Lost(seq))
        return lost

    def next_deadline(self):
        for sent, _ in self._outstanding.values():
            return sent + self.timeout
        return None

    def _count_reply(self, rtt):
        self.received += 1
        self._rtt_sum += rtt
        self._rtt_sum_squares += rtt * rtt
        self._rtt_min = rtt if self._rtt_min is None else min(self._rtt_min, rtt)
        self._rtt_max = rtt if self._rtt_max is None else max(self._rtt_max, rtt)

    def statistics(self):
        if not self.received:
            return Statistics(self.transmitted, 0, self.duplicates, self.errors, None, None, None, None)
        avg = self._rtt_sum / self.received
        # iputils: mdev = sqrt(mean of squares - square of mean), the population deviation.
        mdev = math.sqrt(max(0.0, self._rtt_sum_squares / self.received - avg * avg))
        return Statistics(self.transmitted, self.received, self.duplicates, self.errors,
                          self._rtt_min, avg, self._rtt_max, mdev)


def format_summary(host, stats, elapsed):
    """iputils' closing lines, e.g.

    --- 127.0.0.1 ping statistics ---
    3 packets transmitted, 3 received, 0% packet loss, time 402ms
    rtt min/avg/max/mdev = 0.041/0.052/0.060/0.008 ms
    """
    counts = "%d packets transmitted, %d received" % (stats.transmitted, stats.received)
    if stats.duplicates:
        counts += ", +%d duplicates" % stats.duplicates
    if stats.errors:
        counts += ", +%d errors" % stats.errors
    counts += ", %g%% packet loss, time %dms" % (stats.loss_percent, round(elapsed * 1000))
    lines = ["--- %s ping statistics ---" % host, counts]
    if stats.received:
        lines.append("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms" % (
            stats.rtt_min * 1000, stats.rtt_avg * 1000, stats.rtt_max * 1000, stats.rtt_mdev * 1000))
    return lines
