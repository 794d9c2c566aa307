"""Helpers for end-to-end tests in Linux network namespaces.

A Lab creates uniquely named namespaces, veth links and processes, and removes
all of them on close(), whatever happened in the test. Use it through the
`lab` fixture (tests/netns/conftest.py):

    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    vpn = lab.spawn(a, lab.tool("vpn", "-la", ":5000", ...))
    lab.run(b, ["ping", "-c", "1", "10.9.0.1"])

Processes run via `ip netns exec`, which execs in place: Popen.pid is the
tool's own pid, and its exit status is real. Processes are killed by pid.
"""
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
PROGRAMS = Path(__file__).with_name("programs")
_counter = itertools.count()


def tool_argv(name, *args):
    """argv that runs the real bin/<name> script with this interpreter (the venv's)."""
    return [sys.executable, str(BIN / name), *map(str, args)]


def program(name, *args):
    """argv that runs the helper program tests/netns/programs/<name> with this interpreter."""
    return [sys.executable, str(PROGRAMS / name), *map(str, args)]


class Lab:
    def __init__(self):
        self.namespaces = []
        self.procs = []
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tomato-lab-"))
        self._logs = []
        self._etc_dirs = []         # /etc/netns/NS of hosts()

    # -- namespaces and links ------------------------------------------------
    def netns(self, ipv6=False):
        name = "tmt%dx%d" % (os.getpid(), next(_counter))
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.sh(name, "ip link set lo up")
        if not ipv6:
            self.sh(name, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        return name

    def veth(self, ns_a, addr_a, ns_b, addr_b, name_a="veth0", name_b="veth0"):
        """Join two namespaces with a veth pair; addresses in CIDR form (or None)."""
        tmp_a, tmp_b = "tva%d" % next(_counter), "tvb%d" % next(_counter)
        subprocess.run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b], check=True)
        for tmp, ns, name, addr in ((tmp_a, ns_a, name_a, addr_a), (tmp_b, ns_b, name_b, addr_b)):
            subprocess.run(["ip", "link", "set", tmp, "netns", ns], check=True)
            self.sh(ns, "ip link set %s name %s" % (tmp, name))
            if addr:
                self.sh(ns, "ip addr add %s dev %s" % (addr, name))
            self.sh(ns, "ip link set %s up" % name)

    def tun(self, ns, name, addr, mtu=1400):
        """Pre-create a tun device as the seed's README does."""
        self.sh(ns, "ip tuntap add dev %s mode tun" % name)
        self.sh(ns, "ip link set %s up" % name)
        self.sh(ns, "ip link set %s mtu %d" % (name, mtu))
        if addr:
            self.sh(ns, "ip addr add %s dev %s" % (addr, name))

    def hosts(self, ns, text):
        """/etc/hosts (and a resolv.conf that fails at once) as seen by processes started in ns.

        `ip netns exec` bind-mounts /etc/netns/NS/* over /etc: the file is rewritten in place,
        so processes already running in ns see the new content too."""
        directory = Path("/etc/netns") / ns
        if directory not in self._etc_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._etc_dirs.append(directory)
            (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        with open(directory / "hosts", "w") as f:
            f.write(text)

    # -- commands --------------------------------------------------------------
    def sh(self, ns, command, check=True, **kw):
        return self.run(ns, ["sh", "-c", command], check=check, **kw)

    def run(self, ns, argv, check=False, timeout=60, **kw):
        """Run to completion inside ns; returns CompletedProcess with text output."""
        prefix = ["ip", "netns", "exec", ns] if ns else []
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(prefix + list(map(str, argv)), check=check, timeout=timeout, **kw)

    tool = staticmethod(tool_argv)

    def spawn(self, ns, argv, env=None, **kw):
        """Start a long-running process inside ns; stdout+stderr go to a log file.

        The returned Popen has .log_path and .output() to read what it printed.
        """
        prefix = ["ip", "netns", "exec", ns] if ns else []
        log_path = self.tmpdir / ("proc%d.log" % next(_counter))
        log_file = open(log_path, "w+b")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.Popen(prefix + list(map(str, argv)), stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=full_env, **kw)
        proc.log_path = log_path
        proc.output = lambda: log_path.read_text(errors="replace")
        self.procs.append(proc)
        self._logs.append(log_file)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=5):
        """Signal proc and wait; returns its exit status (kills it after timeout)."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def wait_log(self, proc, text, timeout=10):
        """Wait until proc's output contains text; fails early if proc died."""
        def seen():
            if text in proc.output():
                return True
            if proc.poll() is not None:
                raise AssertionError("process exited (%s) before printing %r:\n%s"
                                     % (proc.returncode, text, proc.output()))
            return False
        return wait_for(seen, timeout=timeout, what=repr(text))

    def wait_udp_bound(self, ns, port, timeout=10):
        def bound():
            out = self.run(ns, ["ss", "-Hlun", "sport = :%d" % port]).stdout
            return out.strip() != ""
        return wait_for(bound, timeout=timeout, what="UDP port %d in %s" % (port, ns))

    def wait_tcp_listening(self, ns, port, timeout=10):
        def listening():
            out = self.run(ns, ["ss", "-Hltn", "sport = :%d" % port]).stdout
            return out.strip() != ""
        return wait_for(listening, timeout=timeout, what="TCP port %d in %s" % (port, ns))

    # -- cleanup ---------------------------------------------------------------
    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in self._logs:
            f.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        for name in reversed(self.namespaces):
            # Anything still running inside (e.g. a child a tool spawned) dies with it.
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()
        for directory in self._etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._etc_dirs.clear()

