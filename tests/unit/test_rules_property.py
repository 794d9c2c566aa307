"""proxy/rules.py: the trie against a naive reference, on random rule sets (hypothesis)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.rules import Action, RuleSet, parse_rules

# A small label alphabet so random rules and hosts overlap a lot.
LABELS = ["a", "b", "c", "com", "cn", "xn--p1ai", "_x", "a-b", "b1"]

labels = st.sampled_from(LABELS)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
actions = st.sampled_from(list(Action))
rule_lists = st.lists(st.tuples(actions, domains, st.booleans()), max_size=40)


def naive_lookup(rules, name):
    """Reference: scan every rule; first occurrence per (domain, exact) key;
    an exact rule for the name, else the longest matching suffix rule."""
    seen = set()
    exact_hit, best_suffix, best_len = None, None, -1
    for action, domain, exact in rules:
        if (domain, exact) in seen:
            continue
        seen.add((domain, exact))
        if exact:
            if domain == name:
                exact_hit = action
        elif (name == domain or name.endswith("." + domain)) and len(domain) > best_len:
            best_suffix, best_len = action, len(domain)
    return exact_hit if exact_hit is not None else best_suffix


def render(rules):
    return ["%s\t%s%s\n" % (action.value, "full:" if exact else "", domain) for action, domain, exact in rules]


@settings(max_examples=300, deadline=None)
@given(rule_lists, st.lists(domains, min_size=1, max_size=20))
def test_lookup_matches_naive_reference(rules, hosts):
    rule_set = RuleSet(rules)
    for host in hosts + [domain for _, domain, _ in rules]:
        assert rule_set.lookup(host) is naive_lookup(rules, host), host


@settings(max_examples=200, deadline=None)
@given(rule_lists, domains, st.sampled_from(["{}", "{}.", "{}:443", "{}.:8080"]), st.booleans())
def test_spelling_of_the_host_does_not_change_the_answer(rules, host, template, upper):
    rule_set = RuleSet(rules)
    spelled = template.format(host.upper() if upper else host)
    assert rule_set.lookup(spelled) is rule_set.lookup(host) is naive_lookup(rules, host)


@settings(max_examples=200, deadline=None)
@given(rule_lists)
def test_rule_file_round_trip_and_counts(rules):
    parsed = parse_rules(render(rules), source="random.txt")
    assert parsed == rules
    rule_set = RuleSet(parsed)
    keys = {(domain, exact) for _, domain, exact in rules}
    assert len(rule_set) == len(keys)
    assert sum(rule_set.counts.values()) == len(keys)


@settings(max_examples=100, deadline=None)
@given(rule_lists, rule_lists, st.lists(domains, min_size=1, max_size=10))
def test_earlier_rules_take_precedence_like_concatenation(first, second, hosts):
    combined = RuleSet(first + second)
    for host in hosts:
        answer = combined.lookup(host)
        assert answer is naive_lookup(first + second, host)
        exact_first = {d for _, d, e in first if e}
        suffix_first = {d for _, d, e in first if not e}
        if host in exact_first:
            assert answer is RuleSet(first).lookup(host)
        elif host in suffix_first and not any(e and d == host for _, d, e in second):
            assert answer is RuleSet(first).lookup(host)
