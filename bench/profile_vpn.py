#!/usr/bin/env python3
"""Where each packet's time goes in bin/vpn while iperf3 pushes TCP through the tunnel.

    .venv/bin/pip install py-spy          # once; not a project dependency
    .venv/bin/python bench/profile_vpn.py [--seconds 8] [--native] [--perf]

Sets up the same two namespaces and the seed's tunnel as bench/vpn_bench.py,
runs iperf3 B -> A, and meanwhile samples both bin/vpn processes:
  * py-spy (Python frames; --native adds C frames) -> top self and inclusive
    functions, as a share of wall time (idle time in the hub included);
  * with --perf, `perf record` (kernel + user symbols, self time) and
    `perf trace -s` (syscall counts and times);
  * CPU time per full-size data packet (data bytes through the tun / MTU).
B's process is the sender (tun -> seal -> UDP), A's the receiver (UDP -> open -> tun).
Full outputs go to bench/out/profile/; a summary is printed.
"""
import argparse
import collections
import json
import linecache
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import REPO, BenchLab, log  # noqa: E402
from vpn_bench import (IPERF_PORT, OPENVPN, TARGET, TOMATO, TUN_DEVICE, TUN_MTU,  # noqa: E402
                       VpnLab, cpu_seconds)

OUT = REPO / "bench" / "out" / "profile"


SITE_PACKAGES = [Path(p) for p in sys.path if p.endswith("site-packages")]


def summarize_collapsed(path, top=15):
    """Top self and inclusive frames of a py-spy raw (collapsed) profile, as % of samples.

    Only the main thread counts (gevent's idle threadpool worker would be noise);
    --idle samples are included, so the shares are of wall time and the hub's
    share is mostly waiting in epoll.
    """
    self_counts, incl_counts, total, other = collections.Counter(), collections.Counter(), 0, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        count = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or "threadpool.py" in frames[0] or "threading.py" in frames[0]:
            other += count
            continue
        total += count
        self_counts[_describe(frames[-1])] += count
        for frame in set(_describe(f, with_source=False) for f in frames):
            incl_counts[frame] += count
    lines = ["%d samples of the main thread (%d of other threads left out)" % (total, other), "  self %:"]
    lines += ["    %5.1f  %s" % (100.0 * c / total, f) for f, c in self_counts.most_common(top)]
    lines += ["  inclusive % (by function):"]
    lines += ["    %5.1f  %s" % (100.0 * c / total, f) for f, c in incl_counts.most_common(top)]
    return "\n".join(lines)


