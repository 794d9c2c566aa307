"""proxy/resolver.py: hosts file, DNS through dnspython, TTL cache, address order."""
import ipaddress
import socket
import threading

import dns.message
import dns.name
import dns.rcode
import dns.resolver
import dns.rrset
import pytest

from tomato_gevent.proxy import resolver as resolver_mod
from tomato_gevent.proxy.resolver import (
    ResolveError, Resolver, interleave_families, ip_literal, parse_hosts)

A = ipaddress.ip_address

HOSTS = """\
# comment line
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost   # trailing comment
10.0.0.5  Origin.Test. alias.test
fe80::1%eth0 linklocal.test
not-an-ip  broken.test
10.0.0.6
10.0.0.7 origin.test
"""


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeDNS:
    """query(name, rdtype) -> (addresses, ttl), counting calls."""

    def __init__(self, answers):
        self.answers = answers      # (name, rdtype) -> (list, ttl) or exception
        self.calls = []

    def __call__(self, name, rdtype):
        self.calls.append((name, rdtype))
        answer = self.answers.get((name, rdtype), ([], None))
        if isinstance(answer, Exception):
            raise answer
        return [A(a) for a in answer[0]], answer[1]


def test_parse_hosts():
    table = parse_hosts(HOSTS)
    assert table["localhost"] == [A("127.0.0.1"), A("::1")]
    assert table["ip6-localhost"] == [A("::1")]
    assert table["origin.test"] == [A("10.0.0.5"), A("10.0.0.7")]
    assert table["alias.test"] == [A("10.0.0.5")]
    assert table["linklocal.test"] == [A("fe80::1")]
    assert "broken.test" not in table and "not-an-ip" not in table


def test_interleave_families_puts_ipv6_first_and_alternates():
    addresses = [A("10.0.0.1"), A("10.0.0.2"), A("10.0.0.3"), A("2001:db8::1"), A("2001:db8::2")]
    assert interleave_families(addresses) == [
        A("2001:db8::1"), A("10.0.0.1"), A("2001:db8::2"), A("10.0.0.2"), A("10.0.0.3")]


@pytest.mark.parametrize("text,expected", [
    ("10.1.2.3", "10.1.2.3"), ("[::1]", "::1"), ("2001:db8::5", "2001:db8::5"),
    ("example.com", None), ("10.1.2", None),
])
def test_ip_literal(text, expected):
    assert ip_literal(text) == (A(expected) if expected else None)


def make_resolver(tmp_path, answers, hosts=HOSTS):
    hosts_path = tmp_path / "hosts"
    hosts_path.write_text(hosts)
    clock = Clock()
    fake = FakeDNS(answers)
    return Resolver(hosts_path=str(hosts_path), clock=clock, query=fake), clock, fake, hosts_path


def test_literals_and_hosts_never_ask_dns(tmp_path):
    r, _, fake, _ = make_resolver(tmp_path, {})
    assert r.resolve("192.0.2.1") == [A("192.0.2.1")]
    assert r.resolve("::1") == [A("::1")]
    assert r.resolve("ORIGIN.test.") == [A("10.0.0.5"), A("10.0.0.7")]
    assert fake.calls == []


def test_dns_answers_are_cached_for_their_ttl(tmp_path):
    answers = {("www.test", "A"): (["192.0.2.10", "192.0.2.11"], 30),
               ("www.test", "AAAA"): (["2001:db8::10"], 60)}
    r, clock, fake, _ = make_resolver(tmp_path, answers)
    expected = [A("2001:db8::10"), A("192.0.2.10"), A("192.0.2.11")]
    assert r.resolve("www.test") == expected
    assert sorted(fake.calls) == [("www.test", "A"), ("www.test", "AAAA")]
    clock.now += 29
    assert r.resolve("WWW.test") == expected
    assert len(fake.calls) == 2                     # the shorter TTL (30 s) still holds
    clock.now += 2
    r.resolve("www.test")
    assert len(fake.calls) == 4                     # expired: asked again


def test_a_full_cache_forgets_its_oldest_answers_and_keeps_the_recent_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(resolver_mod, "MAX_CACHE_ENTRIES", 8)
    names = ["n%d.test" % i for i in range(9)]
    r, clock, fake, _ = make_resolver(tmp_path, {(name, "A"): (["192.0.2.%d" % i], 300)
                                                 for i, name in enumerate(names)})
    for name in names:                              # the ninth answer finds the cache full
        r.resolve(name)
        clock.now += 1
    asked = len(fake.calls)
    for name in names[2:]:
        r.resolve(name)
    assert len(fake.calls) == asked                 # the recent answers are still cached
    r.resolve(names[0])
    r.resolve(names[1])
    assert len(fake.calls) == asked + 4             # the two oldest made room: asked again (A, AAAA)


def test_ttl_zero_is_cached_briefly_and_huge_ttl_is_capped(tmp_path):
    r, clock, fake, _ = make_resolver(tmp_path, {("a.test", "A"): (["192.0.2.1"], 0),
                                                 ("b.test", "A"): (["192.0.2.2"], 10 ** 9)})
    r.resolve("a.test")
    r.resolve("a.test")
    assert len(fake.calls) == 2
    clock.now += resolver_mod.MIN_TTL_SECONDS + 0.1
    r.resolve("a.test")
    assert len(fake.calls) == 4
    r.resolve("b.test")
    clock.now += resolver_mod.MAX_TTL_SECONDS + 1
    r.resolve("b.test")
    assert fake.calls.count(("b.test", "A")) == 2


