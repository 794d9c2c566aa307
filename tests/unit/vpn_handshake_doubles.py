"""Two v3 handshake state machines joined by a simulated network, in one process (shared by the
handshake unit and fuzz tests): a manual clock, seeded randomness, and a wire that queues what each
side sends so that a test can lose, duplicate, reorder or replay any of it."""
import hashlib
import random

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import messages
from tomato_gevent.vpn.handshake import Established, Handshake, Send, SendKeepalive

A_ADDRESS, B_ADDRESS = ("10.9.0.1", 5000), ("10.9.0.2", 5000)
T0_MS = 1_765_000_000_000
PVT = 10.0


def password_key(password):
    """A stand-in for scrypt (keyschedule.derive_password_key takes 0.1 s): same size, distinct per password."""
    return hashlib.sha256(b"test key " + password.encode()).digest()


class Clock:
    def __init__(self, mono=1000.0, wall_ms=T0_MS):
        self.mono, self.wall_offset_ms = mono, wall_ms - int(mono * 1000)

    def advance(self, seconds):
        self.mono += seconds

    @property
    def wall_ms(self):
        return int(self.mono * 1000) + self.wall_offset_ms


class Host:
    """One end: its Handshake, its address, what it has seen."""

    def __init__(self, name, lp, pp, address, peer_address, clock, seed, skew_ms=0, **options):
        self.name, self.address, self.clock, self.skew_ms = name, address, clock, skew_ms
        rng = random.Random(seed)
        self.handshake = Handshake(password_key(lp), password_key(pp), PVT, rng.randbytes,
                                   peer_address=peer_address, **options)
        self.established = []       # Established events
        self.refusals = []          # BadPacket raised by receive
        self.keepalives = 0

    @property
    def keypairs(self):
        return self.handshake.keypairs

    @property
    def wall_ms(self):
        return self.clock.wall_ms + self.skew_ms

    def state(self):
        """Everything a refused message must leave as it was."""
        kp = self.handshake.keypairs
        return self.session_state() + (tuple(sorted(kp.unconfirmed)), tuple(sorted(self.handshake._answered)))

    def session_state(self):
        """What only an authenticated message may change: the keypairs in use, our initiation in
        flight, the peer's last confirmed initiation time, the cookie we echo. (An initiation that
        passes the cheap checks adds an answered entry: it cannot be authenticated before the work.)"""
        hs, kp = self.handshake, self.handshake.keypairs
        return (id(kp.current), id(kp.previous), hs._pending, hs._last_peer_timestamp, hs._cookie)

    def seal(self, payload):
        keypair = self.keypairs.sending(self.clock.mono)
        assert keypair is not None, "%s has no session to send with" % self.name
        self.handshake.data_sent(self.clock.mono, bool(payload))
        return keypair.seal(payload)


class Wire:
    """Datagrams in flight: (message, source, destination). deliver() runs them through the hosts."""

    def __init__(self, *hosts):
        self.hosts = {host.address: host for host in hosts}
        self.queue = []
        self.log = []               # everything ever sent, for replays

    def post(self, actions, host):
        for action in actions:
            if isinstance(action, Send):
                self.send(action.message, host.address, action.destination)
            elif isinstance(action, Established):
                host.established.append(action)
            elif isinstance(action, SendKeepalive):
                host.keepalives += 1
                self.send(host.seal(b""), host.address, host.handshake.peer_address)

    def send(self, message, source, destination):
        self.queue.append((bytes(message), source, destination))
        self.log.append((bytes(message), source, destination))

    def tick(self, *hosts):
        for host in hosts or self.hosts.values():
            self.post(host.handshake.tick(host.clock.mono, host.wall_ms), host)

    def take(self):
        queue, self.queue = self.queue, []
        return queue

    def deliver_one(self, message, source, destination):
        """Hand one datagram to its destination; returns the payload of a data datagram or None."""
        host = self.hosts.get(destination)
        if host is None:
            return None
        now = host.clock.mono
        try:
            if messages.message_type(message) == messages.DATA:
                payload, _, keypair, confirmed = host.keypairs.open(message, now)
                host.handshake.data_received(now, bool(payload))
                if confirmed:
                    self.post(host.handshake.confirmed_by_data(keypair, source, now), host)
                return payload
            self.post(host.handshake.receive(message, source, now, host.wall_ms), host)
        except BadPacket as e:
            host.refusals.append(e)
            if getattr(e, "reply", None) is not None:
                self.send(e.reply, host.address, e.destination)
        return None

    def deliver(self, rounds=10, drop=lambda message, source, destination: False):
        """Deliver what is queued, and what that provokes, for up to `rounds` round trips."""
        for _ in range(rounds):
            queue = self.take()
            if not queue:
                return
            for item in queue:
                if not drop(*item):
                    self.deliver_one(*item)


def make_pair(clock=None, a_options=None, b_options=None, b_lp="pwd2", b_pp="pwd1", b_skew_ms=0, b_seed=2):
    """Host A (-lp pwd1 -pp pwd2 -pa B) and host B (-lp pwd2 -pp pwd1 -pa A), both with fixed addresses."""
    clock = Clock() if clock is None else clock
    a = Host("A", "pwd1", "pwd2", A_ADDRESS, B_ADDRESS, clock, 1, **(a_options or {}))
    b = Host("B", b_lp, b_pp, B_ADDRESS, A_ADDRESS, clock, b_seed, skew_ms=b_skew_ms, **(b_options or {}))
    return a, b, Wire(a, b), clock


def same_session(a, b):
    """A's current keypair and B's are the two ends of one handshake."""
    ka, kb = a.keypairs.current, b.keypairs.current
    return (ka is not None and kb is not None and ka.local_index == kb.remote_index
            and ka.remote_index == kb.local_index and ka.initiator != kb.initiator)


def exchange(wire, a, b, payload=b"ping"):
    """A sends to B and B to A; returns the two payloads as received."""
    wire.send(a.seal(payload), a.address, b.address)
    wire.send(b.seal(payload), b.address, a.address)
    return [wire.deliver_one(*item) for item in wire.take()]