def _describe(frame, with_source=True):
    """"func (pkg/file.py:123)" -> "func (file.py:123)  `source line`" (or just "func" when not with_source)."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    if not with_source or not where:
        return "%s (%s)" % (name, where.rsplit("/", 1)[-1].split(":")[0]) if where else name
    filename, _, lineno = where.rpartition(":")
    source = ""
    for root in [REPO] + SITE_PACKAGES:
        candidate = root / filename
        if candidate.is_file() and lineno.isdigit():
            source = linecache.getline(str(candidate), int(lineno)).strip()
            break
    return "%s (%s)%s" % (name, where.rsplit("/", 1)[-1], "  `%s`" % source[:70] if source else "")


def _cpu_and_data_bytes(lab, vpn, system, procs):
    """[(CPU seconds, data bytes through the tun)] for A and B; bytes, unlike packet counters,
    mean the same with and without GSO super-packets."""
    result = []
    for ns, proc in zip((vpn.a, vpn.b), procs):
        stats = json.loads(lab.run(ns, ["ip", "-j", "-s", "link", "show", "dev", TUN_DEVICE[system]]).stdout)
        stats = stats[0]["stats64"]
        result.append((cpu_seconds(proc.pid), max(stats["rx"]["bytes"], stats["tx"]["bytes"])))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="sampling window (default 8)")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames; pauses the process)")
    parser.add_argument("--perf", action="store_true", help="also perf record and perf trace -s")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--system", choices=("tomato", "openvpn"), default="tomato",
                        help="openvpn: the same CPU-per-packet and perf figures for the reference (no py-spy)")
    args = parser.parse_args(argv)
    system = TOMATO if args.system == "tomato" else OPENVPN
    if system == OPENVPN:
        args.perf = True
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if system == TOMATO and not py_spy:
        print("py-spy not found: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    lab = BenchLab()
    try:
        vpn = VpnLab(lab)
        up = vpn.start_tomato() if system == TOMATO else vpn.start_openvpn()
        if up is not True:
            print("%s did not come up: %s" % (system, up), file=sys.stderr)
            return 1
        procs = vpn.tomato_procs if system == TOMATO else vpn.openvpn_procs
        tun = TUN_DEVICE[system]
        roles = {"receiver (A: udp->%s)" % tun: procs[0], "sender (B: %s->udp)" % tun: procs[1]}
        server = lab.spawn(vpn.a, ["iperf3", "-s", "-1", "-p", IPERF_PORT])
        lab.wait_tcp_listening(vpn.a, IPERF_PORT)
        total = args.seconds + 10
        client = lab.spawn(vpn.b, ["iperf3", "-c", TARGET[system], "-p", IPERF_PORT, "-t", total, "-f", "m"])
        time.sleep(1.5)
        before = _cpu_and_data_bytes(lab, vpn, system, procs)
        samplers = []
        for role, proc in roles.items():
            tag = role.split()[0]
            if system == TOMATO:
                out = OUT / ("py-spy-%s.txt" % tag)
                argv = [py_spy, "record", "-p", str(proc.pid), "-d", str(args.seconds), "-r", str(args.rate),
                        "-f", "raw", "-o", str(out), "--idle"]
                argv += ["--native"] if args.native else ["--nonblocking"]
                samplers.append((role, out, subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                             stderr=subprocess.PIPE, text=True)))
            if args.perf:
                data = OUT / ("perf-%s-%s.data" % (args.system, tag))
                samplers.append((role, data, subprocess.Popen(
                    ["perf", "record", "-q", "-o", str(data), "-p", str(proc.pid),
                     "--", "sleep", str(args.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    text=True)))
        for _, _, sampler in samplers:
            sampler.wait(args.seconds + 30)
        after = _cpu_and_data_bytes(lab, vpn, system, procs)
        if args.perf:
            # Syscall counts need a separate window: perf trace's own overhead would distort the samples.
            traces = [(role, subprocess.Popen(["perf", "trace", "-s", "-p", str(proc.pid), "--", "sleep", "2"],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                      for role, proc in roles.items()]
            trace_out = {role: t.communicate(timeout=30)[0] for role, t in traces}
        client.wait(total + 30)
        lab.stop(server)
        log("iperf3: %s", " / ".join(line.strip() for line in client.output().splitlines()
                                     if "sender" in line or "receiver" in line))
        for (role, proc), (cpu0, pk0), (cpu1, pk1) in zip(roles.items(), before, after):
            packets = (pk1 - pk0) / TUN_MTU
            print("== %s %s: %.1f us CPU per full-size data packet (%.0f MB through its tun, %.2f s CPU in %d s)"
                  % (system, role, (cpu1 - cpu0) * 1e6 / max(1, packets), (pk1 - pk0) / 1e6, cpu1 - cpu0,
                     args.seconds))
        for role, out, sampler in samplers:
            if sampler.returncode != 0:
                print("== %s: %s failed: %s" % (role, out.name, sampler.stderr.read().strip()[-300:]))
                continue
            if out.suffix == ".txt":
                print("== %s, py-spy%s" % (role, " --native" if args.native else ""))
                print(summarize_collapsed(out))
            else:
                for sort, limit in (("dso", "1"), ("sym", "0.8")):
                    report = subprocess.run(["perf", "report", "-i", str(out), "--no-children", "--stdio",
                                             "--sort", sort, "--percent-limit", limit],
                                            capture_output=True, text=True).stdout
                    (OUT / ("%s-by-%s.txt" % (out.stem, sort))).write_text(report)
                    print("== %s %s, perf: CPU self time by %s (>= %s %%)" % (system, role, sort, limit))
                    print("\n".join(line for line in report.splitlines()
                                    if line.strip() and not line.startswith("#")))
        if args.perf:
            for role, text in trace_out.items():
                (OUT / ("perf-trace-%s-%s.txt" % (args.system, role.split()[0]))).write_text(text)
                print("== %s, syscalls in 2 s (perf trace -s)" % role)
                print("\n".join(line for line in text.splitlines() if line.strip())[:3000])
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
