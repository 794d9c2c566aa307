"""Which TCP connections the TCP transport keeps, trusts and sends on (pure: no sockets, no clock).

A connection is either outgoing (we dialled the configured peer, -pa) or incoming
(accepted on -la). The rules, in the order the transport applies them:
  - trust is earned only by an authenticated datagram (the link's deliver() says so).
    A connection without one is untrusted: an incoming one is never sent on, and any
    connection (outgoing too: a silent listener on the peer's port is not our peer) is
    closed after UNTRUSTED_SECONDS, or at the first frame that fails to open; an
    incoming one also after UNTRUSTED_BYTES received, and at most MAX_UNTRUSTED
    incoming ones exist, the oldest is closed first.
  - fresh: an authenticated datagram is fresh when it is the newest the peer has sent
    so far (a higher counter than any accepted before, on any connection, or the first
    of a new session). Only a fresh datagram moves where we send: one held back by an
    attacker and delivered late on another connection, or still in flight on a
    connection the peer has left, makes that connection trusted but never current.
    The transport tells the rules the (session id, counter) of each datagram (heard()).
  - we send on `current`: the connection whose fresh datagram arrived last, or, before
    any has, our outgoing connection (our first keepalive must go somewhere). A
    connection replaced as current is closed GRACE_SECONDS later (what is in flight on
    it still arrives), unless a fresh datagram makes it current again before that. So
    a diversion (a held datagram delivered fresh on an attacker's connection) lasts at
    most until the peer's next datagram on the real one.
  - crossed connections: when both sides dial (each has -pa), each first sends on its
    own outgoing connection and receives on the other, and "last fresh" would make both
    sides switch, each to the connection the other is leaving. A rule both sides
    evaluate alike decides: keep_outgoing() (handshake.keeps_outgoing: True on one side only).
    That side keeps the connection it dialled while it is alive (a fresh datagram
    within GRACE_SECONDS, or opened within it), and the first time it does so against
    a connection the peer sent on, it sends a keepalive on its own at once (the peer
    may have had nothing from us on it yet, and would go on sending on the one we close);
    the other side simply follows the newer side's fresh datagrams, which all arrive on
    that connection. Only the newer
    side defends its current connection, and only its own outgoing one: an incoming
    connection is never defended (anyone can open one, and the older side has nothing
    to defend -- the newer side never sends on the older side's dial once it decided).
  - unanswered: a connection on which we sent data (not keepalives) and got nothing
    authentic back for UNANSWERED_SECONDS is not working; when it is an incoming one
    (it may be an attacker's that a held datagram made current), a side with -pa dials
    again (redial_wanted()) and the new outgoing connection becomes current.
Each method returns what to close; the transport closes it and calls closed().
"""
import collections

UNTRUSTED_SECONDS = 10.0
UNTRUSTED_BYTES = 64 * 1024
MAX_UNTRUSTED = 64
GRACE_SECONDS = 5.0
UNANSWERED_SECONDS = 3.0


class ConnectionState:
    """What the rules track of one connection (the transport's Connection extends it)."""

    def __init__(self, outgoing, now):
        self.outgoing = outgoing
        self.opened_at = now
        self.received_untrusted = 0     # bytes received before the first authenticated datagram
        self.authenticated = False
        self.last_authenticated = None  # when its latest fresh authenticated datagram arrived
        self.retire_at = None           # closed then, unless it becomes current again
        self.sent_data = 0              # datagrams with a payload sent on it (the transport counts)


class ConnectionRules:
    def __init__(self, keep_outgoing=lambda: True, grace=GRACE_SECONDS, untrusted_seconds=UNTRUSTED_SECONDS,
                 untrusted_bytes=UNTRUSTED_BYTES, max_untrusted=MAX_UNTRUSTED,
                 unanswered_seconds=UNANSWERED_SECONDS):
        self.keep_outgoing = keep_outgoing
        self.grace = grace
        self.untrusted_seconds = untrusted_seconds
        self.untrusted_bytes = untrusted_bytes
        self.max_untrusted = max_untrusted
        self.unanswered_seconds = unanswered_seconds
        self.current = None
        self.connections = set()
        self._untrusted = collections.OrderedDict()     # incoming, oldest first
        self._newest = None     # (session id, counter) of the newest authenticated datagram
        self._watch = None      # (current, its last_authenticated, sent_data then, data sent since)

    def opened(self, conn):
        """A new connection; returns the connections to close: the oldest untrusted beyond
        the cap, or conn itself if it is outgoing and another connection became current
        (and answers) while it was being made (we dial only while we have none that works)."""
        if conn.outgoing:
            if self.current is not None and not self._unanswered(conn.opened_at):
                return [conn]
            self.connections.add(conn)
            if self.current is not None and self.current.retire_at is None:
                self.current.retire_at = conn.opened_at + self.grace
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

    def heard(self, header):
        """The authenticated datagram (session id, counter) arrived on the current connection
        (in order: the newest so far). The transport tells at least the last of each read."""
        self._newest = header

    def authenticated(self, conn, now, header=None):
        """An authenticated datagram arrived on conn (header: its (session id, counter);
        None counts as fresh); decides where to send from now on. True when we keep our own
        connection over conn, the first time: the peer must hear from us on ours at once
        (a keepalive), else it goes on sending on conn, which we close after the grace."""
        if not conn.authenticated:
            conn.authenticated = True
            self._untrusted.pop(conn, None)
        newest = self._newest
        if header is not None and newest is not None and header[0] == newest[0] and header[1] <= newest[1]:
            # Held back or still in flight: trusted, but it moves nothing.
            if conn is not self.current and conn.retire_at is None:
                conn.retire_at = now + self.grace
            return False
        if header is not None:
            self._newest = header
        conn.last_authenticated = now
        current = self.current
        if current is conn:
            return False
        winner = conn
        if (current is not None and current.outgoing and not conn.outgoing and self.keep_outgoing()
                and self._alive(current, now)):
            winner = current
        loser = current if winner is conn else conn
        self.current = winner
        winner.retire_at = None
        if loser is not None and loser.retire_at is None:
            loser.retire_at = now + self.grace
            return loser is conn
        return False

    def _alive(self, conn, now):
        """Recently useful: a fresh authenticated datagram (or, for our own connection that
        has none yet, its opening) within the grace period."""
        since = conn.last_authenticated
        if since is None and conn.outgoing:
            since = conn.opened_at
        return since is not None and now - since < self.grace

    def _unanswered(self, now):
        """The current connection took data for unanswered_seconds with nothing authentic back
        (as last seen by redial_wanted)."""
        watch, current = self._watch, self.current
        return (watch is not None and watch[0] is current and watch[1] == current.last_authenticated
                and watch[3] is not None and now - watch[3] >= self.unanswered_seconds)

    def redial_wanted(self, now):
        """Called periodically by a dialling side: True when it should dial (no current
        connection, or an incoming current one that goes unanswered: see the docstring)."""
        current = self.current
        if current is None:
            return True
        watch = self._watch
        if watch is None or watch[0] is not current or watch[1] != current.last_authenticated:
            self._watch = (current, current.last_authenticated, current.sent_data, None)
            return False
        if watch[3] is None:
            if current.sent_data != watch[2]:
                self._watch = watch[:3] + (now,)
            return False
        return not current.outgoing and self._unanswered(now)

    def expired(self, now):
        """Connections to close now: untrusted past their time, replaced ones past their grace."""
        return [c for c in self.connections
                if (not c.authenticated and now - c.opened_at >= self.untrusted_seconds)
                or (c.retire_at is not None and c.retire_at <= now and c is not self.current)]

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
