"""Which TCP connections the TCP transport keeps, trusts and sends on (pure: no sockets, no clock).

A connection is either outgoing (we dialled the configured peer, -pa) or incoming
(accepted on -la). The rules, in the order the transport applies them:
  - trust is earned only by an authenticated datagram (the link's deliver() says so).
    An incoming connection without one is untrusted: it is never sent on, and it is
    closed after UNTRUSTED_SECONDS or UNTRUSTED_BYTES received, or at the first frame
    that fails to open; at most MAX_UNTRUSTED exist, the oldest is closed first.
    Any connection (outgoing too) is closed at a failing frame until one has opened:
    a peer that sends garbage from the start is not our peer.
  - we send on `current`: the connection whose authenticated datagram arrived last,
    or, before any has, our outgoing connection (our first keepalive must go
    somewhere). A connection replaced as current is closed GRACE_SECONDS later
    (what is in flight on it still arrives).
  - crossed connections: when both sides dial (each has -pa), each first sends on
    its own outgoing connection and receives on the other, and "last authenticated"
    would make both sides switch, each to the connection the other is leaving. So
    when the two candidates are one outgoing and one incoming and the current one
    is alive (an authenticated datagram within GRACE_SECONDS, or our own connection
    opened within it), a rule both sides evaluate alike decides: keep_outgoing()
    (the side with the newer session keeps the connection it dialled; the other
    side keeps the one it accepted -- the same connection).
Each method returns what to close; the transport closes it and calls closed().
"""
import collections

UNTRUSTED_SECONDS = 10.0
UNTRUSTED_BYTES = 64 * 1024
MAX_UNTRUSTED = 64
GRACE_SECONDS = 5.0


class ConnectionState:
    """What the rules track of one connection (the transport's Connection extends it)."""

    def __init__(self, outgoing, now):
        self.outgoing = outgoing
        self.opened_at = now
        self.received_untrusted = 0     # bytes received before the first authenticated datagram
        self.authenticated = False
        self.last_authenticated = None  # when its latest authenticated datagram arrived
        self.retire_at = None           # closed then, unless it becomes current again


class ConnectionRules:
    def __init__(self, keep_outgoing=lambda: True, grace=GRACE_SECONDS, untrusted_seconds=UNTRUSTED_SECONDS,
                 untrusted_bytes=UNTRUSTED_BYTES, max_untrusted=MAX_UNTRUSTED):
        self.keep_outgoing = keep_outgoing
        self.grace = grace
        self.untrusted_seconds = untrusted_seconds
        self.untrusted_bytes = untrusted_bytes
        self.max_untrusted = max_untrusted
        self.current = None
        self.connections = set()
        self._untrusted = collections.OrderedDict()     # incoming, oldest first

    def opened(self, conn):
        """A new connection; returns the connections to close: the oldest untrusted beyond
        the cap, or conn itself if it is outgoing and another connection became current
        while it was being made (we dial only while we have none)."""
        if conn.outgoing:
            if self.current is not None:
                return [conn]
            self.connections.add(conn)
            self.current = conn
            return []
        self.connections.add(conn)
        self._untrusted[conn] = None
        excess = []
        while len(self._untrusted) > self.max_untrusted:
            oldest, _ = self._untrusted.popitem(last=False)
            excess.append(oldest)
        return excess

    def received(self, conn, nbytes):
        """nbytes arrived on conn; True when it must be closed (untrusted beyond its budget)."""
        if conn.authenticated:
            return False
        conn.received_untrusted += nbytes
        return not conn.outgoing and conn.received_untrusted > self.untrusted_bytes

    def refused(self, conn):
        """A frame on conn failed to open; True when conn must be closed (never authenticated)."""
        return not conn.authenticated

    def authenticated(self, conn, now):
        """An authenticated datagram arrived on conn; decides where to send from now on."""
        conn.last_authenticated = now
        if not conn.authenticated:
            conn.authenticated = True
            self._untrusted.pop(conn, None)
        current = self.current
        if current is conn:
            return
        winner = conn
        if current is not None and conn.outgoing != current.outgoing and self._alive(current, now):
            winner = conn if conn.outgoing == self.keep_outgoing() else current
        loser = current if winner is conn else conn
        self.current = winner
        winner.retire_at = None
        if loser is not None and loser.retire_at is None:
            loser.retire_at = now + self.grace

    def _alive(self, conn, now):
        """Recently useful: an authenticated datagram (or, for our own connection that has
        none yet, its opening) within the grace period."""
        since = conn.last_authenticated
        if since is None and conn.outgoing:
            since = conn.opened_at
        return since is not None and now - since < self.grace

    def expired(self, now):
        """Connections to close now: untrusted past their time, replaced ones past their grace."""
        doomed = [c for c in self._untrusted if now - c.opened_at >= self.untrusted_seconds]
        doomed += [c for c in self.connections
                   if c.retire_at is not None and c.retire_at <= now and c is not self.current]
        return doomed

    def closed(self, conn):
        """conn is gone; if it was current, the most recently authenticated other one takes over."""
        self.connections.discard(conn)
        self._untrusted.pop(conn, None)
        if self.current is conn:
            candidates = [c for c in self.connections if c.last_authenticated is not None]
            outgoing = [c for c in self.connections if c.outgoing]
            if candidates:
                self.current = max(candidates, key=lambda c: c.last_authenticated)
            else:
                self.current = outgoing[0] if outgoing else None
            if self.current is not None:
                self.current.retire_at = None

    @property
    def untrusted_count(self):
        return len(self._untrusted)
