"""Host name -> addresses for the proxy's outgoing connections.

Contract:

    Resolver().resolve("example.com") -> [IPv6Address(...), IPv4Address(...), ...]
        IP literals come back as themselves; names listed in the hosts file (/etc/hosts,
        re-read when it changes) come back in file order; other names are asked of the
        DNS servers of resolv.conf (dnspython), A and AAAA at once,
        and cached for the answer's TTL. The list alternates families, IPv6 first
        (RFC 8305 4), and the caller tries every address before giving up.
    Names are taken as they come (the caller normalised them: rules.canonical_host) and
    asked as absolute names: no search list, so "intranet" is never resolved as
    "intranet.search.domain" behind the rules' back.
    Failure -> ResolveError(reason) with a one-line reason for the 502 answer.

Without gevent's monkey-patching dnspython blocks; with it (bin/proxy) every lookup
only blocks its own greenlet, and concurrent lookups of one name share one query.
"""
import ipaddress
import itertools
import os
import time

import dns.exception
import dns.name
import dns.resolver
import gevent
from gevent.event import AsyncResult

from ..errors import NextHopError
from ..netutil import ip_literal

# -- implementation limits ------------------------------------------------------
DNS_LIFETIME_SECONDS = 5.0          # total time for one query, all servers and retries
NEGATIVE_TTL_SECONDS = 10.0         # how long "no such name" is remembered
MIN_TTL_SECONDS = 1.0               # a TTL of 0 still serves the concurrent burst
MAX_TTL_SECONDS = 3600.0
MAX_CACHE_ENTRIES = 10000
HOSTS_CHECK_SECONDS = 2.0           # at most one stat() of the hosts file per interval


class ResolveError(NextHopError):
    """A name could not be turned into addresses; str() is the reason (a 502 answer)."""

    def __init__(self, msg):
        super().__init__(msg, 502)


def parse_hosts(text):
    """hosts(5) text -> {name (lower-case, no trailing dot): [ip_address, ...]} in file order."""
    table = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue
        for name in fields[1:]:
            addresses = table.setdefault(name.lower().rstrip("."), [])
            if address not in addresses:
                addresses.append(address)
    return table


def interleave_families(addresses):
    """IPv6 and IPv4 addresses alternated, IPv6 first, each family's order kept."""
    v6 = [a for a in addresses if a.version == 6]
    v4 = [a for a in addresses if a.version == 4]
    out = []
    for i in range(max(len(v6), len(v4))):
        out.extend(x[i] for x in (v6, v4) if i < len(x))
    return out


