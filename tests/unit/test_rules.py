"""proxy/rules.py: the rule-file format, lookup semantics, normalisation, errors."""
from pathlib import Path

import pytest

from tomato_gevent.errors import ConfigError
from tomato_gevent.rules import (Action, BadHost, RuleSet, canonical_host, load_rule_files, normalize_host,
                                  normalize_name, parse_rules)

BLOCK, DIRECT, FORWARD = Action.BLOCK, Action.DIRECT, Action.FORWARD

EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "rules" / "example.txt"

SEED_RULES = """\
# comment

block\tads.baidu.com
direct\tbaidu.com
forward\tgithub.com
"""


def rules(text):
    return RuleSet(parse_rules(text.splitlines(True)))


def default_direction(rule_set, host, default=DIRECT):
    """What the proxy does: the rule's action, else its -d default."""
    action = rule_set.lookup(host)
    return default if action is None else action


# --- the seed's examples ----------------------------------------------------

def test_seed_ads_subdomain_blocked_while_parent_direct():
    rs = rules(SEED_RULES)
    assert rs.lookup("ads.baidu.com") is BLOCK
    assert rs.lookup("x.ads.baidu.com") is BLOCK
    assert rs.lookup("baidu.com") is DIRECT


def test_seed_suffix_walk_www_baidu_matches_baidu():
    rs = rules(SEED_RULES)
    assert rs.lookup("www.baidu.com") is DIRECT
    assert rs.lookup("a.b.c.baidu.com") is DIRECT
    assert rs.lookup("api.github.com") is FORWARD


def test_suffix_match_is_on_label_boundaries():
    rs = rules(SEED_RULES)
    assert rs.lookup("xbaidu.com") is None
    assert rs.lookup("baidu.com.evil.example") is None
    assert rs.lookup("com") is None


def test_tld_rule_matches_everything_below():
    rs = rules("direct\tcn\n")
    assert rs.lookup("www.gov.cn") is DIRECT
    assert rs.lookup("cn") is DIRECT
    assert rs.lookup("cn.com") is None


def test_first_occurrence_wins():
    rs = rules("forward\tbaidu.com\ndirect\tbaidu.com\nblock\tbaidu.com\n")
    assert rs.lookup("www.baidu.com") is FORWARD
    assert len(rs) == 1
    assert rs.counts == {BLOCK: 0, DIRECT: 0, FORWARD: 1}


def test_first_occurrence_compares_normalised_domains():
    rs = rules("block\tBaidu.COM.\ndirect\tbaidu.com\n")
    assert rs.lookup("baidu.com") is BLOCK
    assert len(rs) == 1


def test_no_match_means_default_direction():
    rs = rules(SEED_RULES)
    assert rs.lookup("example.org") is None
    assert default_direction(rs, "example.org") is DIRECT
    assert default_direction(rs, "example.org", FORWARD) is FORWARD
    assert default_direction(rs, "ads.baidu.com", FORWARD) is BLOCK


def test_empty_rule_set():
    rs = RuleSet()
    assert len(rs) == 0
    assert rs.lookup("baidu.com") is None
    assert rs.counts == {BLOCK: 0, DIRECT: 0, FORWARD: 0}


def test_counts_and_len():
    rs = rules(SEED_RULES + "block\tfull:x.example\nblock\tx.example\n")
    assert len(rs) == 5
    assert rs.counts == {BLOCK: 3, DIRECT: 1, FORWARD: 1}


# --- full: (exact) rules ----------------------------------------------------

def test_full_matches_only_that_name():
    rs = rules("block\tfull:ads.example.com\n")
    assert rs.lookup("ads.example.com") is BLOCK
    assert rs.lookup("www.ads.example.com") is None
    assert rs.lookup("example.com") is None


def test_full_rule_inside_a_suffix_rule():
    rs = rules("direct\tfull:cdn.github.com\nforward\tgithub.com\n")
    assert rs.lookup("cdn.github.com") is DIRECT
    assert rs.lookup("x.cdn.github.com") is FORWARD
    assert rs.lookup("github.com") is FORWARD


