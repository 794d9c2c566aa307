"""Fuzz the rule-file parser: any line gives rules or a ConfigError naming file:line, nothing else.

Lines are drawn from fragments of real rule lines (directions, TABs, prefixes, domains,
patterns with unbalanced brackets, networks, comments) glued together, plus arbitrary text,
so most inputs come close to valid. Whatever parses must also load into a RuleSet and
answer lookups for arbitrary hosts without raising.
"""
import re

from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import ConfigError
from tomato_gevent.rules import Action, RuleSet, parse_rules

FRAGMENTS = ["block", "direct", "forward", "\t", " ", "#", "full:", "keyword:", "regexp:", "cidr:", "domain:",
             "example.com", "Bücher.de", "..", ".", "*", "xn--", "_x", "-", "a" * 64, "10.0.0.0/8", "fd00::/8",
             "::1", "/33", "(", ")", "[", "]", "{2,1}", "\\", "(?i)", "?", "+", "$", "^", "|", "\r", "\ufeff",
             "\x00", "é", "。", "\u200d"]
lines = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join),
    st.text(max_size=60),
)
hosts = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(FRAGMENTS), max_size=5).map("".join))


@given(st.lists(lines, min_size=1, max_size=6), st.lists(hosts, max_size=5))
def test_rule_lines_give_rules_or_a_located_config_error(text_lines, probe_hosts):
    try:
        rules = parse_rules([line + "\n" for line in text_lines], source="fuzz.txt")
    except ConfigError as e:
        message = str(e)
        assert re.match(r"fuzz\.txt:[1-6]: ", message), message
        assert "\n" not in message
        return
    rule_set = RuleSet(rules)
    assert all(rule.action in Action for rule in rules)
    for host in probe_hosts:
        assert rule_set.lookup(host) in (None, Action.BLOCK, Action.DIRECT, Action.FORWARD)
