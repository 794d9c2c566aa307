#!/usr/bin/env python3
"""Python calls per ping through the tunnel, each side (cProfile): what load does not move.

    .venv/bin/python bench/ping_counts.py [--pings N] [--top N] TREE [TREE ...] [-- extra bin/vpn args]

Per TREE (a checkout with bin/vpn), two runs of the same length (SECONDS): one with FEW pings
at 0.2 s, one with FEW + N; both bin/vpn processes run under cProfile, and the difference of
their call counts divided by N is what one ping costs each side (the idle hub's timers cancel
out). A is the answering side, B the pinging side. Extra arguments after `--` go to both
processes (e.g. `-- --keep-warm 0` leaves out the rhythm windows' warm-ups and counts the
path a ping takes). Needs root.
"""
import argparse
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import log, profiled_vpn_pair  # noqa: E402
from tests.netns.nsutil import Lab  # noqa: E402

PORT = 5077
FEW = 5
INTERVAL = 0.2


def run_once(tree, pings, seconds, out_dir, tag, extra):
    lab = Lab()
    try:
        a, b, procs, profiles = profiled_vpn_pair(lab, tree, ("A", "B"), out_dir, tag, PORT, extra)
        start = time.monotonic()
        done = lab.run(b, ["ping", "-n", "-c", pings, "-i", INTERVAL, "10.0.1.1"], timeout=seconds + 10)
        replies = done.stdout.count("time=")
        if replies != pings:
            raise SystemExit("%s: %d of %d pings answered" % (tag, replies, pings))
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))
        for proc in procs.values():
            if lab.stop(proc, timeout=20) != 0:
                raise SystemExit("%s: bin/vpn exited %s" % (tag, proc.returncode))
        return {side: pstats.Stats(str(path)) for side, path in profiles.items()}
    finally:
        lab.close()


def main():
    parser = argparse.ArgumentParser(prog="bench/ping_counts.py")
    parser.add_argument("--pings", type=int, default=25)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("trees", nargs="+")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    seconds = (FEW + args.pings) * INTERVAL + 1.5
    out_dir = Path("/tmp/ping_counts")
    out_dir.mkdir(exist_ok=True)
    for i, tree in enumerate(args.trees):
        few = run_once(tree, FEW, seconds, out_dir, "t%d-few" % i, extra)
        many = run_once(tree, FEW + args.pings, seconds, out_dir, "t%d-many" % i, extra)
        for side in ("B", "A"):
            # (cProfile files some C calls it cannot name under one shared label, '__new__'
            # here, hundreds per ping and varying: left out.)
            counts = [{k: v[1] for k, v in run[side].stats.items()
                       if not k[2].startswith("<built-in method __new__ of type")} for run in (few, many)]
            calls = [sum(c.values()) for c in counts]
            py = [sum(n for k, n in c.items() if k[0] != "~") for c in counts]
            log("%-40s %s: %.1f calls per ping (%.1f of Python functions)", tree, side,
                (calls[1] - calls[0]) / args.pings, (py[1] - py[0]) / args.pings)
            if args.top:
                base = {k: v[1] for k, v in few[side].stats.items()}
                rows = sorted(((v[1] - base.get(k, 0), k) for k, v in many[side].stats.items()), reverse=True)
                for calls, k in rows[:args.top]:
                    log("    %6.2f  %s:%d(%s)", calls / args.pings, Path(k[0]).name, k[1], k[2])


if __name__ == "__main__":
    main()