class Resolver:
    def __init__(self, hosts_path="/etc/hosts", dns_resolver=None, clock=time.monotonic, query=None):
        """query(name, rdtype) -> (addresses, ttl) replaces DNS (tests); dns_resolver a
        configured dns.resolver.Resolver (default: from /etc/resolv.conf, made lazily)."""
        self._hosts_path = hosts_path
        self._hosts = {}
        self._hosts_stamp = None
        self._hosts_checked = None
        self._clock = clock
        self._dns = dns_resolver
        self._query = query or self._query_dns
        self._cache = {}       # name -> (expires, addresses, error text or None)
        self._pending = {}     # name -> AsyncResult of an in-flight lookup

    # -- hosts file --------------------------------------------------------------
    def _hosts_table(self):
        now = self._clock()
        if self._hosts_checked is not None and now - self._hosts_checked < HOSTS_CHECK_SECONDS:
            return self._hosts
        self._hosts_checked = now
        try:
            st = os.stat(self._hosts_path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
            if stamp != self._hosts_stamp:
                with open(self._hosts_path, encoding="utf-8", errors="replace") as f:
                    self._hosts = parse_hosts(f.read())
                self._hosts_stamp = stamp
        except OSError:
            self._hosts, self._hosts_stamp = {}, None
        return self._hosts

    # -- DNS -----------------------------------------------------------------------
    def _dns_resolver(self):
        if self._dns is None:
            try:
                self._dns = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise ResolveError("no DNS servers configured (resolv.conf)") from None
            self._dns.lifetime = DNS_LIFETIME_SECONDS
        return self._dns

    def _query_dns(self, name, rdtype):
        """(addresses, ttl) for one record type; ([], ttl) when the name has none of them."""
        try:
            qname = dns.name.from_text(name, origin=dns.name.root)    # absolute
            answer = self._dns_resolver().resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return [], None
        except dns.resolver.NoNameservers:
            raise ResolveError("cannot resolve %s: no DNS server answered" % name) from None
        except dns.exception.Timeout:
            raise ResolveError("cannot resolve %s: DNS timeout" % name) from None
        except dns.exception.DNSException as e:
            raise ResolveError("cannot resolve %s: %s" % (name, e)) from None
        if answer.rrset is None:
            return [], None
        return [ipaddress.ip_address(r.address) for r in answer.rrset], answer.rrset.ttl

    def _query_caught(self, name, rdtype):
        """_query for a helper greenlet: hands its ResolveError back instead of raising it
        (a greenlet dying of an exception gets a traceback printed by the hub)."""
        try:
            return self._query(name, rdtype)
        except ResolveError as e:
            return e

    def _lookup_both(self, name):
        """(addresses interleaved, ttl); A and AAAA asked concurrently."""
        v6_job = gevent.spawn(self._query_caught, name, "AAAA")
        try:
            v4_answer = self._query_caught(name, "A")
        finally:
            v6_answer = v6_job.get()
        errors = [a for a in (v4_answer, v6_answer) if isinstance(a, ResolveError)]
        if errors:
            # One family answered: use it rather than fail (the other may be a broken server).
            answered = [a for a in (v4_answer, v6_answer) if not isinstance(a, ResolveError) and a[0]]
            if not answered:
                raise errors[0]
            v4_answer = v4_answer if v4_answer in answered else ([], None)
            v6_answer = v6_answer if v6_answer in answered else ([], None)
        (v4, ttl4), (v6, ttl6) = v4_answer, v6_answer
        ttls = [t for t in (ttl4, ttl6) if t is not None]
        return interleave_families(v6 + v4), (min(ttls) if ttls else None)

    # -- the one question ----------------------------------------------------------
    def resolve(self, host):
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        name = host.lower()
        if name.endswith("."):          # "x." is the absolute spelling of "x"; "x.." is refused
            name = name[:-1]
        if not name or name.endswith("."):
            raise ResolveError("invalid host name %r" % host[:80])
        listed = self._hosts_table().get(name)
        if listed:
            return list(listed)
        now = self._clock()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            if cached[2] is not None:
                raise ResolveError(cached[2])
            return list(cached[1])
        pending = self._pending.get(name)
        if pending is not None:
            return list(pending.get())   # re-raises the leader's ResolveError
        return self._resolve_and_cache(name)

    def _resolve_and_cache(self, name):
        pending = AsyncResult()
        self._pending[name] = pending
        try:
            addresses, ttl = self._lookup_both(name)
            now = self._clock()
            if not addresses:
                error = "unknown host %s" % name
                self._remember(name, now + NEGATIVE_TTL_SECONDS, [], error)
                raise ResolveError(error)
            ttl = min(max(float(ttl or 0), MIN_TTL_SECONDS), MAX_TTL_SECONDS)
            self._remember(name, now + ttl, addresses, None)
            pending.set(addresses)
            return list(addresses)
        except BaseException as e:
            pending.set_exception(e if isinstance(e, ResolveError) else ResolveError(str(e)))
            raise
        finally:
            self._pending.pop(name, None)

    def _remember(self, name, expires, addresses, error):
        self._cache.pop(name, None)         # to the end: the dict's order is the order of answers
        if len(self._cache) >= MAX_CACHE_ENTRIES:
            self._make_room()
        self._cache[name] = (expires, tuple(addresses), error)

    def _make_room(self):
        """Forget the expired answers, then the oldest until a quarter of the cache is free.

        So the next scan is at least MAX_CACHE_ENTRIES / 4 answers away, whatever the TTLs
        (answers expiring one by one used to cost a scan of the whole cache each), and the
        recent answers stay (clearing everything sent every busy name back to DNS at once).
        """
        now = self._clock()
        for key in [k for k, v in self._cache.items() if v[0] <= now]:
            del self._cache[key]
        excess = len(self._cache) - MAX_CACHE_ENTRIES * 3 // 4
        for key in list(itertools.islice(self._cache, max(excess, 0))):
            del self._cache[key]
