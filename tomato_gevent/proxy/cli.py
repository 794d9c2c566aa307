"""proxy -a [HOST]:PORT [-f HOST:PORT] [-r RULEFILE]... [-d block|direct|forward] [-v]

Rule-based HTTP and SOCKS5 proxy on one port (the seed's command line). SIGHUP reloads
the rule files (a bad file keeps the rules in force), re-reads --auth-file and reopens
--access-log; SIGUSR1 logs the one-line summary; SIGINT / SIGTERM stop it (and log the
summary). One access line per request and per tunnel opened or closed (access_log.py), on
stderr or in --access-log, or none (--no-access-log). With --workers N > 1 the process that
receives those signals is the parent of N workers (supervisor.py), and serve() below runs
in each worker; its host object is where the two cases differ: one process logs and tells
systemd itself, a worker tells its parent.
"""
import argparse
import functools
import logging
import os
import signal

import gevent

from ..cli_common import (OneLineParser, hostport_arg, parse_hostport, positive_float, positive_int, program_name,
                          run_cli, setup_logging)
from ..errors import ConfigError
from ..http1 import upstream_auth
from ..netutil import format_address, ip_literal
from ..rules import Action, RuleSet, load_rule_files
from ..sdnotify import notify
from . import client_policy, interfaces, loop_guard, socks_session
from .access_log import AccessLog
from .auth import load_auth_file
from .outbound import CONNECT_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS, TUNNEL_IDLE_TIMEOUT_SECONDS
from .server import DEFAULT_MAX_CLIENTS, ProxyServer, make_listener, tune_gevent
from .supervisor import Supervisor, blocking_getaddrinfo, reuse_port_error
from .workers import client_shares, plan_workers

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("127.0.0.1", 1080)


def build_parser():
    parser = OneLineParser(
        prog=program_name("proxy"),
        description="Rule-based HTTP and SOCKS5 proxy (one port, the first byte decides): per "
                    "host block, direct, or forward to another HTTP proxy.",
        epilog="Rule file lines: 'block|direct|forward<TAB>TARGET', TARGET = domain (suffix match), "
               "full:domain, keyword:WORD, regexp:RE or cidr:NETWORK (first occurrence wins, "
               "'#' comments). SIGHUP reloads the rule files. "
               "Example (host A, B's proxy at 10.0.1.2): %(prog)s -a 127.0.0.1:1080 -f 10.0.1.2:1080 -r rule.txt -v")
    parser.add_argument("-a", dest="listen", metavar="[HOST]:PORT", type=hostport_arg, default=None,
                        help="listen address (default 127.0.0.1:1080; ':PORT' = all interfaces)")
    parser.add_argument("-f", dest="forward", metavar="[USER:PASSWORD@]HOST:PORT", type=_forward_arg, default=None,
                        help="upstream HTTP proxy for 'forward' (without it, forward acts as direct); "
                             "with credentials, sent to it as Proxy-Authorization (Basic)")
    parser.add_argument("--forward-auth-file", metavar="FILE", default=None,
                        help="the -f proxy's credentials, 'user:password' on the first line "
                             "(instead of in -f, which ps shows)")
    parser.add_argument("-r", dest="rule_files", metavar="RULEFILE", action="append", default=[],
                        help="rule file; repeat for more (earlier files win)")
    parser.add_argument("-d", dest="default", choices=[a.value for a in Action], default="direct",
                        help="direction for hosts no rule matches (default direct)")
    parser.add_argument("--idle-timeout", metavar="SEC", type=positive_float, default=IDLE_TIMEOUT_SECONDS,
                        help="close idle or stalled clients, give up on silent upstreams "
                             "(default %(default)g)")
    parser.add_argument("--connect-timeout", metavar="SEC", type=positive_float,
                        default=CONNECT_TIMEOUT_SECONDS,
                        help="per address when connecting out (default %(default)g)")
    parser.add_argument("--tunnel-idle-timeout", metavar="SEC", type=positive_float,
                        default=TUNNEL_IDLE_TIMEOUT_SECONDS,
                        help="close CONNECT tunnels after this long without traffic either way "
                             "(default %(default)g, as tinyproxy's Timeout)")
    parser.add_argument("--max-clients", metavar="N", type=positive_int, default=DEFAULT_MAX_CLIENTS,
                        help="open client connections; beyond it new ones get 503 (default %(default)d)")
    parser.add_argument("--allow-private", action="store_true",
                        help="let clients not on loopback reach the proxy host's loopback and "
                             "link-local addresses (refused with 403 by default)")
    parser.add_argument("--auth-file", metavar="FILE", default=None,
                        help="require credentials, one 'user:password' per line: SOCKS5 "
                             "username/password (RFC 1929) and HTTP Proxy-Authorization: Basic (407)")
    parser.add_argument("--allow", metavar="CIDR", action="append", type=_allow_arg, default=[],
                        help="clients that may use the proxy; repeat for more (default: loopback, plus "
                             "the listen address's network when it is a private address; everyone when "
                             "listening on a public address or on all interfaces)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--access-log", metavar="PATH", default=None,
                        help="write the access lines (one per request, tunnel opened and closed) to "
                             "this file instead of stderr; SIGHUP reopens it (logrotate)")
    access.add_argument("--no-access-log", action="store_true",
                        help="no access lines (as nginx's 'access_log off'); a request the proxy "
                             "could not serve (bad request, unreachable host) still gets its one line")
    parser.add_argument("--workers", metavar="N", type=positive_int, default=None,
                        help="processes serving the port, each with its own event loop and its own "
                             "listening socket (SO_REUSEPORT: the kernel spreads new connections over "
                             "them); default: one per CPU this process may use (%d here); 1 = one "
                             "process, no supervisor. --max-clients counts for the whole proxy: each "
                             "worker takes an equal share of it and answers 503 beyond its share"
                             % available_cpus())
    parser.add_argument("-v", dest="verbose", action="count", default=0,
                        help="debug logging (the access lines are written without it)")
    return parser


