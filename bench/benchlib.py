"""Shared pieces of `make bench`: the namespace lab, figures, best-of-N rounds.

A *figure* is one row of bench/RESULTS.md: tomato's value next to a reference
measured in the same run, and their ratio (tomato / reference). A value that
could not be measured is None with a reason ("n/a: bin/vpn exited ...").
Every round's raw value is kept, and the row shows the best round, because
on this shared 2-core machine noise only ever makes a run slower.

Namespaces and processes come from tests/netns/nsutil.py's Lab (unique names,
removed on close, whatever happened); BenchLab adds removal of its temp dir
and a log tail for error messages.
"""
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.netns.nsutil import Lab, tool_argv, wait_for  # noqa: E402  (needs REPO on sys.path)

__all__ = ["REPO", "BenchLab", "Figure", "Unavailable", "best", "tool_argv", "wait_for", "log_tail",
           "log", "run_json"]

HIGHER, LOWER = "higher", "lower"


class Unavailable(Exception):
    """A system under test could not be set up or measured; the message is the reason shown as n/a."""


@dataclass
class Figure:
    section: str
    name: str
    unit: str
    better: str = HIGHER            # HIGHER or LOWER is better
    tomato: float = None
    reference: float = None
    reference_name: str = ""
    tomato_rounds: list = field(default_factory=list)
    reference_rounds: list = field(default_factory=list)
    note: str = ""
    tomato_na: str = ""             # reason when tomato is None
    reference_na: str = ""          # reason when reference is None
    target: float = None            # the ratio an issue asks for: at least it (HIGHER), at most it (LOWER)

    @property
    def target_met(self):
        """True/False once there is a ratio to hold against the target, else None."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target if self.better == HIGHER else self.ratio <= self.target

    @property
    def ratio(self):
        if self.tomato is None or self.reference in (None, 0):
            return None
        return self.tomato / self.reference

    def to_json(self):
        data = asdict(self)
        data["ratio"] = self.ratio
        data["target_met"] = self.target_met
        return data


def best(values, better=HIGHER):
    """Best of the rounds that produced a number (None when none did)."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    return max(numbers) if better == HIGHER else min(numbers)


def log(fmt, *args):
    """Progress line on stderr, with a timestamp, so a 10-minute run shows where it is."""
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), fmt % args if args else fmt),
          file=sys.stderr, flush=True)


def log_tail(proc, lines=1):
    """Last lines a spawned process printed, on one line, for an n/a reason."""
    try:
        text = proc.output().strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run_json(argv, timeout):
    """Run argv, parse the last JSON object it printed on stdout."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Unavailable("%s exited with status %d: %s" % (Path(argv[1]).name, done.returncode, tail[0]))
    text = done.stdout.strip()
    # The whole output is one JSON object, or its last line is.
    for candidate in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    raise Unavailable("%s printed no JSON object" % Path(argv[1]).name)


def run_rounds(lab, systems, rounds, measure):
    """{system: [value or None per round]}, alternating the order round by round; last error per system.

    lab has check_alive(system) and up {system: True or why not}; a failed measurement is a
    None round and its reason is kept for the table's n/a.
    """
    values = {s: [] for s in systems}
    errors = {}
    for i in range(rounds):
        for system in (systems if i % 2 == 0 else list(reversed(systems))):
            if not lab.check_alive(system):
                continue
            try:
                values[system].append(measure(system))
            except (Unavailable, subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
                values[system].append(None)
                errors[system] = str(exc)
                log("  %s: %s", system, exc)
    return values, errors


def na_reason(lab, errors, system):
    """Why a system has no figure: it never came up, or its last measurement failed ("" if neither)."""
    up = lab.up.get(system)
    if up is not True:
        return up or "n/a: not started"
    return "n/a: %s" % errors[system] if system in errors else ""


class BenchLab(Lab):
    """tests/netns Lab plus: temp dir removed on close, process RSS, simple waits."""

    def close(self):
        try:
            super().close()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def ns_ok(self, ns, argv, timeout=60):
        """Run argv in ns; raise Unavailable with its stderr tail if it fails."""
        done = self.run(ns, argv, timeout=timeout)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Unavailable("%s failed (status %d): %s" % (argv[0], done.returncode, tail[0]))
        return done

    def wait_alive(self, proc, predicate, timeout, what):
        """wait_for(predicate), but give up at once (Unavailable) if proc has exited."""
        def check():
            if proc.poll() is not None:
                raise Unavailable("%s exited with status %s: %s" % (what, proc.returncode, log_tail(proc)))
            return predicate()
        try:
            return wait_for(check, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:
            raise Unavailable("%s: %s; log: %s" % (what, exc, log_tail(proc))) from None

    def pings(self, ns, addr):
        """One ping that answers within a second."""
        return self.run(ns, ["ping", "-c", "1", "-W", "1", addr], timeout=5).returncode == 0


def process_tree_rss_kib(pid):
    """VmRSS of pid plus all its descendants (tinyproxy may fork), in KiB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            status = Path("/proc/%d/status" % current).read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if match:
            total += int(match.group(1))
        for task in Path("/proc/%d/task" % current).glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return total


def profiled_vpn_pair(lab, tree, sides, out_dir, tag, port, extra=(), env=None, timeout=30):
    """Two namespaces of lab joined by a veth (10.9.0.1/24, 10.9.0.2/24), a tun0 in each
    (10.0.1.1/30, 10.0.1.2/30), and tree's bin/vpn on both under cProfile, dialling each other on
    port, up ("tunnel " logged). sides: the names of the first and the second namespace's
    process. Returns (first namespace, second namespace, {side: process}, {side: profile path})."""
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    procs, profiles = {}, {}
    for side, ns, lp, pp, peer in ((sides[0], a, "pwd1", "pwd2", "10.9.0.2"),
                                   (sides[1], b, "pwd2", "pwd1", "10.9.0.1")):
        profiles[side] = out_dir / ("%s-%s.prof" % (tag, side))
        argv = [sys.executable, "-m", "cProfile", "-o", profiles[side], Path(tree) / "bin" / "vpn",
                "-la", ":%d" % port, "-lp", lp, "-pa", "%s:%d" % (peer, port), "-pp", pp, *extra]
        procs[side] = lab.spawn(ns, argv, env=env)
    for proc in procs.values():
        lab.wait_log(proc, "tunnel ", timeout=timeout)
    return a, b, procs, profiles
