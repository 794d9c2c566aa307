#!/usr/bin/env python3
"""Rules benchmark: load time, lookup rate and memory of rules/dlc.txt, and dlmerge time.

    .venv/bin/python bench/rules_bench.py [--quick] [--rules FILE] [--data DIR]

Prints one JSON object to stdout (progress goes nowhere; errors to stderr):

  load_s                 best wall time of load_rule_files([rules/dlc.txt])
  lookups_per_s          RuleSet.lookup over a realistic mix of request hosts
                         (with the file's keyword/regexp rules, which run for every
                         name no domain rule decides: about half of the mix):
                         ~60 % plain names (matching at various depths or
                         unmatched), ~30 % "name:443" as CONNECT sends them,
                         ~9 % odd spellings (4 % upper case, 3 % trailing dot,
                         0.1 % Unicode IDN, 2 % IPv4 literals)
  lookups_per_s_plain    the same for already-normalised plain names only
  lookups_per_s_without_patterns
                         lookups_per_s of the same file without its keyword and
                         regexp rules, timed in the same process right after:
                         what the pattern pass costs, as a ratio this machine's
                         speed swings do not move
  memory_mib             tracemalloc: bytes held by the loaded RuleSet
  dlmerge_s              best wall time of the whole converter (read DATA_DIR,
                         parse, resolve, merge, render, write) in-process
  rules                  rules in the loaded set (string, for the note)

Goals from issue 4: load < 0.3 s for ~40 000 rules, > 1 M lookups/s,
dlmerge on the full data < 2 s. Timings are best of several rounds, since
this is a shared machine.
"""
import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tomato_gevent.dlmerge import cli as dlmerge_cli  # noqa: E402
from tomato_gevent.rules import RuleSet, load_rule_files  # noqa: E402
from tomato_gevent.rules.ruleset import KEYWORD, REGEXP, parse_rules  # noqa: E402

DEFAULT_RULES = REPO / "rules" / "dlc.txt"
DEFAULT_DATA = REPO / "third_party" / "domain-list-community" / "data"

SUBDOMAINS = ("www", "api", "cdn", "img.cdn", "static", "m", "mail", "a1.edge.static")
UNKNOWN_TLDS = ("com", "net", "org", "io", "de", "jp", "co.uk", "xyz")


def best_of(rounds, fn):
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rule_domains(path):
    domains = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or "\t" not in line:
                continue
            target = line.rstrip("\n").split("\t", 1)[1]
            kind, colon, value = target.partition(":")
            if not colon:
                domains.append(target)
            elif kind == "full":
                domains.append(value)       # keyword:/regexp:/cidr: name no domain
    return domains


def host_mix(domains, count, seed=4):
    """(mixed hosts, plain hosts): a deterministic, realistic request-host sample."""
    rng = random.Random(seed)
    plain = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.55:     # a listed site, usually a subdomain of it
            domain = rng.choice(domains)
            host = domain if rng.random() < 0.3 else "%s.%s" % (rng.choice(SUBDOMAINS), domain)
        else:               # a site no rule names
            host = "%s.site%d.%s" % (rng.choice(SUBDOMAINS), rng.randrange(100000), rng.choice(UNKNOWN_TLDS))
        plain.append(host)
    mixed = []
    for host in plain:
        roll = rng.random()
        if roll < 0.30:
            mixed.append(host + ":443")
        elif roll < 0.34:
            mixed.append(host.upper())
        elif roll < 0.37:
            mixed.append(host + ".")
        elif roll < 0.371:  # clients send IDN as punycode; a Unicode Host is rare
            mixed.append("bücher-%d.de" % rng.randrange(1000))
        elif roll < 0.39:
            mixed.append("10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        else:
            mixed.append(host)
    return mixed, plain


def lookups_per_s(rule_set, hosts, rounds):
    lookup = rule_set.lookup

    def run():
        for host in hosts:
            lookup(host)
    return len(hosts) / best_of(rounds, run)


def without_patterns(rules_path):
    """The file's rules minus keyword: and regexp: ones."""
    with open(rules_path, encoding="utf-8") as f:
        return RuleSet(rule for rule in parse_rules(f) if rule.kind not in (KEYWORD, REGEXP))


def memory_mib(rules_path):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rule_set = load_rule_files([str(rules_path)])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del rule_set
    return (after - before) / (1 << 20)


def dlmerge_seconds(data_dir, rounds):
    with tempfile.TemporaryDirectory(prefix="rules-bench-") as tmp:
        out = os.path.join(tmp, "dlc.txt")
        argv = [str(data_dir), "-o", out, "-q"]

        def run():
            if dlmerge_cli.main(argv) != 0:
                raise RuntimeError("dlmerge failed on %s" % data_dir)
        return best_of(rounds, run)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="rules_bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and hosts")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rule file (default rules/dlc.txt)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="domain-list-community data/ (default third_party/domain-list-community/data)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 15     # best of many: noise on a shared box only adds time
    host_count = 50_000 if args.quick else 100_000

    if not args.rules.is_file():
        print("rules_bench.py: no rule file %s (run make rules)" % args.rules, file=sys.stderr)
        return 2
    result = {}
    result["load_s"] = round(best_of(rounds, lambda: load_rule_files([str(args.rules)])), 4)
    rule_set = load_rule_files([str(args.rules)])
    mixed, plain = host_mix(rule_domains(args.rules), host_count)
    result["lookups_per_s"] = round(lookups_per_s(rule_set, mixed, rounds))
    result["lookups_per_s_plain"] = round(lookups_per_s(rule_set, plain, rounds))
    result["lookups_per_s_without_patterns"] = round(lookups_per_s(without_patterns(args.rules), mixed, rounds))
    result["memory_mib"] = round(memory_mib(args.rules), 2)
    if args.data.is_dir():
        result["dlmerge_s"] = round(dlmerge_seconds(args.data, 3 if args.quick else 5), 3)
    else:
        result["dlmerge_skipped"] = "no data directory %s" % args.data
    result["rules"] = "%d rules in %s (%s)" % (
        len(rule_set), args.rules.name, ", ".join("%s %d" % (a.value, n) for a, n in rule_set.counts.items()))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