@pytest.mark.parametrize("text", [
    "block\tfull:x.com\ndirect\tx.com\n",
    "direct\tx.com\nblock\tfull:x.com\n",
], ids=["exact-first", "suffix-first"])
def test_exact_rule_beats_suffix_rule_of_same_name_in_any_order(text):
    rs = rules(text)
    assert len(rs) == 2                  # different keys: both kept
    assert rs.lookup("x.com") is BLOCK
    assert rs.lookup("a.x.com") is DIRECT


def test_first_occurrence_wins_among_full_rules():
    rs = rules("direct\tfull:x.com\nblock\tfull:x.com\n")
    assert rs.lookup("x.com") is DIRECT
    assert len(rs) == 1


def test_most_specific_suffix_wins_regardless_of_order():
    rs = rules("direct\tbaidu.com\nblock\tads.baidu.com\n")
    assert rs.lookup("ads.baidu.com") is BLOCK
    assert rs.lookup("www.baidu.com") is DIRECT


# --- multiple files -----------------------------------------------------------

def test_earlier_files_take_precedence(tmp_path):
    user = tmp_path / "user.txt"
    user.write_text("# my overrides\nforward\tbaidu.com\nblock\tfull:github.com\n", encoding="utf-8")
    shipped = tmp_path / "shipped.txt"
    shipped.write_text(SEED_RULES, encoding="utf-8")
    rs = load_rule_files([str(user), str(shipped)])
    assert rs.lookup("www.baidu.com") is FORWARD
    assert rs.lookup("ads.baidu.com") is BLOCK         # more specific, from the later file
    assert rs.lookup("github.com") is BLOCK
    assert rs.lookup("api.github.com") is FORWARD
    assert len(rs) == 4      # shipped "direct baidu.com" lost to the user's line
    assert load_rule_files([str(shipped), str(user)]).lookup("www.baidu.com") is DIRECT


def test_no_files_is_an_empty_set():
    assert len(load_rule_files([])) == 0


