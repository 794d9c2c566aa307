"""rules: the RuleSet against a naive reference, on random rule sets (hypothesis).

The reference scans every rule: first occurrence per (kind, value); for a name an
exact rule, else the longest matching suffix rule, else the first keyword/regexp
rule in file order that matches; for an IP literal the longest cidr prefix.
"""
import ipaddress
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.rules import Action, RuleSet, parse_rules

# A small label alphabet so random rules and hosts overlap a lot.
LABELS = ["a", "b", "c", "com", "cn", "xn--p1ai", "_x", "a-b", "b1", "ab", "abc"]
KEYWORDS = ["a", "ab", "abc", "abc.com", "b.c", "a-b", "com", "xn--", "1", "b1.c"]
REGEXPS = [r"^a", r"b$", r"(^|\.)ab\.com$", r"c\.", r"[0-9]", r"x?", r"(?i)AB", r"a\.b", r"(^|\.)abc?\.",
           r"^(a|b)\.c", r"b1\.(com|cn)$", r"\.xn--p1ai$", r"(?:^|\.)a-b$", r"_x",
           # ending in a known TLD (grouped by it), with literals that only spell the TLD
           r"(^|\.)[a-c]\.com$", r"(?i)\.CN$", r"(^|\.)abc\.(com|cn|b)$", r"a\.[bc]$", r"(^|\.)_x\..+$",
           # no literal but the TLD: screened by what follows "(^|\.)", or run on every name
           r"(^|\.)(a|b)[0-9]\.com$", r"(^|\.)[a-c]+\.(com|cn)$|^b", r"(^|\.)_?a[^.]*\.com$",
           r"(^|\.)[a-c]?b1\.(com|cn)$"]
# Hosts that the REGEXPS above match (and near misses), so that the pattern test meets them often.
PATTERN_HOSTS = ["a.com", "c.a.com", "d.com", "a1.com", "b.b1.com", "c1.com", "ab.com", "x.abc.cn", "abc.b",
                 "ab.cn", "b1.cn", "_x.a", "a_x.com", "b.xn--p1ai", "a-b", "aa.com", "abab.com", "ab1.com", "x.cb1.cn"]
NETWORKS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "0.0.0.0/0", "fd00::/8", "fd00:1::/32",
            "::/0", "2001:db8::/32"]
ADDRESSES = ["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.9.9.9", "11.0.0.1", "fd00:1::1", "fd12::1", "2001:db8::5",
             "fe80::1", "::ffff:10.1.2.3"]

labels = st.sampled_from(LABELS)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
actions = st.sampled_from(list(Action))
name_rules = st.tuples(actions, st.sampled_from(["domain", "full"]), domains)
pattern_rules = st.one_of(st.tuples(actions, st.just("keyword"), st.sampled_from(KEYWORDS)),
                          st.tuples(actions, st.just("regexp"), st.sampled_from(REGEXPS)))
cidr_rules = st.tuples(actions, st.just("cidr"), st.sampled_from(NETWORKS))
rule_lists = st.lists(st.one_of(name_rules, name_rules, pattern_rules, cidr_rules), max_size=40)


def naive_lookup(rules, host):
    seen = set()
    unique = []
    for rule in rules:
        if (rule[1], rule[2]) not in seen:
            seen.add((rule[1], rule[2]))
            unique.append(rule)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        best, best_len = None, -1
        for action, kind, value in unique:
            if kind == "cidr":
                network = ipaddress.ip_network(value)
                if address in network and network.prefixlen > best_len:
                    best, best_len = action, network.prefixlen
        return best
    for action, kind, value in unique:
        if kind == "full" and value == host:
            return action
    best, best_len = None, -1
    for action, kind, value in unique:
        if kind == "domain" and (host == value or host.endswith("." + value)) and len(value) > best_len:
            best, best_len = action, len(value)
    if best is not None:
        return best
    for action, kind, value in unique:
        if (kind == "keyword" and value in host) or (kind == "regexp" and re.search(value, host)):
            return action
    return None


def render(rules):
    return ["%s\t%s%s\n" % (action.value, "" if kind == "domain" else kind + ":", value)
            for action, kind, value in rules]


@settings(deadline=None)
@given(rule_lists, st.lists(st.one_of(domains, st.sampled_from(ADDRESSES)), min_size=1, max_size=20))
def test_lookup_matches_naive_reference(rules, hosts):
    rule_set = RuleSet(rules)
    for host in hosts + [value for _, kind, value in rules if kind in ("domain", "full")]:
        assert rule_set.lookup(host) is naive_lookup(rules, host), host


@settings(deadline=None)
@given(st.lists(st.tuples(actions, st.just("regexp"), st.sampled_from(REGEXPS)), min_size=1, max_size=3),
       st.lists(st.one_of(domains, st.sampled_from(PATTERN_HOSTS)), min_size=1, max_size=20))
def test_pattern_rules_alone_match_naive_reference(rules, hosts):
    # A few regexps and no name rules: every host reaches the screens, and one rule is
    # seldom hidden behind an earlier one that matches anyway.
    rule_set = RuleSet(rules)
    for host in hosts:
        assert rule_set.lookup(host) is naive_lookup(rules, host), host


@settings(deadline=None)
@given(rule_lists, domains, st.sampled_from(["{}", "{}.", "{}..", "{}:443", "{}.:8080"]), st.booleans())
def test_spelling_of_the_host_does_not_change_the_answer(rules, host, template, upper):
    rule_set = RuleSet(rules)
    spelled = template.format(host.upper() if upper else host)
    assert rule_set.lookup(spelled) is rule_set.lookup(host) is naive_lookup(rules, host)


@settings(deadline=None)
@given(rule_lists)
def test_rule_file_round_trip_and_counts(rules):
    parsed = parse_rules(render(rules), source="random.txt")
    assert parsed == rules
    rule_set = RuleSet(parsed)
    keys = {(kind, value) for _, kind, value in rules}
    assert len(rule_set) == len(keys)
    assert sum(rule_set.counts.values()) == len(keys)


@settings(deadline=None)
@given(rule_lists, rule_lists, st.lists(st.one_of(domains, st.sampled_from(ADDRESSES)), min_size=1, max_size=10))
def test_earlier_rules_take_precedence_like_concatenation(first, second, hosts):
    combined = RuleSet(first + second)
    for host in hosts:
        assert combined.lookup(host) is naive_lookup(first + second, host)
