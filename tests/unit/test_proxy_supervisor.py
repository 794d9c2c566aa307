"""supervisor.py's parent without forking: what it does with each worker message, in order.

The worker pids are made up (os.kill is replaced), so nothing is started or signalled; the
notify datagrams go to a stand-in for systemd's socket, read without waiting.
"""
import logging
import signal
import socket

import pytest

from tomato_gevent.proxy import supervisor as supervisor_module
from tomato_gevent.proxy.stats import Stats
from tomato_gevent.proxy.supervisor import Supervisor
from tomato_gevent.proxy.workers import READY, RELOADED, STATS, encode, stats_fields

PIDS = (4001, 4002)


@pytest.fixture
def manager(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def datagrams(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


@pytest.fixture
def parent(monkeypatch):
    """A Supervisor whose two workers 'run' as PIDS; [(pid, signal)] it sent."""
    sent = []
    monkeypatch.setattr(supervisor_module.os, "kill", lambda pid, number: sent.append((pid, number)))
    rules = object()
    sup = Supervisor([5, 5], rules, open_listener=None, serve=None,
                     check_rules=lambda: ("new rules", "r.txt (2 rules)"),
                     listening_line=lambda bound: "listening on %s:%d" % bound)
    sup.bound = ("127.0.0.1", 1080)
    for slot, pid in zip(sup.pool.slots, PIDS):
        sup.pool.started(slot, pid, now=0.0)
        sup.forked_with[slot.number] = rules
    yield sup, sent
    sup.poller = None


def test_ready_is_announced_once_every_worker_said_ready(parent, manager, caplog):
    sup, _ = parent
    first, second = sup.pool.slots
    with caplog.at_level(logging.INFO):
        sup._on_message(first, encode(READY))
        assert datagrams(manager) == [] and "listening on" not in caplog.text
        sup._on_message(second, encode(READY))
        assert datagrams(manager) == [b"READY=1\nSTATUS=listening on 127.0.0.1:1080"]
        assert caplog.text.count("listening on 127.0.0.1:1080") == 1
        # A worker restarted later says READY again: a log line, no second READY=1.
        sup.pool.exited(first, now=1.0)
        sup.pool.started(first, 4003, now=1.1)
        sup._on_message(first, encode(READY))
    assert datagrams(manager) == []
    assert "worker 1 listening again (pid 4003)" in caplog.text


def test_reload_is_checked_first_then_logged_once_every_worker_confirmed(parent, caplog):
    sup, sent = parent
    first, second = sup.pool.slots
    for slot in sup.pool.slots:
        sup._on_message(slot, encode(READY))
    with caplog.at_level(logging.INFO):
        sup._reload()
        assert sorted(sent) == [(pid, signal.SIGHUP) for pid in PIDS] and sup.rules == "new rules"
        sup._on_message(first, encode(RELOADED))
        assert "rules reloaded" not in caplog.text
        sup._on_message(second, encode(RELOADED))
    assert caplog.text.count("rules reloaded: r.txt (2 rules)") == 1


def test_a_bad_rule_file_is_not_passed_on_but_the_users_and_log_are_reopened(parent, caplog):
    sup, sent = parent
    for slot in sup.pool.slots:
        sup._on_message(slot, encode(READY))

    def bad():
        from tomato_gevent.errors import ConfigError
        raise ConfigError("r.txt:1: unknown action")
    sup.check_rules = bad
    with caplog.at_level(logging.INFO):
        sup._reload()
    assert sorted(sent) == [(pid, signal.SIGUSR2) for pid in PIDS]      # not SIGHUP: no rules
    assert "rule reload failed, keeping the old rules: r.txt:1: unknown action" in caplog.text


def test_a_worker_forked_before_a_reload_catches_up_when_ready(parent, caplog):
    sup, sent = parent
    first, second = sup.pool.slots
    sup._on_message(first, encode(READY))
    with caplog.at_level(logging.INFO):
        sup._reload()                       # second is not ready yet: no signal for it
        assert sent == [(PIDS[0], signal.SIGHUP)]
        sup._on_message(second, encode(READY))
        assert sent[-1] == (PIDS[1], signal.SIGHUP)     # it was forked with the old rules
        sup._on_message(first, encode(RELOADED))
        assert "rules reloaded" not in caplog.text      # the line waits for it too
        sup._on_message(second, encode(RELOADED))
    assert "rules reloaded" in caplog.text


def test_one_summary_over_every_worker(parent, caplog):
    sup, sent = parent
    for slot in sup.pool.slots:
        sup._on_message(slot, encode(READY))
    with caplog.at_level(logging.INFO):
        sup._request_summary()
        assert sorted(sent) == [(pid, signal.SIGUSR1) for pid in PIDS]
        for slot, status in zip(sup.pool.slots, (200, 403)):
            stats = Stats()
            stats.record("direct" if status == 200 else "block", status, 10, 100)
            assert "summary:" not in caplog.text
            sup._on_message(slot, encode(STATS, **stats_fields(stats)))
    (line,) = [r.getMessage() for r in caplog.records if "summary:" in r.getMessage()]
    assert line == "summary: requests direct 2xx=1, block 4xx=1; bytes up=20 down=200; open connections 0"


def test_reuse_port_probe_names_what_is_missing(monkeypatch):
    assert supervisor_module.reuse_port_error() is None            # Linux >= 3.9 has it
    monkeypatch.delattr(supervisor_module.gsocket, "SO_REUSEPORT")
    assert supervisor_module.reuse_port_error() == "this Python has no SO_REUSEPORT"