def test_unknown_name_is_an_error_remembered_briefly(tmp_path):
    r, clock, fake, _ = make_resolver(tmp_path, {})
    with pytest.raises(ResolveError, match="unknown host nowhere.test"):
        r.resolve("nowhere.test")
    with pytest.raises(ResolveError):
        r.resolve("nowhere.test")
    assert len(fake.calls) == 2
    clock.now += resolver_mod.NEGATIVE_TTL_SECONDS + 1
    with pytest.raises(ResolveError):
        r.resolve("nowhere.test")
    assert len(fake.calls) == 4


def test_one_family_failing_does_not_hide_the_other(tmp_path):
    r, _, _, _ = make_resolver(tmp_path, {("x.test", "A"): (["192.0.2.3"], 60),
                                          ("x.test", "AAAA"): ResolveError("cannot resolve x.test: DNS timeout")})
    assert r.resolve("x.test") == [A("192.0.2.3")]


def test_server_failures_are_not_cached(tmp_path):
    r, _, fake, _ = make_resolver(tmp_path, {("x.test", "A"): ResolveError("cannot resolve x.test: DNS timeout")})
    for _ in range(2):
        with pytest.raises(ResolveError, match="DNS timeout"):
            r.resolve("x.test")
    assert fake.calls.count(("x.test", "A")) == 2


def test_hosts_file_changes_are_picked_up(tmp_path):
    r, clock, _, hosts_path = make_resolver(tmp_path, {})
    assert r.resolve("alias.test") == [A("10.0.0.5")]
    hosts_path.write_text("10.9.9.9 alias.test new.test\n")
    clock.now += resolver_mod.HOSTS_CHECK_SECONDS + 0.1
    assert r.resolve("alias.test") == [A("10.9.9.9")]
    assert r.resolve("new.test") == [A("10.9.9.9")]


def test_missing_hosts_file_means_dns_only(tmp_path):
    fake = FakeDNS({("a.test", "A"): (["192.0.2.1"], 60)})
    r = Resolver(hosts_path=str(tmp_path / "absent"), query=fake)
    assert r.resolve("a.test") == [A("192.0.2.1")]


# -- the real dnspython path against a DNS server on loopback ------------------------------
class StubDNS:
    """A tiny authoritative UDP server: zone dict name -> {rdtype: [addresses]}, TTL 300."""

    def __init__(self, zone):
        self.zone = zone
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True)
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            response = dns.message.make_response(query)
            if name not in self.zone:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif self.zone[name].get(rdtype):
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 300, "IN", rdtype, self.zone[name][rdtype]))
            self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self.sock.close()


@pytest.fixture
def stub_dns():
    server = StubDNS({"dual.test": {"A": ["192.0.2.7"], "AAAA": ["2001:db8::7"]},
                      "v4only.test": {"A": ["192.0.2.8", "192.0.2.9"]}})
    yield server
    server.close()


def dnspython_resolver(port):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.lifetime = 2.0
    return r


def test_real_dns_queries_a_and_aaaa_and_caches(tmp_path, stub_dns):
    (tmp_path / "hosts").write_text("")
    r = Resolver(hosts_path=str(tmp_path / "hosts"), dns_resolver=dnspython_resolver(stub_dns.port))
    assert r.resolve("dual.test") == [A("2001:db8::7"), A("192.0.2.7")]
    assert sorted(r.resolve("v4only.test")) == [A("192.0.2.8"), A("192.0.2.9")]   # rrsets are sets
    assert r.resolve("dual.test") == [A("2001:db8::7"), A("192.0.2.7")]
    assert sorted(stub_dns.queries) == [("dual.test", "A"), ("dual.test", "AAAA"),
                                        ("v4only.test", "A"), ("v4only.test", "AAAA")]
    with pytest.raises(ResolveError, match="unknown host missing.test"):
        r.resolve("missing.test")


def test_real_dns_without_a_server_fails_with_a_reason(tmp_path):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))       # bound, never answers
    try:
        upstream = dnspython_resolver(silent.getsockname()[1])
        upstream.lifetime = 0.3
        r = Resolver(hosts_path=str(tmp_path / "absent"), dns_resolver=upstream)
        with pytest.raises(ResolveError, match="cannot resolve dual.test"):
            r.resolve("dual.test")
    finally:
        silent.close()


def test_dotless_names_are_absolute_no_search_list(tmp_path, stub_dns):
    # resolv.conf's search list would turn "intranet" into "intranet.corp.test", a name the
    # rules never saw (issue 10.5): the resolver asks for absolute names only.
    stub_dns.zone["intranet.corp.test"] = {"A": ["192.0.2.99"]}
    upstream = dnspython_resolver(stub_dns.port)
    upstream.search = [dns.name.from_text("corp.test")]
    upstream.use_search_by_default = True
    upstream.ndots = 1
    r = Resolver(hosts_path=str(tmp_path / "absent"), dns_resolver=upstream)
    with pytest.raises(ResolveError, match="unknown host intranet"):
        r.resolve("intranet")
    assert {name for name, _ in stub_dns.queries} == {"intranet"}


def test_names_with_more_than_one_trailing_dot_are_refused(tmp_path, stub_dns):
    r = Resolver(hosts_path=str(tmp_path / "absent"), dns_resolver=dnspython_resolver(stub_dns.port))
    assert r.resolve("dual.test.") == [A("2001:db8::7"), A("192.0.2.7")]
    with pytest.raises(ResolveError):
        r.resolve("dual.test..")
    assert all(name == "dual.test" for name, _ in stub_dns.queries)


def test_resolve_error_is_a_typed_502():
    from tomato_gevent.errors import NextHopError, TomatoError
    error = ResolveError("unknown host x.test")
    assert isinstance(error, NextHopError) and isinstance(error, TomatoError)
    assert error.status_hint == 502
