"""bin/ping (tomato-ping) -a HOST [-i SECONDS=30] [-c COUNT] [-W TIMEOUT] [-s PAYLOAD_BYTES] [-4|-6] [-v]

The seed's heartbeat: one ICMP echo request every -i seconds (the first at once), one log
line per reply, loss or ICMP error, and iputils' summary on exit (count reached, SIGINT,
SIGTERM). Exit status as iputils: 0 when at least one reply came back, 1 when none did,
2 on errors (bad arguments, unknown host, no permission).
"""
import logging
import os
import signal

import gevent

from ..cli_common import OneLineParser, number_arg, positive_float, positive_int, program_name, run_cli, setup_logging
from ..errors import ConfigError
from . import icmp
from .pinger import MIN_USER_INTERVAL_SECONDS, IcmpSocket, Pinger, resolve
from .tracker import format_summary

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 10.0  # iputils' default wait for the last reply
DEFAULT_PAYLOAD_BYTES = 56  # 64 bytes of ICMP, as iputils


MAX_PAYLOAD_BYTES = max(icmp.MAX_PAYLOAD_SIZE.values())
payload_size = number_arg(int, lambda value: 0 <= value <= MAX_PAYLOAD_BYTES, "{text} must be 0-%d" % MAX_PAYLOAD_BYTES)


def build_parser():
    parser = OneLineParser(
        prog=program_name("ping"),
        description="ICMP echo (IPv4 and IPv6) as a heartbeat: logs every reply, loss and ICMP error, "
                    "prints iputils-style statistics on exit. Exit status: 0 if any reply came back, "
                    "1 if none did, 2 on errors.")
    parser.add_argument("-a", "--address", metavar="HOST", required=True,
                        help="IPv4/IPv6 address or name to ping (a name is resolved at start and again "
                             "after a failure)")
    parser.add_argument("-i", "--interval", metavar="SECONDS", type=positive_float,
                        default=DEFAULT_INTERVAL_SECONDS,
                        help="seconds between requests (default %%(default)g; below %g needs root)"
                             % MIN_USER_INTERVAL_SECONDS)
    parser.add_argument("-c", "--count", metavar="COUNT", type=positive_int,
                        help="stop after COUNT requests (default: until SIGINT/SIGTERM)")
    parser.add_argument("-W", "--timeout", metavar="TIMEOUT", type=positive_float,
                        default=DEFAULT_TIMEOUT_SECONDS,
                        help="seconds to wait for each reply before it counts as lost (default %(default)g)")
    parser.add_argument("-s", "--size", metavar="PAYLOAD_BYTES", type=payload_size,
                        default=DEFAULT_PAYLOAD_BYTES,
                        help="payload bytes per request (default %(default)d)")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", dest="version", action="store_const", const=4, help="IPv4 only")
    family.add_argument("-6", dest="version", action="store_const", const=6, help="IPv6 only")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _ping(args), __name__)


def _ping(args):
    if args.interval < MIN_USER_INTERVAL_SECONDS and os.geteuid() != 0:
        raise ConfigError("-i %g: cannot flood; the minimal interval for non-root users is %gs"
                          % (args.interval, MIN_USER_INTERVAL_SECONDS))
    target = resolve(args.address, args.version)
    if args.size > icmp.MAX_PAYLOAD_SIZE[target.version]:
        raise ConfigError("-s %d: at most %d bytes fit an IPv%d packet"
                          % (args.size, icmp.MAX_PAYLOAD_SIZE[target.version], target.version))
    with IcmpSocket.open(target.version) as icmp_socket:
        log.debug("%s ICMP socket, identifier %d", icmp_socket.kind, icmp_socket.ident)
        if target.version == 4:
            log.info("PING %s (%s) %d(%d) bytes of data.", target.host, target.address, args.size,
                     args.size + icmp.ECHO_HEADER_SIZE + icmp.IPV4_MIN_HEADER_SIZE)
        else:
            log.info("PING %s (%s) %d data bytes", target.host, target.address, args.size)
        pinger = Pinger(icmp_socket, target, args.interval, args.count, args.timeout, args.size)
        handlers = [gevent.signal_handler(signum, pinger.stop) for signum in (signal.SIGINT, signal.SIGTERM)]
        try:
            stats = pinger.run()
        finally:
            for handler in handlers:
                handler.cancel()
    for line in format_summary(args.address, stats, pinger.elapsed):
        log.info("%s", line)
    return 0 if stats.received else 1
