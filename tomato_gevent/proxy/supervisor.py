"""--workers N as processes: a parent that supervises, workers that serve (workers.py decides).

    parent (never runs a gevent loop)                    worker i (forked)
    rules and auth loaded and checked, then for each i:  gevent.reinit(): a hub of its own
      listener i (SO_REUSEPORT) made, fork, closed here  serves listener i with share i of
    poll(): signals (the wakeup fd), worker messages       --max-clients (serve() of cli.py)
    SIGCHLD: log, restart with backoff (Pool)            tells the parent READY, RELOADED,
    SIGHUP: check the rule files, then SIGHUP each         STATS on its channel; the channel's
      (a bad file: SIGUSR2 each, users and access log)
    SIGUSR1: SIGUSR1 each, one summary of their STATS      EOF (parent gone) stops it
    SIGTERM / SIGINT: SIGTERM each, wait, one summary
    READY=1 to systemd once every worker said READY

Why the parent runs no gevent loop: a fork from inside a running hub copies its greenlets and
watchers into the child. The parent polls with the unpatched select.poll and forks with the
unpatched os.fork, and the child calls gevent.reinit() first, so its hub starts empty.
Why the parent makes the listening sockets: a port that cannot be bound is one ConfigError
line before any fork, as with one worker; the parent closes its copy at once, so a dead
worker's socket leaves the SO_REUSEPORT group with it (new connections hash to the living
workers instead of queueing for a dead one).
"""
import gc
import logging
import os
import signal
import time

import gevent
from gevent import monkey
from gevent import socket as gsocket

from ..errors import ConfigError, TomatoError
from ..netutil import format_address
from ..sdnotify import notify
from .workers import READY, RELOADED, STATS, Pool, decode, describe_exit, encode, stats_fields

log = logging.getLogger(__name__)

# The unpatched originals: the parent must not enter gevent's hub (see above).
_fork = monkey.get_original("os", "fork")
_waitpid = monkey.get_original("os", "waitpid")
_poll = monkey.get_original("select", "poll")
_signal = monkey.get_original("signal", "signal")
_socketpair = monkey.get_original("socket", "socketpair")
_POLLIN = monkey.get_original("select", "POLLIN")
# For the parent's make_listener: gevent's getaddrinfo would start a threadpool and run the hub.
blocking_getaddrinfo = monkey.get_original("socket", "getaddrinfo")

# -- implementation constants ----------------------------------------------------
SUMMARY_WAIT_SECONDS = 1.0          # SIGUSR1: how long the parent waits for the workers' counters
STOP_WAIT_SECONDS = 5.0             # SIGTERM: then SIGKILL (a worker drains for 2 s itself)
MESSAGE_BYTES = 65536
_PARENT_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


def reuse_port_error():
    """Why SO_REUSEPORT cannot be used here (a line for the log), or None."""
    option = getattr(gsocket, "SO_REUSEPORT", None)
    if option is None:
        return "this Python has no SO_REUSEPORT"
    probe = monkey.get_original("socket", "socket")(gsocket.AF_INET, gsocket.SOCK_STREAM)
    try:
        probe.setsockopt(gsocket.SOL_SOCKET, option, 1)
    except OSError as e:
        return "the kernel refuses it: %s" % (e.strerror or e)
    finally:
        probe.close()
    return None


