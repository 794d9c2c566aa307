"""What the kernel says a process tree used: CPU time and proportional memory (/proc).

    process_tree(pid) -> [pid and its descendants]
    cpu_sample(pid), cpu_between(before, after) -> CPU seconds of the tree in between
    process_tree_pss_kib(pid) -> PSS of the tree, KiB

Used by bench/proxy_bench.py for the proxies, whose process trees differ: tomato --workers
N (a parent and N workers), proxy.py (acceptor and worker processes), tinyproxy (a thread
per connection), pproxy (one process).
"""
import re
import time
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


def process_cpu_seconds(pid):
    """CPU time of the whole process pid so far: the scheduler's nanosecond count
    (sum_exec_runtime, schedstat's first field) over all its threads, those that have
    ended included, read from its POSIX CPU-time clock (clock_getcpuclockid(3):
    CPUCLOCK_SCHED of the process). /proc/PID/task/*/schedstat would miss ended threads,
    and tinyproxy ends one per connection."""
    return time.clock_gettime(((~pid) << 3) | 2)


def cpu_sample(pid):
    """{pid: CPU seconds so far} for pid and its descendants."""
    sample = {}
    for current in process_tree(pid):
        try:
            sample[current] = process_cpu_seconds(current)
        except OSError:             # exited meanwhile
            pass
    return sample


def cpu_between(before, after):
    """CPU seconds a process tree spent between two cpu_samples (a process that ended in
    between is not counted; one that started counts from its start)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


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
