"""What the kernel says a process tree used: CPU time and proportional memory (/proc).

    process_tree(pid) -> [pid and its descendants]
    cpu_sample(pid), cpu_between(before, after) -> CPU seconds of the tree in between
    process_tree_pss_kib(pid) -> PSS of the tree, KiB

Used by bench/proxy_bench.py for the proxies, whose process trees differ: tomato --workers
N (a parent and N workers), proxy.py (acceptor and worker processes), tinyproxy (a thread
per connection), pproxy (one process).
"""
import os
import re
from pathlib import Path


def process_tree(pid):
    """pid and all its descendants (workers, acceptors) that exist now."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in pids:
            continue
        pids.append(current)
        for task in Path("/proc/%d/task" % current).glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return pids


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_sample(pid):
    """{pid: (thread ids, schedstat ns of those threads, utime+stime s)} for pid's tree.

    The scheduler's nanosecond counters (/proc/PID/task/*/schedstat, as the VPN bench)
    exist only for live threads; utime+stime of /proc/PID/stat (clock ticks) keep the time
    of threads that ended too. cpu_between uses the first where the threads stayed the
    same, the second where they came and went (tinyproxy: a thread per connection).
    """
    sample = {}
    for current in process_tree(pid):
        tids, ns = [], 0
        try:
            for task in Path("/proc/%d/task" % current).iterdir():
                try:
                    ns += int((task / "schedstat").read_text().split()[0])
                    tids.append(int(task.name))
                except (OSError, ValueError, IndexError):
                    pass
            fields = Path("/proc/%d/stat" % current).read_text().rsplit(")", 1)[1].split()
        except OSError:             # exited meanwhile
            continue
        sample[current] = (frozenset(tids), ns, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return sample


def cpu_between(before, after):
    """CPU seconds spent between two cpu_samples of one tree (processes that ended between
    them are not counted; one that started counts from its start)."""
    total = 0.0
    for pid, (tids, ns, ticks) in after.items():
        old = before.get(pid)
        if old is None:
            total += ticks
        elif tids == old[0]:
            total += (ns - old[1]) / 1e9
        else:
            total += ticks - old[2]
    return total


def process_tree_pss_kib(pid):
    """Proportional set size of pid and its descendants, KiB: pages shared between them
    (a parent's and its forked workers') are counted once in all."""
    total = 0
    for current in process_tree(pid):
        try:
            match = re.search(r"^Pss:\s+(\d+) kB", Path("/proc/%d/smaps_rollup" % current).read_text(), re.M)
        except OSError:
            continue
        if match:
            total += int(match.group(1))
    return total
