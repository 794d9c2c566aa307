"""Real bin/proxy processes on loopback, for the tests of --workers (no root needed):

    Proxy(*args)                  bin/proxy with its log read line by line; stop() ends it
                                  and every worker it had
    children(pid)                 the worker pids of a parent
    listening_fds(pid, port)      fds of pid that are TCP sockets listening on port
    owner_of(port, client, pids)  which of pids holds the proxy's end of a client connection
    watched_fds(pid)              the fds pid's event loop (epoll) waits on

Who holds a socket comes from /proc: /proc/net/tcp{,6} give the socket's inode, the links in
/proc/PID/fd say which process has it open; /proc/PID/fdinfo of an eventpoll fd lists the
fds registered in it ("tfd: N").
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 15.0
TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"


class Proxy:
    def __init__(self, *args, env=None, new_session=False):
        """new_session: its own process group (os.killpg(proc.pid, ...) is then a Ctrl-C)."""
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bin" / "proxy"), *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=new_session,
                                     env=dict(os.environ, **(env or {})))
        self.lines = []
        self.known_workers = set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern, after=0):
        """The first log line from index `after` on that matches the regexp pattern."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("no line matching %r in:\n%s" % (pattern, "\n".join(self.lines)))

    def workers(self):
        pids = children(self.proc.pid)
        self.known_workers.update(pids)
        return pids

    def stop(self):
        self.workers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.known_workers:      # only if the parent failed to end them
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.reader.join(DEADLINE_SECONDS)


def children(pid):
    pids = []
    for task in Path("/proc/%d/task" % pid).glob("*"):
        try:
            pids.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
    return sorted(pids)


def _tcp_table():
    """[(local port, remote port, state, inode)] of every TCP socket in this namespace."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                rows.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                             fields[3], int(fields[9])))
    return rows


def _socket_fds(pid):
    """{inode: fd} of the sockets pid has open."""
    fds = {}
    for link in Path("/proc/%d/fd" % pid).iterdir():
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if target.startswith("socket:["):
            fds[int(target[8:-1])] = int(link.name)
    return fds


def listening_fds(pid, port):
    inodes = {inode for local, _, state, inode in _tcp_table() if local == port and state == TCP_LISTEN}
    return sorted(fd for inode, fd in _socket_fds(pid).items() if inode in inodes)


def owner_of(port, client, pids):
    """The pid among pids holding the proxy's end of the connection `client` (a socket), or None."""
    client_port = client.getsockname()[1]
    inodes = {inode for local, remote, state, inode in _tcp_table()
              if local == port and remote == client_port and state == TCP_ESTABLISHED}
    return next((pid for pid in pids if inodes & set(_socket_fds(pid))), None)


def watched_fds(pid):
    watched = set()
    for link in Path("/proc/%d/fd" % pid).iterdir():
        try:
            if os.readlink(link) != "anon_inode:[eventpoll]":
                continue
            info = Path("/proc/%d/fdinfo/%s" % (pid, link.name)).read_text()
        except OSError:
            continue
        watched.update(int(fd) for fd in re.findall(r"^tfd:\s*(\d+)", info, re.M))
    return watched