class Supervisor:
    """The parent. open_listener() -> a listening socket with SO_REUSEPORT (ConfigError if
    it cannot be made); serve(listener, share, rules, host) runs in a worker until it is
    stopped (host: WorkerHost); check_rules() -> (rules, description), ConfigError if a file
    is bad; listening_line(bound) -> the log line once every worker listens."""

    def __init__(self, shares, rules, open_listener, serve, check_rules, listening_line):
        self.pool = Pool.of(shares)
        self.rules = rules
        self.open_listener = open_listener
        self.serve = serve
        self.check_rules = check_rules
        self.listening_line = listening_line
        self.bound = None
        self.channels = {}          # fd -> (slot, parent end of its channel)
        self.forked_with = {}       # slot number -> the rules it was forked with
        self.poller = _poll()
        self.wake_r = self.wake_w = None
        self.previous_handlers = {}
        self.announced = False
        self.reload_pending, self.reload_description = set(), None
        self.summary_pending, self.summary_deadline = set(), None
        self.stop_deadline = None

    def run(self):
        """Start every worker, supervise until SIGTERM/SIGINT; the exit status."""
        self._install_signals()
        # What the parent built so far (modules, the rules) stays shared with the workers
        # only while nobody writes to its pages: the collector would, by walking it in each
        # worker (the gc docs' advice for fork: gc.freeze()).
        gc.freeze()
        try:
            for slot in self.pool.slots:
                self._start(slot, initial=True)
            self._loop()
        finally:
            self._kill_remaining()
            self._restore_signals()
        log.info("summary: %s", self.pool.total().summary())
        log.info("stopped")
        return 0

    # -- signals -----------------------------------------------------------------------
    def _install_signals(self):
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.poller.register(self.wake_r, _POLLIN)
        for number in _PARENT_SIGNALS:
            self.previous_handlers[number] = _signal(number, _noted)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _restore_signals(self):
        signal.set_wakeup_fd(-1)
        for number, handler in self.previous_handlers.items():
            _signal(number, handler if handler is not None else signal.SIG_DFL)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)

    def _on_signals(self):
        try:
            numbers = set(os.read(self.wake_r, 256))
        except BlockingIOError:
            return
        # A stop first, whatever the order in the pipe: when SIGINT reaches the whole process
        # group (Ctrl-C), the workers' exits (SIGCHLD) can be written there before the parent's
        # own SIGINT (seen here: [17, 2]), and they must not be taken for crashes.
        if numbers & {signal.SIGTERM, signal.SIGINT}:
            self._begin_stop()
        if signal.SIGCHLD in numbers:
            self._reap()
        if self.stop_deadline is not None:
            return
        if signal.SIGHUP in numbers:
            self._reload()
        if signal.SIGUSR1 in numbers:
            self._request_summary()

    # -- the loop ----------------------------------------------------------------------
    def _loop(self):
        while True:
            now = time.monotonic()
            if self.stop_deadline is not None and (not self.pool.running() or now >= self.stop_deadline):
                return
            if self.summary_deadline is not None and now >= self.summary_deadline:
                self._log_summary()
            for slot in self.pool.due(now):
                self._start(slot)
            wake_at = min(self.pool.next_restart(), self.summary_deadline or float("inf"),
                          self.stop_deadline or float("inf"))
            timeout = None if wake_at == float("inf") else max(0, int((wake_at - now) * 1000) + 1)
            for fd, _ in self.poller.poll(timeout):
                if fd == self.wake_r:
                    self._on_signals()
                elif fd in self.channels:
                    self._on_channel(fd)

    def _start(self, slot, initial=False):
        now = time.monotonic()
        try:
            listener = self.open_listener()
        except (ConfigError, OSError) as e:
            if initial:
                raise
            delay = self.pool.failed_to_start(slot, now)
            log.error("worker %d: %s; trying again in %.1fs", slot.number, e, delay)
            return
        if self.bound is None:
            self.bound = listener.getsockname()
        parent_end, child_end = _socketpair(gsocket.AF_UNIX, gsocket.SOCK_SEQPACKET)
        try:
            pid = _fork()
        except OSError as e:
            for sock in (listener, parent_end, child_end):
                sock.close()
            if initial:
                raise ConfigError("cannot start worker %d: %s" % (slot.number, e.strerror or e)) from None
            log.error("worker %d: cannot fork: %s; trying again in %.1fs", slot.number, e.strerror or e,
                      self.pool.failed_to_start(slot, now))
            return
        if pid == 0:                                # the worker; it never returns from here
            status = 1
            try:
                status = self._worker(slot, listener, parent_end, child_end)
            finally:
                logging.shutdown()
                os._exit(status)
        child_end.close()
        listener.close()
        parent_end.setblocking(False)
        self.channels[parent_end.fileno()] = (slot, parent_end)
        self.poller.register(parent_end.fileno(), _POLLIN)
        self.pool.started(slot, pid, now)
        self.forked_with[slot.number] = self.rules  # (see _on_message: READY)
        log.debug("worker %d started (pid %d)", slot.number, pid)

    def _worker(self, slot, listener, parent_end, child_end):
        """In the forked child: drop the parent's parts, a fresh hub, serve; the exit status."""
        signal.set_wakeup_fd(-1)
        for number in _PARENT_SIGNALS:
            # Until its own handlers are in place a reload or summary request is no reason to die.
            _signal(number, signal.SIG_IGN if number in (signal.SIGHUP, signal.SIGUSR1) else signal.SIG_DFL)
        _signal(signal.SIGUSR2, signal.SIG_IGN)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        parent_end.close()
        for _, sock in self.channels.values():
            sock.close()
        gevent.reinit()
        channel = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_SEQPACKET, fileno=child_end.detach())
        try:
            self.serve(listener, slot.share, self.rules, WorkerHost(channel))
            return 0
        except TomatoError as e:
            log.error("worker %d: %s", slot.number, e)
            return e.exit_status
        except Exception:
            log.exception("worker %d failed", slot.number)
            return 1

    # -- worker messages ---------------------------------------------------------------
    def _on_channel(self, fd):
        slot, sock = self.channels[fd]
        try:
            data = sock.recv(MESSAGE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:                                # it is exiting: SIGCHLD follows
            self._close_channel(fd)
            return
        self._on_message(slot, data)

    def _close_channel(self, fd):
        _, sock = self.channels.pop(fd)
        self.poller.unregister(fd)
        sock.close()

    def _drain(self, slot):
        """Read what a worker that has exited still had to say, close its channel."""
        for fd, (owner, sock) in list(self.channels.items()):
            if owner is not slot:
                continue
            while True:
                try:
                    data = sock.recv(MESSAGE_BYTES)
                except OSError:
                    break
                if not data:
                    break
                self._on_message(slot, data)
            self._close_channel(fd)

    def _on_message(self, slot, data):
        try:
            message = decode(data)
        except ValueError as e:
            log.warning("worker %d: %s", slot.number, e)
            return
        kind = message["kind"]
        if kind == READY:
            slot.ready = True
            if self.forked_with[slot.number] is not self.rules:     # forked before a reload: catch up
                self.reload_pending.add(slot.pid)
                _kill(slot.pid, signal.SIGHUP)
            if self.announced:
                log.info("worker %d listening again (pid %d)", slot.number, slot.pid)
            elif self.pool.all_ready():
                self.announced = True
                log.info("%s", self.listening_line(self.bound))
                notify("READY=1", "STATUS=listening on %s" % format_address(self.bound))
        elif kind == RELOADED:
            if message.get("error"):
                log.error("worker %d: rule reload failed, keeping its old rules: %s", slot.number,
                          message["error"])
            else:
                self.forked_with[slot.number] = self.rules
            self._reload_done(slot.pid)
        elif kind == STATS:
            slot.stats = message
            if slot.pid in self.summary_pending:
                self.summary_pending.discard(slot.pid)
                if not self.summary_pending:
                    self._log_summary()

    # -- reload, summary ---------------------------------------------------------------
    def _reload(self):
        try:
            rules, description = self.check_rules()
        except ConfigError as e:
            log.error("rule reload failed, keeping the old rules: %s", e)
            # The rest of a reload still happens: logrotate's SIGHUP must reopen the access
            # log, and a revoked user must go, whatever state the rule file is in.
            for pid in self.pool.ready_pids():
                _kill(pid, signal.SIGUSR2)
            return
        self.rules = rules
        self.reload_description = description
        self.reload_pending = self.pool.ready_pids()
        for pid in list(self.reload_pending):
            _kill(pid, signal.SIGHUP)
        self._reload_done(None)

    def _reload_done(self, pid):
        self.reload_pending.discard(pid)
        if not self.reload_pending and self.reload_description is not None:
            log.info("rules reloaded: %s", self.reload_description)
            self.reload_description = None

    def _request_summary(self):
        self.summary_pending = self.pool.ready_pids()
        self.summary_deadline = time.monotonic() + SUMMARY_WAIT_SECONDS
        for pid in self.summary_pending:
            _kill(pid, signal.SIGUSR1)
        if not self.summary_pending:
            self._log_summary()

    def _log_summary(self):
        silent = sorted(slot.number for slot in self.pool.running() if slot.pid in self.summary_pending)
        log.info("summary: %s%s", self.pool.total().summary(),
                 " (workers %s did not answer)" % ", ".join(map(str, silent)) if silent else "")
        self.summary_pending, self.summary_deadline = set(), None

    # -- exits and stopping --------------------------------------------------------------
    def _reap(self):
        while True:
            try:
                pid, status = _waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.pool.by_pid(pid)
            if slot is None:
                continue
            self._drain(slot)
            self.summary_pending.discard(pid)
            self._reload_done(pid)
            stopping = self.stop_deadline is not None
            delay = self.pool.exited(slot, time.monotonic(), restart=not stopping)
            if stopping:
                log.debug("worker %d (pid %d) %s", slot.number, pid, describe_exit(status))
            else:
                log.warning("worker %d (pid %d) %s; starting it again in %.1fs", slot.number, pid,
                            describe_exit(status), delay)

    def _begin_stop(self):
        if self.stop_deadline is not None:
            return
        notify("STOPPING=1")
        self.stop_deadline = time.monotonic() + STOP_WAIT_SECONDS
        for slot in self.pool.slots:
            slot.restart_at = None
        for slot in self.pool.running():
            _kill(slot.pid, signal.SIGTERM)

    def _kill_remaining(self):
        """SIGKILL and reap whatever still runs (a worker stuck past STOP_WAIT_SECONDS, or an
        error in the parent itself)."""
        self.stop_deadline = self.stop_deadline or time.monotonic()
        for slot in self.pool.running():
            log.warning("worker %d (pid %d) did not stop: killing it", slot.number, slot.pid)
            _kill(slot.pid, signal.SIGKILL)
            try:
                _waitpid(slot.pid, 0)
            except ChildProcessError:
                pass
            self._drain(slot)
            self.pool.exited(slot, time.monotonic(), restart=False)
        for fd in list(self.channels):
            self._close_channel(fd)


class WorkerHost:
    """A worker's side of its channel: what cli.serve() reports, sent to the parent."""

    def __init__(self, channel):
        self.channel = channel

    def _send(self, kind, **fields):
        try:
            self.channel.send(encode(kind, **fields))
        except OSError:
            pass                                    # the parent is gone: _watch_parent stops us

    def ready(self, server):
        # After one turn of the loop: libev registers the listener with epoll on its next
        # iteration, and a timer fires after that (READY = this loop really watches it).
        gevent.spawn_later(0, self._send, READY)
        gevent.spawn(self._watch_parent, server)

    def _watch_parent(self, server):
        try:
            self.channel.recv(16)                   # the parent never writes: this is its end
        except OSError:
            pass
        if not server.closed:
            log.warning("the parent process is gone: worker process %d stopping", os.getpid())
            server.stop()

    def reloaded(self, rules):
        self._send(RELOADED)

    def reload_failed(self, error):
        self._send(RELOADED, error=str(error))

    def summary(self, stats):
        self._send(STATS, **stats_fields(stats))

    def stopped(self, stats):
        self._send(STATS, **stats_fields(stats))



def _noted(signum, frame):
    """The parent's signal handler: the wakeup fd already carries the number."""


def _kill(pid, number):
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
