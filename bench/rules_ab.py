#!/usr/bin/env python3
"""A/B of RuleSet.lookup in one process: this checkout against another one, on rules_bench's mixes.

    mkdir /tmp/base && git archive main | tar -x -C /tmp/base
    .venv/bin/python bench/rules_ab.py /tmp/base [PAIRS]

Loads rules/dlc.txt into both versions (the other one imported under another package name),
checks that they answer alike on every host, then times them on the same 10 000-host chunk
back to back, alternating which goes first, PAIRS times (default 300). Prints the speed-up
(baseline time / this checkout's time): the median of the per-pair ratios and the ratio of the
per-chunk best times. Pairs of ~10 ms keep a loaded machine's swings out of the ratio.
"""
import gc
import importlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import rules_bench  # noqa: E402
from tomato_gevent.rules import load_rule_files  # noqa: E402

CHUNK = 10_000


def import_rules_from(root: Path, alias: str):
    """root/tomato_gevent as package alias; its rules subpackage."""
    spec = importlib.util.spec_from_file_location(alias, root / "tomato_gevent" / "__init__.py",
                                                  submodule_search_locations=[str(root / "tomato_gevent")])
    package = importlib.util.module_from_spec(spec)
    sys.modules[alias] = package
    spec.loader.exec_module(package)
    return importlib.import_module(alias + ".rules")


def seconds(rule_set, hosts):
    lookup = rule_set.lookup
    start = time.perf_counter()
    for host in hosts:
        lookup(host)
    return time.perf_counter() - start


def compare(base, new, hosts, pairs):
    chunks = [hosts[i:i + CHUNK] for i in range(0, len(hosts), CHUNK)]
    best = {}
    ratios = []
    gc.disable()
    try:
        for i in range(pairs):
            chunk = i % len(chunks)
            taken = {}
            for rule_set in ((base, new) if i % 2 == 0 else (new, base)):
                taken[rule_set] = seconds(rule_set, chunks[chunk])
                best[rule_set, chunk] = min(best.get((rule_set, chunk), float("inf")), taken[rule_set])
            ratios.append(taken[base] / taken[new])
    finally:
        gc.enable()
    best_ratio = (sum(best[base, c] for c in range(len(chunks)))
                  / sum(best[new, c] for c in range(len(chunks))))
    quartiles = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), quartiles[0], quartiles[2], best_ratio


def main(argv):
    if not argv or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    baseline = import_rules_from(Path(argv[0]).resolve(), "baseline_tomato_gevent")
    pairs = int(argv[1]) if len(argv) > 1 else 300
    rules = str(REPO / "rules" / "dlc.txt")
    base, new = baseline.load_rule_files([rules]), load_rule_files([rules])
    mixed, plain = rules_bench.host_mix(rules_bench.rule_domains(rules), 100_000)
    for host in mixed + plain:
        a, b = base.lookup(host), new.lookup(host)
        if (a and a.value) != (b and b.value):
            print("rules_ab.py: the versions disagree on %r: %s / %s" % (host, a, b), file=sys.stderr)
            return 1
    for label, hosts in (("realistic mix", mixed), ("normalised names", plain)):
        median, low, high, best_ratio = compare(base, new, hosts, pairs)
        print("%s: speed-up %.3f (median of %d pairs; quartiles %.3f-%.3f), best-of per chunk %.3f"
              % (label, median, pairs, low, high, best_ratio))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
