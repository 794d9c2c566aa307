"""The proxy's worker processes (--workers N): every decision, without a process.

Scaling model: N processes, each its own gevent loop and its own listening socket on the
same address (SO_REUSEPORT, as nginx's `reuseport` and haproxy's per-thread listeners):
the kernel hashes each new connection (addresses and ports) to one of the N sockets, so
connections are balanced without the workers waking each other. One listening socket
shared by all would wake every idle worker for each connection, and whoever ran first would
take it. A request costs the same CPU in any worker, so N workers serve up to N times the
requests of one, as long as there are N cores free for them (the clients and the origins
need cores too).

    plan_workers(requested, cpus, max_clients, reuse_port_error) -> Plan(count, notes)
    client_shares(max_clients, count) -> [share per worker]: --max-clients for the whole
                                       proxy, each worker refusing beyond its share
    restart_delay(uptime, previous) -> seconds before a dead worker is started again
    Pool                               which slot runs which pid; ready, restarts, the
                                       counters each worker last reported and their sum
    encode(kind, **fields) / decode(data)   worker -> parent messages, one datagram each
    describe_exit(wait_status) -> "killed by signal SIGKILL"

Pure: times are passed in, nothing here forks, signals, logs or touches a socket
(supervisor.py does, and cli.py decides when to use it).
"""
import json
import math
import os
import signal
from collections import Counter
from dataclasses import dataclass, field

from .stats import Stats

# -- implementation constants ----------------------------------------------------
RESTART_DELAY_FIRST_SECONDS = 0.1   # a worker that died young waits this, doubled each time
RESTART_DELAY_MAX_SECONDS = 10.0    # ... up to this (a crash loop costs little)
HEALTHY_UPTIME_SECONDS = 30.0       # a worker that ran this long is restarted at once
READY, RELOADED, STATS = "ready", "reloaded", "stats"   # message kinds


@dataclass(frozen=True)
class Plan:
    count: int
    notes: tuple = ()               # lines for the log: why count differs from what was asked


def plan_workers(requested, cpus, max_clients, reuse_port_error=None):
    """How many workers to run. requested None = one per CPU the process may use.

    One worker is the single process of old (no supervisor). More need SO_REUSEPORT
    (reuse_port_error: why it is missing, or None) and at least one client each.
    """
    count = requested if requested is not None else max(1, cpus)
    notes = []
    if count > 1 and reuse_port_error is not None:
        notes.append("SO_REUSEPORT is not available (%s): running one worker" % reuse_port_error)
        count = 1
    if count > max_clients:
        notes.append("--max-clients %d leaves no client for more than %d workers: running %d"
                     % (max_clients, max_clients, max_clients))
        count = max_clients
    return Plan(count, tuple(notes))


def client_shares(max_clients, count):
    """Each worker's part of --max-clients: the sum is max_clients, parts differ by at most 1.

    A worker answers 503 beyond its share, so the whole proxy never holds more than
    max_clients; it may refuse a little earlier when the kernel's hash fills one worker
    before the others.
    """
    base, extra = divmod(max_clients, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def restart_delay(uptime, previous):
    """Seconds to wait before starting a dead worker again.

    A worker that ran HEALTHY_UPTIME_SECONDS was healthy: at once, and its history is
    forgotten. One that died young waits RESTART_DELAY_FIRST_SECONDS, then twice as long
    as the time before, up to RESTART_DELAY_MAX_SECONDS: a worker that cannot run costs
    a fork every 10 seconds, not a busy loop.
    """
    if uptime >= HEALTHY_UPTIME_SECONDS:
        return 0.0
    return min(RESTART_DELAY_MAX_SECONDS, max(RESTART_DELAY_FIRST_SECONDS, previous * 2))


def describe_exit(wait_status):
    """os.waitpid's status as words for the log."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            return "killed by signal %s" % signal.Signals(number).name
        except ValueError:
            return "killed by signal %d" % number
    return "exited with status %d" % os.waitstatus_to_exitcode(wait_status)


# -- messages: worker -> parent ------------------------------------------------------
def encode(kind, **fields):
    return json.dumps(dict(fields, kind=kind), separators=(",", ":")).encode()


def decode(data):
    """The message as a dict with "kind"; ValueError if data is not one."""
    message = json.loads(data)
    if not isinstance(message, dict) or message.get("kind") not in (READY, RELOADED, STATS):
        raise ValueError("not a worker message: %r" % data[:80])
    return message


def stats_fields(stats):
    """A Stats as the fields of a STATS message."""
    return {"requests": [[d, c, n] for (d, c), n in stats.requests.items()],
            "up": stats.bytes_up, "down": stats.bytes_down, "open": stats.open_connections}


def add_stats(total, fields, with_open=True):
    """Add a STATS message's counters to the Stats total."""
    for direction, status_class, count in fields.get("requests", ()):
        total.requests[direction, status_class] += count
    total.bytes_up += fields.get("up", 0)
    total.bytes_down += fields.get("down", 0)
    if with_open:
        total.open_connections += fields.get("open", 0)


# -- the pool ------------------------------------------------------------------------
@dataclass
class Slot:
    number: int                     # 1..N, for the log
    share: int                      # of --max-clients
    pid: int = None                 # None: not running
    started: float = 0.0
    ready: bool = False
    delay: float = 0.0              # the last restart delay (backoff)
    restart_at: float = None        # when to start it again (None: not waiting)
    stats: dict = None              # the counters it last reported


@dataclass
class Pool:
    """The workers' slots. Every method is a state change; times are passed in."""

    slots: list
    retired: Stats = field(default_factory=Stats)   # counters of workers that are gone

    @classmethod
    def of(cls, shares):
        return cls([Slot(i + 1, share) for i, share in enumerate(shares)])

    def started(self, slot, pid, now):
        slot.pid, slot.started, slot.ready, slot.restart_at, slot.stats = pid, now, False, None, None

    def by_pid(self, pid):
        return next((s for s in self.slots if s.pid == pid and pid is not None), None)

    def running(self):
        return [s for s in self.slots if s.pid is not None]

    def exited(self, slot, now, restart=True):
        """The worker in slot is gone: keep its last counters, schedule its restart;
        returns the delay (None when not restarting)."""
        if slot.stats is not None:
            add_stats(self.retired, slot.stats, with_open=False)
        uptime = now - slot.started
        slot.pid, slot.ready, slot.stats = None, False, None
        if not restart:
            slot.restart_at = None
            return None
        slot.delay = restart_delay(uptime, slot.delay)
        slot.restart_at = now + slot.delay
        return slot.delay

    def failed_to_start(self, slot, now):
        """Starting the worker failed (no socket, no fork): try again later; the delay."""
        slot.delay = restart_delay(0.0, slot.delay)
        slot.restart_at = now + slot.delay
        return slot.delay

    def due(self, now):
        return [s for s in self.slots if s.restart_at is not None and s.restart_at <= now]

    def next_restart(self):
        times = [s.restart_at for s in self.slots if s.restart_at is not None]
        return min(times) if times else math.inf

    def all_ready(self):
        return all(s.ready for s in self.slots)

    def ready_pids(self):
        """The pids of the running workers that said READY: the ones to signal."""
        return {s.pid for s in self.slots if s.pid is not None and s.ready}

    def total(self):
        """The counters over all workers, gone ones included (open connections: the running)."""
        total = Stats()
        total.requests = Counter(self.retired.requests)
        total.bytes_up, total.bytes_down = self.retired.bytes_up, self.retired.bytes_down
        for slot in self.slots:
            if slot.stats is not None:
                add_stats(total, slot.stats)
        return total
