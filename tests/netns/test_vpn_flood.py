"""End-to-end, issue 10.1: a flood of forged "newer session" datagrams from the peer's own
address and port neither locks out a restarted peer nor hurts the running link.

The flood is sent from the peer's namespace through a raw socket with the peer's exact
source address and port (10.9.0.2:5000) and UDP checksum 0 (legal for IPv4, so the
kernel delivers what a socket could not have sent), 10 000 datagrams a second, spread
evenly (10 each millisecond): a session id whose start time lies 5 s ahead (newer than
any real session, within -pvt) followed by random bytes. In protocol v1 each one spent
one of the 50 key derivations a second, and a restarted peer waited for a free one.
"""
import datetime
import re
import signal

from tests.netns.nsutil import program, wait_for
from tests.netns.vpn_support import PORT, ping, start_vpn

FLOOD_RATE = 10_000         # datagrams per second
RESTARTS = 3
MAX_RESTART_SECONDS = 1.0   # from the restarted vpn's "tunnel up" to the first ping reply through it


def log_time(output, text):
    """Wall-clock time of the first log line containing text (the logging format's asctime)."""
    for line in output.splitlines():
        if text in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise AssertionError("no %r in:\n%s" % (text, output))


def first_reply_time(ping_proc):
    """Wall-clock time of the first reply in a `ping -D` output, or None."""
    match = re.search(r"^\[(\d+\.\d+)\] \d+ bytes from", ping_proc.output(), re.M)
    return float(match.group(1)) if match else None


def flood_figures(flooder):
    sent, seconds = map(float, re.findall(r"sent (\d+) in ([\d.]+) s", flooder.output())[-1])
    return int(sent), seconds


def test_restarted_peer_gets_through_a_flood_from_its_own_address(lab, pair):
    a, b = pair
    vpn_args_b = ("-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1")
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2")
    vpn_b = start_vpn(lab, b, *vpn_args_b)
    wait_for(lambda: ping(lab, a, "10.0.1.2"), timeout=10, interval=0.1, what="the link up")

    flooder = lab.spawn(b, program("flooder.py", "10.9.0.2", PORT, "10.9.0.1", PORT, FLOOD_RATE))
    lab.wait_log(flooder, "sent ")

    # The running link under the flood.
    pings = lab.run(a, ["ping", "-n", "-q", "-c", 40, "-i", "0.05", "-W", 1, "10.0.1.2"])
    received = int(re.search(r"(\d+) received", pings.stdout).group(1))
    assert received >= 36, "more than 10 %% of pings lost under the flood:\n%s" % pings.stdout

    # SIGKILL and restart the peer, three times: each time its first ping goes through at once.
    delays = []
    for _ in range(RESTARTS):
        vpn_b.send_signal(signal.SIGKILL)
        vpn_b.wait()
        vpn_b = start_vpn(lab, b, *vpn_args_b)
        up = log_time(vpn_b.output(), "tunnel ")
        pinger = lab.spawn(b, ["ping", "-n", "-D", "-i", "0.2", "10.0.1.1"])
        reply = wait_for(lambda: first_reply_time(pinger), timeout=30, interval=0.05,
                         what="a ping reply through the restarted peer")
        lab.stop(pinger, signal.SIGINT)
        delays.append(reply - up)
    assert max(delays) < MAX_RESTART_SECONDS, "restart delays under the flood: %s" % delays

    # The flood was real: at about the rate asked for, and it reached vpn A, which refused
    # every datagram after one authentication attempt.
    sent, seconds = flood_figures(flooder)
    lab.stop(flooder, signal.SIGKILL)
    assert sent / seconds >= 0.8 * FLOOD_RATE, "the flooder only reached %.0f/s" % (sent / seconds)
    assert lab.stop(vpn_a) == 0
    refused = int(re.search(r"authentication failed: (\d+)", vpn_a.output()).group(1))
    assert refused >= 0.9 * sent, "A refused %d of %d forged datagrams" % (refused, sent)
    assert "Traceback" not in vpn_a.output() + vpn_b.output()
