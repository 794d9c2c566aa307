"""Counters of a running proxy, and the one-line summary logged on SIGUSR1 and at stop.

    record(direction, status, up, down)   one finished request (HTTP exchange, tunnel,
                                          SOCKS session); direction "direct" | "forward" |
                                          "block" | "-" (refused before a direction)
    opened() / closed()                   client connections
    summary() -> "requests direct 2xx=3 5xx=1, block 4xx=2; bytes up=.. down=..; open connections 1"

Pure: no clock, no logging.
"""
from collections import Counter

DIRECTIONS = ("direct", "forward", "block", "-")     # order in the summary
_CLASSES = tuple("%dxx" % n for n in range(10))      # status // 100 -> "2xx": no formatting per request


class Stats:
    def __init__(self):
        self.requests = Counter()          # (direction, "2xx") -> count
        self.bytes_up = 0                  # client -> next hop, heads included
        self.bytes_down = 0                # next hop / proxy -> client
        self.open_connections = 0

    def opened(self):
        self.open_connections += 1

    def closed(self):
        self.open_connections -= 1

    def record(self, direction, status, up=0, down=0):
        self.requests[direction, _CLASSES[status // 100]] += 1
        self.bytes_up += up
        self.bytes_down += down

    def summary(self):
        parts = []
        for direction in DIRECTIONS + tuple(sorted({d for d, _ in self.requests} - set(DIRECTIONS))):
            classes = sorted((cls, n) for (d, cls), n in self.requests.items() if d == direction)
            if classes:
                parts.append("%s %s" % (direction, " ".join("%s=%d" % c for c in classes)))
        return "requests %s; bytes up=%d down=%d; open connections %d" % (
            ", ".join(parts) or "none", self.bytes_up, self.bytes_down, self.open_connections)
