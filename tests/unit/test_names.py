"""rules/names.py: the one normalisation of host names (edge and rule files alike)."""
import ipaddress

import pytest

from tomato_gevent.rules import BadHost, RuleSet, canonical_host, normalize_name, parse_rules
from tomato_gevent.rules.names import is_plain_ipv4
from tomato_gevent.rules.ruleset import Action


@pytest.mark.parametrize("text, name", [
    ("faß.de", "xn--fa-hia.de"),                # IDNA 2008 keeps ß; the stdlib codec says fass.de
    ("FAß.DE", "xn--fa-hia.de"),
    ("Bücher.de", "xn--bcher-kva.de"),
    ("例子。中国", "xn--fsqu00a.xn--fiqs8s"),     # ideographic full stop is a dot (UTS #46)
    ("ｗｗｗ.example.com", "www.example.com"),    # full-width letters map to ASCII
    ("_dmarc.bücher.de", "_dmarc.xn--bcher-kva.de"),
    ("example.com.", "example.com"),
    ("example.com..", "example.com"),
    ("Example.COM...", "example.com"),
    ("xn--fa-hia.de", "xn--fa-hia.de"),
])
def test_normalize_name(text, name):
    assert normalize_name(text) == name


def test_idna_2008_differs_from_the_stdlib_codec():
    assert "faß.de".encode("idna") == b"fass.de"       # what we no longer do
    assert normalize_name("faß.de") != normalize_name("fass.de")


@pytest.mark.parametrize("text", [
    "", ".", "..", "a..b", ".example", "exa mple.com", "exa*mple.com", "127.1", "1.2.3.4",
    "x" * 64 + ".com", "a." * 127 + "com",
    "ab\u200dc.de",             # ZWJ outside its allowed context (IDNA 2008 CONTEXTJ)
    "\u0627\u0661a.de",         # mixed bidi label
    "☃\ufffd.com",
])
def test_normalize_name_refuses(text):
    assert normalize_name(text) is None


@pytest.mark.parametrize("host, canonical", [
    ("faß.de", "xn--fa-hia.de"),
    ("Example.COM..", "example.com"),
    ("10.0.0.1", "10.0.0.1"),
    ("2001:DB8:0::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("0:0::1", "::1"),                  # one spelling for HTTP and SOCKS5 alike (issue 21)
    ("[0:0::1]", "::1"),
    ("::FFFF:10.0.0.1", "::ffff:a00:1"),
    ("www.example.test", "www.example.test"),
    ("WWW.Example.Test.", "www.example.test"),
])
def test_canonical_host(host, canonical):
    assert canonical_host(host) == canonical


@pytest.mark.parametrize("host", ["", "..", "a..b", "127.1", "10.0.0.300", "[10.0.0.1", "exa mple", "1.2.3.4.",
                                  "a" * 64 + ".test", "a" * 300 + ".test",
                                  "ab:80"])          # CONNECT [ab:80]:443: no IPv6 literal, no name either
def test_canonical_host_refuses_with_400(host):
    with pytest.raises(BadHost) as info:
        canonical_host(host)
    assert info.value.status_hint == 400


def test_ipv4_fast_path_accepts_only_what_ip_address_accepts_and_keeps_its_text():
    """canonical_host's dotted-quad shortcut must never take a host ip_address refuses, and
    what it takes is already ip_address's text."""
    def ipv4_text(text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            return None
    octets = [str(n) for n in range(0, 300)] + ["00", "01", "007", "0255", "256", "1000", "\u0661", " 1"]
    hosts = [template % o for o in octets for template in ("%s.0.0.1", "1.2.3.%s", "%s")]
    hosts += ["1.2.3", "1.2.3.4.", "1.2.3.4.5", "127.0.0.1\n", "", "1..2.3"]
    for host in hosts:
        if is_plain_ipv4(host) is not None:
            assert ipv4_text(host) == host, host
    assert is_plain_ipv4("255.255.255.255") and is_plain_ipv4("0.0.0.0")


def test_rule_files_and_requests_meet_on_the_same_name():
    rules = RuleSet(parse_rules(["block\tfaß.de\n", "direct\texample.com..\n"]))
    assert rules.lookup("xn--fa-hia.de") is Action.BLOCK
    assert rules.lookup("www.FAß.de.") is Action.BLOCK
    assert rules.lookup("fass.de") is None
    assert rules.lookup("example.com...:443") is Action.DIRECT
    assert rules.lookup(canonical_host("WWW.example.com..")) is Action.DIRECT