def test_missing_file_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as err:
        load_rule_files([str(path)])
    assert str(path) in str(err.value)
    assert "No such file" in str(err.value)
    assert "\n" not in str(err.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read rule file"):
        load_rule_files([str(tmp_path)])


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"direct\tb\xe4d.example\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_rule_files([str(path)])


def test_crlf_and_byte_order_mark(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbfblock\tads.example\r\n# c\r\ndirect\tok.example\r\n")
    rs = load_rule_files([str(path)])
    assert rs.lookup("ads.example") is BLOCK
    assert rs.lookup("ok.example") is DIRECT


def test_error_in_second_file_names_that_file_and_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(SEED_RULES, encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_text("direct\tok.example\n\nblock ads.example\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rule_files([str(good), str(bad)])
    assert str(err.value) == "%s:3: expected direction<TAB>domain, found spaces instead of a TAB: " \
                             "'block ads.example'" % bad


def test_shipped_example_rules_load():
    rs = load_rule_files([str(EXAMPLE_RULES)])
    assert len(rs) > 0
    assert rs.lookup("ads.baidu.com") is BLOCK
    assert rs.lookup("www.baidu.com") is DIRECT
    assert rs.lookup("github.com") is FORWARD
    assert rs.lookup("www.qq.com") is FORWARD          # the override at the top
    assert rs.lookup("dl.google.com") is DIRECT        # full: inside a suffix rule
    assert rs.lookup("x.dl.google.com") is FORWARD
    assert rs.lookup("pagead2.googlesyndication.com") is BLOCK
    assert rs.lookup("googlesyndication.com") is None


# --- file syntax that is accepted -----------------------------------------

def test_comments_blank_lines_and_whitespace():
    rs = rules("  # indented comment\n\n\t\n\r\nblock\tads.example # trailing comment\r\n"
               "direct\t\tdouble-tab.example\nforward\tspaces-after.example   \n")
    assert rs.lookup("ads.example") is BLOCK
    assert rs.lookup("double-tab.example") is DIRECT
    assert rs.lookup("spaces-after.example") is FORWARD
    assert len(rs) == 3


def test_parse_rules_returns_every_line_in_order():
    parsed = parse_rules(["direct\tBaidu.com.\n", "block\tfull:X.example\n", "direct\tbaidu.com\n"])
    assert parsed == [(DIRECT, "domain", "baidu.com"), (BLOCK, "full", "x.example"), (DIRECT, "domain", "baidu.com")]


def test_rule_domains_are_normalised_like_hosts():
    rs = rules("direct\tBücher.DE\nblock\t_dmarc.example.com\nforward\txn--80AGLFYFK.xn--p1ai\n")
    assert rs.lookup("www.xn--bcher-kva.de") is DIRECT
    assert rs.lookup("www.bücher.de") is DIRECT
    assert rs.lookup("_dmarc.example.com") is BLOCK
    assert rs.lookup("xn--80aglfyfk.xn--p1ai") is FORWARD


# --- malformed lines: one error each, naming file:line and the line ----------

@pytest.mark.parametrize("line, why", [
    ("block ads.example", "found spaces instead of a TAB"),
    ("block    ads.example", "found spaces instead of a TAB"),
    ("blockads.example", "expected direction<TAB>domain"),
    ("deny\tads.example", "unknown direction 'deny'"),
    ("Block\tads.example", "unknown direction 'Block'"),
    ("block \tads.example", "spaces around the direction"),
    ("\tads.example", "expected direction<TAB>domain"),
    ("block\t", "empty domain"),
    ("block", "empty domain"),
    ("block\t# only a comment", "empty domain"),
    ("block\tfull:", "empty domain after the full: prefix"),
    ("block\tads example", "found whitespace inside"),
    ("block\tads.example\tmore", "found whitespace inside"),
    ("block\ta..example", "bad domain 'a..example'"),
    ("block\t.example", "bad domain '.example' (write 'example': a rule already covers every subdomain)"),
    ("block\t*.ads.example", "bad domain '*.ads.example' (write 'ads.example'"),
    ("block\tads.*.example", "bad domain 'ads.*.example'"),
    ("block\tads.example/path", "bad domain"),
    ("block\t" + "x" * 64 + ".example", "bad domain"),
    ("block\t" + "a." * 130 + "example", "bad domain"),
    ("block\t10.0.0.1", "an IP address"),
    ("block\t::1", "an IP address"),
    ("block\t[2001:db8::1]", "an IP address"),
    ("block\texample.123", "bad domain 'example.123'"),
    ("block\tdomain:ads.example", "the prefixes understood are full:, keyword:, regexp:, cidr:"),
    ("block\tads.example:443", "the prefixes understood are full:, keyword:, regexp:, cidr:"),
    ("block\tkeyword:", "empty value after the keyword: prefix"),
    ("block\tkeyword:Bücher", "bad keyword 'Bücher'"),
    ("block\tkeyword:a/b", "bad keyword 'a/b'"),
    ("block\tregexp:", "empty value after the regexp: prefix"),
    ("block\tregexp:(ads", "bad regexp '(ads': missing ), unterminated subpattern at position 0"),
    ("block\tregexp:a{2,1}", "bad regexp 'a{2,1}'"),
    ("block\tregexp:(?i)x(?i)y", "bad regexp"),
    ("block\tcidr:", "empty value after the cidr: prefix"),
    ("block\tcidr:10.0.0.1/8", "bad network '10.0.0.1/8' (10.0.0.1/8 has host bits set)"),
    ("block\tcidr:10.0.0.0/33", "bad network '10.0.0.0/33'"),
    ("block\tcidr:example.com", "bad network 'example.com'"),
])
def test_malformed_line_is_config_error_with_file_line_and_text(line, why):
    text = "# header\ndirect\tok.example\n" + line + "\n"
    with pytest.raises(ConfigError) as err:
        parse_rules(text.splitlines(True), source="rules.txt")
    message = str(err.value)
    assert message.startswith("rules.txt:3: ")
    assert why in message
    assert message.endswith(": %r" % line)
    assert "\n" not in message


def test_config_error_maps_to_exit_status_2():
    with pytest.raises(ConfigError) as err:
        parse_rules(["nope\tx.example"])
    assert err.value.exit_status == 2
    assert str(err.value).startswith("<rules>:1: ")


# --- host normalisation ------------------------------------------------------

@pytest.mark.parametrize("host, name", [
    ("www.baidu.com", "www.baidu.com"),
    ("WWW.Baidu.COM", "www.baidu.com"),
    ("baidu.com.", "baidu.com"),
    ("baidu.com:443", "baidu.com"),
    ("baidu.com...", "baidu.com"),
    ("baidu.com..:443", "baidu.com"),
    ("Baidu.COM.:8080", "baidu.com"),
    ("localhost", "localhost"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.de:443", "xn--bcher-kva.de"),
    ("例子.中国", "xn--fsqu00a.xn--fiqs8s"),
    ("例子。中国", "xn--fsqu00a.xn--fiqs8s"),           # ideographic full stop
    ("xn--fsqu00a.xn--fiqs8s", "xn--fsqu00a.xn--fiqs8s"),
    ("a1.b2.example", "a1.b2.example"),
    ("x" * 63 + ".example", "x" * 63 + ".example"),
])
def test_normalize_host(host, name):
    assert normalize_host(host) == name


@pytest.mark.parametrize("host", [
    "", ".", ":443", "a..b", ".example", "a b.example", "exa*mple.com", "x" * 64 + ".example",
    "a." * 127 + "com", "example.com:http", "example.com:",
    "10.0.0.1", "10.0.0.1:80", "127.1", "192.168.1.300",
    "::1", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:80",
])
def test_normalize_host_rejects_ip_literals_and_invalid_names(host):
    assert normalize_host(host) is None


def test_normalize_name_is_normalize_host_without_ports():
    assert normalize_name("Bücher.DE.") == "xn--bcher-kva.de"
    assert normalize_name("example.com:443") is None
    assert normalize_name("10.0.0.1") is None
    assert normalize_name("") is None


@pytest.mark.parametrize("host", ["WWW.BAIDU.COM", "www.baidu.com.", "www.baidu.com:443", "Www.Baidu.Com.:80"])
def test_lookup_normalises(host):
    assert rules(SEED_RULES).lookup(host) is DIRECT


def test_lookup_of_idn_host_matches_punycode_rule():
    rs = rules("forward\txn--fiqs8s\n")
    assert rs.lookup("例子.中国") is FORWARD
    assert rs.lookup("www.例子.中国:443") is FORWARD


@pytest.mark.parametrize("host", ["10.0.0.1", "10.0.0.1:443", "[::1]:443", "::1", "1.2.3.4", "", ":443",
                                  "[FD00::1]:443", "fd00::b.com"])
def test_ip_literals_and_hosts_without_a_name_match_no_name_rule(host):
    rs = rules("direct\tcom\nblock\tb.com\n")
    assert rs.lookup(host) is None


@pytest.mark.parametrize("host, action", [
    ("a" * 57 + ".b.com", BLOCK),
    ("a" * 58 + ".b.com", BLOCK),
    ("A" * 58 + ".B.COM.:443", BLOCK),
    ("x" * 63 + "." + "y" * 63 + ".b.com", BLOCK),
    ("x." * 124 + "b.com", BLOCK),                          # 253 characters
    ("b.com..:443", BLOCK),
    ("B.Com:8080", BLOCK),
    ("a.c0m", DIRECT),                                      # a last label ending in a digit
])
def test_valid_names_in_any_spelling_and_length_get_the_answer_of_their_normal_form(host, action):
    rs = rules("direct\tc0m\nblock\tb.com\n")
    assert rs.lookup(host) is action
    assert rs.lookup(normalize_host(host)) is action


@pytest.mark.parametrize("host", ["a..b.com", "x" * 64 + ".b.com", "exa*mple.b.com", "a b.b.com:443"])
def test_lookup_leaves_validation_to_the_edge(host):
    """The edge refuses these before any rule is asked; lookup answers by the suffixes."""
    assert normalize_host(host) is None
    with pytest.raises(BadHost):
        canonical_host(host.partition(":")[0])
    assert rules("direct\tcom\nblock\tb.com\n").lookup(host) is BLOCK
