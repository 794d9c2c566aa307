"""workers.py: the decisions of --workers N as tables, no process started."""
import signal

import pytest

from tomato_gevent.proxy import workers
from tomato_gevent.proxy.stats import Stats
from tomato_gevent.proxy.workers import (HEALTHY_UPTIME_SECONDS, RESTART_DELAY_FIRST_SECONDS,
                                         RESTART_DELAY_MAX_SECONDS, Plan, Pool, client_shares,
                                         plan_workers, restart_delay)


@pytest.mark.parametrize("requested, cpus, max_clients, reuse_port_error, count, note", [
    (None, 4, 2048, None, 4, None),                 # default: one per CPU
    (None, 1, 2048, None, 1, None),
    (None, 0, 2048, None, 1, None),                 # an affinity of nothing still runs one
    (3, 1, 2048, None, 3, None),                    # asked for: as asked
    (1, 8, 2048, "kernel says no", 1, None),        # one worker needs no SO_REUSEPORT: no line
    (None, 4, 2048, "kernel says no", 1, "SO_REUSEPORT is not available (kernel says no): running one worker"),
    (4, 2, 3, None, 3, "--max-clients 3 leaves no client for more than 3 workers: running 3"),
], ids=["default", "one-cpu", "no-cpu", "asked", "one-no-reuseport", "no-reuseport", "max-clients"])
def test_plan_workers(requested, cpus, max_clients, reuse_port_error, count, note):
    plan = plan_workers(requested, cpus, max_clients, reuse_port_error)
    assert plan == Plan(count, (note,) if note else ())


@pytest.mark.parametrize("max_clients, count, shares", [
    (2048, 1, [2048]),
    (2048, 2, [1024, 1024]),
    (10, 3, [4, 3, 3]),
    (4, 4, [1, 1, 1, 1]),
    (5, 2, [3, 2]),
])
def test_client_shares_add_up_to_max_clients(max_clients, count, shares):
    assert client_shares(max_clients, count) == shares
    assert sum(shares) == max_clients


@pytest.mark.parametrize("uptime, previous, delay", [
    (0.5, 0.0, RESTART_DELAY_FIRST_SECONDS),        # died young, first time
    (0.5, RESTART_DELAY_FIRST_SECONDS, 2 * RESTART_DELAY_FIRST_SECONDS),
    (0.5, 0.4, 0.8),                                # doubling ...
    (0.5, 8.0, RESTART_DELAY_MAX_SECONDS),          # ... up to the cap
    (0.5, RESTART_DELAY_MAX_SECONDS, RESTART_DELAY_MAX_SECONDS),
    (HEALTHY_UPTIME_SECONDS, 8.0, 0.0),             # ran long enough: at once, history forgotten
    (3600.0, 0.0, 0.0),
])
def test_restart_delay_backs_off_against_crash_loops(uptime, previous, delay):
    assert restart_delay(uptime, previous) == pytest.approx(delay)


@pytest.mark.parametrize("status, text", [
    (signal.SIGKILL, "killed by signal SIGKILL"),   # raw wait statuses: signal in the low bits
    (3 << 8, "exited with status 3"),
    (0, "exited with status 0"),
])
def test_describe_exit(status, text):
    assert workers.describe_exit(status) == text


def test_messages_round_trip_and_garbage_is_refused():
    stats = Stats()
    stats.opened()
    stats.record("direct", 200, 10, 20)
    stats.record("block", 403, 0, 5)
    message = workers.decode(workers.encode(workers.STATS, **workers.stats_fields(stats)))
    total = Stats()
    workers.add_stats(total, message)
    assert total.summary() == stats.summary()
    assert workers.decode(workers.encode(workers.RELOADED, error="r.txt:1: bad")) == {
        "kind": "reloaded", "error": "r.txt:1: bad"}
    for garbage in (b"", b"[1]", b'{"kind": "shell"}', b"\xff"):
        with pytest.raises(ValueError):
            workers.decode(garbage)


def _report(direction, status, up, down, open_connections):
    stats = Stats()
    stats.record(direction, status, up, down)
    stats.open_connections = open_connections
    return workers.decode(workers.encode(workers.STATS, **workers.stats_fields(stats)))


def test_pool_restarts_a_dead_worker_with_backoff_and_keeps_its_counters():
    pool = Pool.of(client_shares(10, 2))
    first, second = pool.slots
    pool.started(first, 101, now=0.0)
    pool.started(second, 102, now=0.0)
    assert not pool.all_ready()
    first.ready = second.ready = True
    assert pool.all_ready() and pool.by_pid(102) is second and pool.by_pid(None) is None
    first.stats = _report("direct", 200, 10, 20, open_connections=3)
    second.stats = _report("block", 403, 0, 5, open_connections=1)
    assert pool.total().summary() == (
        "requests direct 2xx=1, block 4xx=1; bytes up=10 down=25; open connections 4")

    assert pool.exited(first, now=1.0) == RESTART_DELAY_FIRST_SECONDS    # died young
    assert pool.running() == [second] and not pool.all_ready()
    assert pool.due(1.0) == [] and pool.next_restart() == pytest.approx(1.0 + RESTART_DELAY_FIRST_SECONDS)
    assert pool.due(1.0 + RESTART_DELAY_FIRST_SECONDS) == [first]
    # Its requests stay in the summary; its open connections died with it.
    assert pool.total().summary() == (
        "requests direct 2xx=1, block 4xx=1; bytes up=10 down=25; open connections 1")

    pool.started(first, 103, now=1.1)
    assert first.restart_at is None and pool.next_restart() == float("inf")
    assert pool.exited(first, now=1.2) == 2 * RESTART_DELAY_FIRST_SECONDS  # again: twice as long
    pool.started(first, 104, now=2.0)
    assert pool.exited(first, now=2.0 + HEALTHY_UPTIME_SECONDS) == 0.0    # it had been healthy

    assert pool.exited(second, now=5.0, restart=False) is None            # stopping: no restart
    assert second.restart_at is None and pool.running() == []


def test_pool_failed_start_is_retried_with_backoff():
    pool = Pool.of([1])
    slot = pool.slots[0]
    assert pool.failed_to_start(slot, now=0.0) == RESTART_DELAY_FIRST_SECONDS
    assert pool.failed_to_start(slot, now=0.1) == 2 * RESTART_DELAY_FIRST_SECONDS
    assert pool.due(0.29) == [] and pool.due(0.31) == [slot]