def available_cpus():
    """The CPUs this process may run on (its affinity mask: taskset, systemd's CPUAffinity=)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _forward_arg(text):
    try:
        userinfo, hostport = upstream_auth.split_userinfo(text)
        return parse_hostport(hostport) + (userinfo,)
    except (ValueError, ConfigError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


CREDENTIAL_USERS = "proxy-users"        # LoadCredential=proxy-users:/etc/tomato/proxy-NAME.users


def _credential_auth_file(environ):
    """The users file systemd passes with LoadCredential= (for DynamicUser=, which cannot
    read a root-owned 0600 file itself), None if there is none."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = os.path.join(directory, CREDENTIAL_USERS)
    return path if os.path.exists(path) else None


def _allow_arg(text):
    try:
        return client_policy.parse_allow(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _client_networks(allow, bound, auth_file):
    """--allow's networks, else the default for the address we listen on (None: everyone,
    with a warning unless --auth-file asks every client for credentials)."""
    if allow:
        return client_policy.ClientNetworks(allow)
    listen = ip_literal(bound[0])
    networks = client_policy.default_networks(listen, interfaces.local_networks())
    if networks is None:
        if auth_file is None:
            log.warning("listening on %s without --allow or --auth-file: the proxy is open to every client "
                        "that reaches this port (the internet, on a public address)", format_address(bound))
        return None
    return client_policy.ClientNetworks(networks)


def _refuse_forward_to_self(forward, listener):
    """ConfigError if -f is one of our own listen addresses (the request would come back to
    us, round and round until every client slot is taken)."""
    bound = listener.getsockname()
    addresses = loop_guard.resolve_all(*forward, getaddrinfo=blocking_getaddrinfo)
    if loop_guard.forward_is_self(addresses, forward[1], ip_literal(bound[0]), bound[1],
                                  loop_guard.local_address):
        listener.close()
        raise ConfigError("-f %s is this proxy's own listen address %s: forwarding to itself would loop "
                          "(give the other proxy's address)" % (format_address(forward), format_address(bound)))


def describe_rules(paths, rules):
    if not paths:
        return "no rule files"
    counts = ", ".join("%s %d" % (action.value, rules.counts.get(action, 0)) for action in Action)
    return "%s (%d rules: %s)" % (", ".join(paths), len(rules), counts)


def _load(paths):
    return load_rule_files(paths) if paths else RuleSet()


def _check_rules(paths):
    """The rule files loaded and described (ConfigError if one is bad)."""
    rules = _load(paths)
    return rules, describe_rules(paths, rules)


def listening_line(args, authenticator, allowed, rules, workers, bound):
    """The INFO line once the proxy listens (every worker, when there are several)."""
    return "listening on %s (HTTP and SOCKS5%s%s)%s, default %s, %s; rules: %s" % (
        format_address(bound),
        ", %d users in %s" % (len(authenticator), args.auth_file) if authenticator else "",
        ", clients from %s" % allowed if allowed is not None else "",
        ", %d workers" % workers if workers > 1 else "", args.default,
        "forward to %s" % format_address(args.forward) if args.forward else "no upstream (forward = direct)",
        describe_rules(args.rule_files, rules))


def serve(args, shared, listener, max_clients, rules, host_events):
    """Serve on listener until SIGTERM/SIGINT: the one process, or one worker of several.

    shared: what main() made before any fork (_Shared: users, allowed clients, access log,
    Via token). host_events is told what happens (ready, reloaded, reload_failed, summary,
    stopped): _OneProcess logs it, a worker's supervisor.WorkerHost tells its parent.
    """
    access_log = shared.access_log
    tune_gevent()
    server = ProxyServer(listener, rules, default_action=Action(args.default),
                         upstream=args.forward, idle_timeout=args.idle_timeout,
                         connect_timeout=args.connect_timeout,
                         tunnel_idle_timeout=args.tunnel_idle_timeout,
                         allow_private=args.allow_private, max_clients=max_clients,
                         socks5_handler=socks_session.handle,
                         authenticator=shared.authenticator, access_log=access_log,
                         allowed_clients=shared.allowed, via_token=shared.via_token,
                         upstream_authorization=shared.upstream_authorization)

    def reload_rules():
        try:
            new_rules = _load(args.rule_files)
        except ConfigError as e:
            host_events.reload_failed(e)
            return
        server.set_rules(new_rules)
        host_events.reloaded(new_rules)

    def reopen():
        """The users and the access log again; the rules stay (SIGUSR2 from the supervisor
        when the rule files failed its check)."""
        if args.auth_file:
            reload_users(args.auth_file, shared.authenticator)
        if access_log is not None:
            access_log.reopen()

    def reload():
        reload_rules()
        reopen()

    gevent.signal_handler(signal.SIGHUP, reload)
    gevent.signal_handler(signal.SIGUSR2, reopen)
    gevent.signal_handler(signal.SIGUSR1, lambda: host_events.summary(server.stats))
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    server.start()
    if access_log is not None:
        access_log.start()
    host_events.ready(server)
    server.serve_forever()
    host_events.stopped(server.stats)
    if access_log is not None:
        access_log.stop()


def reload_users(path, authenticator):
    """SIGHUP: the users of --auth-file again, in place (a revoked user is refused at its
    next request; open tunnels stay); a bad file keeps the users in force."""
    try:
        authenticator.replace(load_auth_file(path))
    except ConfigError as e:
        log.error("auth file reload failed, keeping the old users: %s", e)
        return
    log.info("users reloaded: %d in %s", len(authenticator), path)


class _Shared:
    """What every worker gets from main(), made before any fork."""

    def __init__(self, authenticator, allowed, access_log, via_token, upstream_authorization):
        self.upstream_authorization = upstream_authorization
        self.authenticator = authenticator
        self.allowed = allowed
        self.access_log = access_log
        self.via_token = via_token


class _OneProcess:
    """serve()'s host when the proxy is a single process: it logs and tells systemd itself."""

    def __init__(self, listening_line, rule_files):
        self.listening_line = listening_line
        self.rule_files = rule_files

    def ready(self, server):
        bound = server.socket.getsockname()
        log.info("%s", self.listening_line(bound))
        notify("READY=1", "STATUS=listening on %s" % format_address(bound))

    def reloaded(self, rules):
        log.info("rules reloaded: %s", describe_rules(self.rule_files, rules))

    def reload_failed(self, error):
        log.error("rule reload failed, keeping the old rules: %s", error)

    def summary(self, stats):
        log.info("summary: %s", stats.summary())

    def stopped(self, stats):
        notify("STOPPING=1")
        self.summary(stats)
        log.info("stopped")


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def body():
        if args.forward is not None and not args.forward[0]:
            raise ConfigError("-f needs a host: HOST:PORT of the upstream proxy")
        args.forward, forward_authorization = upstream_auth.authorization(
            args.forward, args.forward_auth_file, "-f", "--forward-auth-file", "upstream proxy credentials")
        rules = _load(args.rule_files)
        if args.auth_file is None:
            args.auth_file = _credential_auth_file(os.environ)
        authenticator = load_auth_file(args.auth_file) if args.auth_file else None
        host, port = args.listen or DEFAULT_LISTEN
        access_log = None if args.no_access_log else AccessLog(args.access_log)
        plan = plan_workers(args.workers, available_cpus(), args.max_clients,
                            None if args.workers == 1 else reuse_port_error())
        for note in plan.notes:
            log.warning("%s", note)
        # A plain bind first: an address another process listens on is refused here, where
        # SO_REUSEPORT alone would let a stale proxy silently share the port with this one.
        listener = make_listener(host, port, getaddrinfo=blocking_getaddrinfo)
        if args.forward is not None:
            _refuse_forward_to_self(args.forward, listener)
        allowed = _client_networks(args.allow, listener.getsockname(), args.auth_file)
        shared = _Shared(authenticator, allowed, access_log, loop_guard.new_via_token(), forward_authorization)
        line = functools.partial(listening_line, args, authenticator, allowed, rules, plan.count)
        serve_here = functools.partial(serve, args, shared)
        if plan.count == 1:
            serve_here(listener, args.max_clients, rules, _OneProcess(line, args.rule_files))
            return 0
        listener.close()
        return Supervisor(client_shares(args.max_clients, plan.count), rules,
                          open_listener=lambda: make_listener(host, port, reuse_port=True,
                                                              getaddrinfo=blocking_getaddrinfo),
                          serve=serve_here, check_rules=lambda: _check_rules(args.rule_files),
                          listening_line=line).run()

    return run_cli(body, __name__)
