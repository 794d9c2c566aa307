"""PingLog: bin/ping's output read back line by line (replies, duplicates, losses, ICMP
errors, the summary), shared by test_ping.py and test_ping_through_vpn.py."""
import re

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+)\s+(?P<logger>[\w.]+): (?P<text>.*)$")
REPLY = re.compile(r"^(?P<size>\d+) bytes from (?P<source>\S+): icmp_seq=(?P<seq>\d+)(?: ttl=(?P<ttl>\d+))?"
                   r" time=(?P<ms>\d+\.\d{3}) ms(?P<note>.*)$")
LOST = re.compile(r"^no reply to icmp_seq=(?P<seq>\d+) within \S+s$")
ICMP_ERROR = re.compile(r"^(?:From (?P<source>\S+) )?icmp_seq=(?P<seq>\d+) (?P<reason>.+)$")
COUNTS = re.compile(r"^(?P<transmitted>\d+) packets transmitted, (?P<received>\d+) received"
                    r"(?:, \+(?P<duplicates>\d+) duplicates)?(?:, \+(?P<errors>\d+) errors)?"
                    r", (?P<loss>[\d.]+)% packet loss, time (?P<time>\d+)ms$")
RTT = re.compile(r"^rtt min/avg/max/mdev = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+)/(?P<mdev>[\d.]+) ms$")


class PingLog:
    def __init__(self, output):
        self.output = output
        self.lines = [m.groupdict() for m in map(LOG_LINE.match, output.splitlines()) if m]
        texts = [line["text"] for line in self.lines]
        self.replies = [m.groupdict() for m in map(REPLY.match, texts) if m and not m["note"]]
        self.duplicates = [m.groupdict() for m in map(REPLY.match, texts) if m and "DUP!" in m["note"]]
        self.lost = [int(m["seq"]) for m in map(LOST.match, texts) if m]
        self.errors = [m.groupdict() for m in map(ICMP_ERROR.match, texts) if m]
        counts = [m.groupdict() for m in map(COUNTS.match, texts) if m]
        rtts = [m.groupdict() for m in map(RTT.match, texts) if m]
        self.counts = counts[-1] if counts else None
        self.rtt = {k: float(v) for k, v in rtts[-1].items()} if rtts else None

    @property
    def reply_seqs(self):
        return [int(r["seq"]) for r in self.replies]

    def at_level(self, level):
        return [line["text"] for line in self.lines if line["level"] == level]

    def assert_summary_agrees(self):
        """The summary counts exactly the events logged above it, and its RTTs are theirs."""
        assert self.counts is not None, "no summary in:\n" + self.output
        transmitted, received = int(self.counts["transmitted"]), int(self.counts["received"])
        errors = int(self.counts["errors"] or 0)
        assert received == len(self.replies), self.output
        assert errors == len(self.errors), self.output
        assert int(self.counts["duplicates"] or 0) == len(self.duplicates), self.output
        # Every request ends as one reply, loss or error line, except those still out at a signal.
        accounted = len(self.replies) + len(self.lost) + len(self.errors)
        assert accounted <= transmitted, self.output
        assert float(self.counts["loss"]) == round((transmitted - received) * 100.0 / transmitted, 4), self.output
        if not received:
            assert self.rtt is None, self.output
            return
        times = [float(r["ms"]) for r in self.replies]
        assert self.rtt["min"] == min(times), self.output
        assert self.rtt["max"] == max(times), self.output
        mean = sum(times) / len(times)
        assert abs(self.rtt["avg"] - mean) <= 0.0015, self.output  # lines are rounded to 1 us
        mdev = (sum(t * t for t in times) / len(times) - mean * mean) ** 0.5 if len(times) > 1 else 0.0
        assert abs(self.rtt["mdev"] - mdev) <= 0.003, self.output
