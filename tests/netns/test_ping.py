"""End-to-end: the real bin/ping in network namespaces.

Both socket kinds are driven: raw sockets (root; a new namespace's ping_group_range is
"1 0", so root falls back to raw) and unprivileged ICMP datagram sockets (the group is
added to the namespace's ping_group_range and the tool runs as nobody via setpriv).
Every run checks that the closing summary agrees with the reply/loss/error lines
(PingLog.assert_summary_agrees; PingLog is in ping_support.py, shared with test_ping_through_vpn.py).
"""
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.netns.nsutil import program
from tests.netns.ping_support import PingLog


@contextmanager
def netns_etc(ns, files):
    """Per-namespace /etc files: `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*.

    Yields the directory; the files are removed afterwards. Rewrite a file in place
    (same inode) to change what a running process sees.
    """
    directory = Path("/etc/netns") / ns
    directory.mkdir(parents=True)
    try:
        for name, text in files.items():
            (directory / name).write_text(text)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- running bin/ping ---------------------------------------------------------------
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
EVERYONE_MAY_PING = "net.ipv4.ping_group_range=0 2147483647"


def ping(lab, ns, *args, unprivileged=False, timeout=60):
    """Run bin/ping to completion in ns; returns (exit status, PingLog of its stderr)."""
    argv = (NOBODY if unprivileged else []) + lab.tool("ping", *args)
    result = lab.run(ns, argv, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, PingLog(result.stdout + result.stderr)


def namespace(lab, socket_kind, ipv6=False):
    """A namespace where bin/ping will use socket_kind ("raw" as root, "datagram" as nobody)."""
    ns = lab.netns(ipv6=ipv6)
    if socket_kind == "datagram":
        lab.sh(ns, "sysctl -qw '%s'" % EVERYONE_MAY_PING)
    return ns


SOCKET_KINDS = pytest.mark.parametrize("socket_kind", ["raw", "datagram"])


def assert_socket_kind(log, socket_kind):
    assert any(text.startswith("%s ICMP socket, identifier" % socket_kind) for text in log.at_level("DEBUG")), \
        log.output


# -- tests ---------------------------------------------------------------------------
@SOCKET_KINDS
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_three_replies(lab, socket_kind, address):
    ns = namespace(lab, socket_kind, ipv6=":" in address)
    status, log = ping(lab, ns, "-a", address, "-c", 3, "-i", 0.2, "-v", unprivileged=socket_kind == "datagram")
    assert status == 0, log.output
    assert_socket_kind(log, socket_kind)
    assert log.reply_seqs == [1, 2, 3]
    assert {r["source"] for r in log.replies} == {address}
    assert {r["size"] for r in log.replies} == {"64"}
    assert {r["ttl"] for r in log.replies} == {"64"}
    assert log.counts["transmitted"] == "3" and log.counts["received"] == "3" and log.counts["loss"] == "0"
    assert log.at_level("WARNING") == [] and log.at_level("ERROR") == []
    log.assert_summary_agrees()


@pytest.mark.parametrize("size", [0, 1, 1400, 9000])
def test_payload_sizes(lab, size):
    ns = lab.netns()
    status, log = ping(lab, ns, "-a", "127.0.0.1", "-c", 1, "-s", size)
    assert status == 0, log.output
    assert [r["size"] for r in log.replies] == [str(size + 8)]
    log.assert_summary_agrees()


def test_no_permission_is_a_one_line_error(lab):
    ns = lab.netns()  # ping_group_range "1 0": no datagram sockets; nobody may not open raw ones
    result = lab.run(ns, NOBODY + lab.tool("ping", "-a", "127.0.0.1", "-c", 1))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "ERROR" in result.stderr and "no permission for ICMP sockets" in result.stderr


def test_short_interval_refused_for_non_root_allowed_for_root(lab):
    ns = namespace(lab, "datagram")
    result = lab.run(ns, NOBODY + lab.tool("ping", "-a", "127.0.0.1", "-c", 2, "-i", 0.1))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "cannot flood; the minimal interval for non-root users is 0.2s" in result.stderr
    status, log = ping(lab, ns, "-a", "127.0.0.1", "-c", 2, "-i", 0.1)
    assert status == 0, log.output
    assert log.reply_seqs == [1, 2]


def test_unknown_name_is_a_one_line_error(lab):
    ns = lab.netns()  # no route anywhere: the lookup cannot leave the namespace
    result = lab.run(ns, lab.tool("ping", "-a", "no-such-host.invalid", "-c", 1))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "ERROR" in result.stderr and "cannot resolve no-such-host.invalid" in result.stderr


@SOCKET_KINDS
def test_unreachable_address_in_an_empty_namespace(lab, socket_kind):
    ns = namespace(lab, socket_kind)
    status, log = ping(lab, ns, "-a", "10.9.9.9", "-c", 2, "-i", 0.2, unprivileged=socket_kind == "datagram")
    assert status == 1, log.output
    assert [e["text"] for e in log.lines if e["level"] == "WARNING"] == [
        "icmp_seq=1 not sent: Network is unreachable", "icmp_seq=2 not sent: Network is unreachable"]
    assert log.counts == {"transmitted": "2", "received": "0", "duplicates": None, "errors": "2",
                          "loss": "100", "time": log.counts["time"]}
    assert log.rtt is None
    log.assert_summary_agrees()


@SOCKET_KINDS
def test_requests_into_the_void_time_out(lab, socket_kind):
    ns = namespace(lab, socket_kind)
    # The target's link-layer address is known (no neighbour failure, so no ICMP error), but
    # the frames go to a namespace with no addresses, which drops them: only silence comes back.
    lab.veth(ns, "10.9.0.1/24", lab.netns(), None)
    lab.sh(ns, "ip neigh replace 10.9.0.2 lladdr 02:00:00:00:00:02 dev veth0 nud permanent")
    status, log = ping(lab, ns, "-a", "10.9.0.2", "-c", 2, "-i", 0.2, "-W", 0.5,
                       unprivileged=socket_kind == "datagram")
    assert status == 1, log.output
    assert log.lost == [1, 2]
    assert "no reply to icmp_seq=1 within 0.5s" in log.at_level("WARNING")
    assert log.counts["transmitted"] == "2" and log.counts["received"] == "0" and log.counts["loss"] == "100"
    log.assert_summary_agrees()


@SOCKET_KINDS
@pytest.mark.parametrize("version", [4, 6])
def test_icmp_error_reports_the_reason(lab, socket_kind, version):
    """Neighbour resolution fails on a link where nobody answers: the kernel sends us an ICMP
    error (raw socket: a packet quoting our request; datagram socket: the error queue)."""
    ns = namespace(lab, socket_kind, ipv6=version == 6)
    silent = lab.netns(ipv6=version == 6)
    if version == 4:
        local, target, reason = "10.9.0.1", "10.9.0.7", "Destination Host Unreachable"
        lab.veth(ns, "10.9.0.1/24", silent, None)
        family = "ipv4"
    else:
        local, target, reason = "fd00::1", "fd00::7", "Destination unreachable: Address unreachable"
        lab.veth(ns, "fd00::1/64 nodad", silent, None)
        family = "ipv6"
    # One solicitation, 100 ms apart: the failure comes in a fraction of a second.
    lab.sh(ns, "sysctl -qw net.%s.neigh.veth0.mcast_solicit=1 net.%s.neigh.veth0.retrans_time_ms=100"
           % (family, family))
    status, log = ping(lab, ns, "-a", target, "-c", 2, "-i", 0.2, "-W", 3,
                       unprivileged=socket_kind == "datagram")
    assert status == 1, log.output
    assert [(e["source"], e["seq"], e["reason"]) for e in log.errors] == [
        (local, "1", reason), (local, "2", reason)], log.output
    assert log.counts["errors"] == "2" and log.counts["received"] == "0"
    log.assert_summary_agrees()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_with_the_summary(lab, signum):
    ns = lab.netns()
    proc = lab.spawn(ns, lab.tool("ping", "-a", "127.0.0.1", "-i", 0.2))
    lab.wait_log(proc, "icmp_seq=3 ")
    assert lab.stop(proc, signum) == 0
    log = PingLog(proc.output())
    assert "Traceback" not in log.output
    assert log.reply_seqs[:3] == [1, 2, 3]
    assert int(log.counts["transmitted"]) >= 3
    log.assert_summary_agrees()


def test_first_request_goes_out_at_once_with_the_default_interval(lab):
    ns = lab.netns()
    proc = lab.spawn(ns, lab.tool("ping", "-a", "127.0.0.1"))  # -i 30
    lab.wait_log(proc, "icmp_seq=1 ")
    assert lab.stop(proc) == 0
    log = PingLog(proc.output())
    assert log.reply_seqs == [1] and log.counts["transmitted"] == "1"


def test_name_is_re_resolved_after_a_failure(lab):
    ns = lab.netns()
    with netns_etc(ns, {"hosts": "10.9.9.9 peer.test\n"}) as etc:
        proc = lab.spawn(ns, lab.tool("ping", "-a", "peer.test", "-i", 0.3, "-c", 6))
        lab.wait_log(proc, "icmp_seq=1 not sent: Network is unreachable")
        (etc / "hosts").write_text("127.0.0.1 peer.test\n")  # same inode: the bind mount sees it
        assert proc.wait(30) == 0, proc.output()
    log = PingLog(proc.output())
    assert "peer.test now resolves to 127.0.0.1 (was 10.9.9.9)" in log.at_level("INFO")
    assert log.replies and {r["source"] for r in log.replies} == {"127.0.0.1"}
    assert log.counts["transmitted"] == "6"
    log.assert_summary_agrees()


def test_raw_socket_ignores_foreign_icmp_traffic(lab):
    """While bin/ping runs on a raw socket, the namespace is flooded with ICMP that is not an
    answer to it (other identifiers, never-sent sequences, corrupted and truncated packets,
    errors about other requests) and the system ping runs alongside: none of it may count."""
    ns = lab.netns()
    proc = lab.spawn(ns, lab.tool("ping", "-a", "127.0.0.1", "-c", 6, "-i", 0.25, "-W", 1, "-v"))
    lab.wait_log(proc, "raw ICMP socket, identifier")
    ident = int(re.search(r"raw ICMP socket, identifier (\d+)", proc.output()).group(1))
    injector = lab.spawn(ns, program("icmp_injector.py", ident, 2.5))
    system_ping = lab.run(ns, ["ping", "-c", 3, "-i", 0.2, "127.0.0.1"])
    assert system_ping.returncode == 0, system_ping.stdout + system_ping.stderr
    assert proc.wait(30) == 0, proc.output()
    assert injector.wait(30) == 0, injector.output()
    log = PingLog(proc.output())
    assert log.reply_seqs == [1, 2, 3, 4, 5, 6]
    assert log.duplicates == [] and log.errors == [] and log.lost == []
    assert log.at_level("WARNING") == [] and log.at_level("ERROR") == []
    assert log.counts["transmitted"] == "6" and log.counts["received"] == "6"
    log.assert_summary_agrees()
    # The foreign traffic did reach the socket and was dropped for the right reasons.
    debug = "\n".join(log.at_level("DEBUG"))
    # (The 5-byte packets never get here: the kernel's ICMP_FILTER drops what it cannot read.)
    for reason in ("bad ICMP checksum", "ignored EchoReply", "ignored IcmpError", "less than an ICMP header"):
        assert reason in debug, reason


@SOCKET_KINDS
def test_replies_and_errors_about_other_addresses_are_ignored(lab, socket_kind):
    """Issue 10.12: a host on the path sees every request and answers each at once from its
    own address with the right identifier and sequence: a reply for even sequences, an ICMP
    error quoting the request with another destination for odd ones. The target itself is
    silent, so all four requests are lost; none may count as answered or failed."""
    ns = namespace(lab, socket_kind)
    forger_ns = lab.netns()
    lab.veth(ns, "10.9.0.1/24", forger_ns, "10.9.0.3/24")
    # Frames for the target go to a link-layer address nobody has: the forger's veth still
    # receives them (its packet socket sees them; its IP stack drops them).
    lab.sh(ns, "ip neigh replace 10.9.0.2 lladdr 02:00:00:00:00:02 dev veth0 nud permanent")
    forger = lab.spawn(forger_ns, program("icmp_forger.py", "10.9.0.1", "10.9.0.2", "10.9.0.99"))
    lab.wait_log(forger, "forging")
    status, log = ping(lab, ns, "-a", "10.9.0.2", "-c", 4, "-i", 0.2, "-W", 0.5, "-v",
                       unprivileged=socket_kind == "datagram")
    lab.wait_log(forger, "forged reply 4")
    assert status == 1, log.output
    assert_socket_kind(log, socket_kind)
    assert log.replies == [] and log.duplicates == [] and log.errors == [], log.output
    assert log.lost == [1, 2, 3, 4], log.output
    assert log.counts["received"] == "0" and log.counts["errors"] is None
    log.assert_summary_agrees()
    # The forgeries did arrive: the replies are reported as iputils does, the errors dropped.
    assert [text for text in log.at_level("WARNING") if "DIFFERENT ADDRESS" in text] == [
        "64 bytes from 10.9.0.3: icmp_seq=%d ttl=64 (DIFFERENT ADDRESS! expected 10.9.0.2: ignored)" % seq
        for seq in (2, 4)], log.output
    assert sum("ignored IcmpError from" in text for text in log.at_level("DEBUG")) >= 2, log.output


def test_multicast_target_is_answered_by_every_member(lab):
    """All-nodes multicast: every host on the link answers from its own address, so the
    address check (issue 10.12) accepts any source for a multicast destination."""
    ns, neighbour = lab.netns(ipv6=True), lab.netns(ipv6=True)
    lab.veth(ns, "fd00::1/64 nodad", neighbour, "fd00::2/64 nodad")
    status, log = ping(lab, ns, "-a", "ff02::1%veth0", "-c", 2, "-i", 0.2, "-W", 1)
    assert status == 0, log.output
    assert sorted((r["seq"], r["source"]) for r in log.replies + log.duplicates) == [
        ("1", "fd00::1"), ("1", "fd00::2"), ("2", "fd00::1"), ("2", "fd00::2")], log.output
    assert log.counts["received"] == "2" and log.counts["duplicates"] == "2"
    log.assert_summary_agrees()
