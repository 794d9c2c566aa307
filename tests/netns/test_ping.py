"""End-to-end: the real bin/ping in network namespaces.

Both socket kinds are driven: raw sockets (root; a new namespace's ping_group_range is
"1 0", so root falls back to raw) and unprivileged ICMP datagram sockets (the group is
added to the namespace's ping_group_range and the tool runs as nobody via setpriv).
Every run checks that the closing summary agrees with the reply/loss/error lines
(PingLog.assert_summary_agrees). PingLog and netns_etc are reused by test_ping_through_vpn.py.
"""
import re
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+)\s+(?P<logger>[\w.]+): (?P<text>.*)$")
REPLY = re.compile(r"^(?P<size>\d+) bytes from (?P<source>\S+): icmp_seq=(?P<seq>\d+)(?: ttl=(?P<ttl>\d+))?"
                   r" time=(?P<ms>\d+\.\d{3}) ms(?P<note>.*)$")
LOST = re.compile(r"^no reply to icmp_seq=(?P<seq>\d+) within \S+s$")
ICMP_ERROR = re.compile(r"^(?:From (?P<source>\S+) )?icmp_seq=(?P<seq>\d+) (?P<reason>.+)$")
COUNTS = re.compile(r"^(?P<transmitted>\d+) packets transmitted, (?P<received>\d+) received"
                    r"(?:, \+(?P<duplicates>\d+) duplicates)?(?:, \+(?P<errors>\d+) errors)?"
                    r", (?P<loss>[\d.]+)% packet loss, time (?P<time>\d+)ms$")
RTT = re.compile(r"^rtt min/avg/max/mdev = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+)/(?P<mdev>[\d.]+) ms$")


class PingLog:
    def __init__(self, output):
        self.output = output
        self.lines = [m.groupdict() for m in map(LOG_LINE.match, output.splitlines()) if m]
        texts = [line["text"] for line in self.lines]
        self.replies = [m.groupdict() for m in map(REPLY.match, texts) if m and not m["note"]]
        self.duplicates = [m.groupdict() for m in map(REPLY.match, texts) if m and "DUP!" in m["note"]]
        self.lost = [int(m["seq"]) for m in map(LOST.match, texts) if m]
        self.errors = [m.groupdict() for m in map(ICMP_ERROR.match, texts) if m]
        counts = [m.groupdict() for m in map(COUNTS.match, texts) if m]
        rtts = [m.groupdict() for m in map(RTT.match, texts) if m]
        self.counts = counts[-1] if counts else None
        self.rtt = {k: float(v) for k, v in rtts[-1].items()} if rtts else None

    @property
    def reply_seqs(self):
        return [int(r["seq"]) for r in self.replies]

    def at_level(self, level):
        return [line["text"] for line in self.lines if line["level"] == level]

    def assert_summary_agrees(self):
        """The summary counts exactly the events logged above it, and its RTTs are theirs."""
        assert self.counts is not None, "no summary in:\n" + self.output
        transmitted, received = int(self.counts["transmitted"]), int(self.counts["received"])
        errors = int(self.counts["errors"] or 0)
        assert received == len(self.replies), self.output
        assert errors == len(self.errors), self.output
        assert int(self.counts["duplicates"] or 0) == len(self.duplicates), self.output
        # Every request ends as one reply, loss or error line, except those still out at a signal.
        accounted = len(self.replies) + len(self.lost) + len(self.errors)
        assert accounted <= transmitted, self.output
        assert float(self.counts["loss"]) == round((transmitted - received) * 100.0 / transmitted, 4), self.output
        if not received:
            assert self.rtt is None, self.output
            return
        times = [float(r["ms"]) for r in self.replies]
        assert self.rtt["min"] == min(times), self.output
        assert self.rtt["max"] == max(times), self.output
        mean = sum(times) / len(times)
        assert abs(self.rtt["avg"] - mean) <= 0.0015, self.output  # lines are rounded to 1 us
        mdev = (sum(t * t for t in times) / len(times) - mean * mean) ** 0.5 if len(times) > 1 else 0.0
        assert abs(self.rtt["mdev"] - mdev) <= 0.003, self.output


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


# The start of the packet-writing scripts below: an ICMP message with its checksum
# (written out again rather than imported, so that the scripts test the codec, not use it).
ICMP_SCRIPT = r'''
import socket, struct, sys, time

def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def icmp(kind, code, rest, body=b"", good=True):
    message = struct.pack("!BBHI", kind, code, 0, rest) + body
    value = checksum(message) if good else checksum(message) ^ 0x5555
    return message[:2] + struct.pack("!H", value) + message[4:]
'''

INJECTOR = ICMP_SCRIPT + r'''
ident, seconds = int(sys.argv[1]), float(sys.argv[2])

def quoted_request(req_ident, seq):
    request = icmp(8, 0, (req_ident << 16) | seq, bytes(range(8)))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(request), 0, 0, 64, 1, 0,
                         socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    return header + request

payload = bytes(i & 0xFF for i in range(56))
other = ident ^ 0x5A5A
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline, rounds = time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    for seq in range(1, 7):
        for packet in (
            icmp(0, 0, (other << 16) | seq, payload),               # someone else's replies
            icmp(0, 0, (ident << 16) | (seq + 4000), payload),      # our identifier, never-sent sequence
            icmp(0, 0, (ident << 16) | seq, payload, good=False),   # our request's reply, corrupted
            icmp(0, 0, (ident << 16) | seq)[:5],                    # truncated
            icmp(3, 1, 0, quoted_request(other, seq)),              # error about someone else's request
            icmp(3, 1, 0, quoted_request(ident, seq + 4000)),       # error about a request never sent
            icmp(3, 1, 0, quoted_request(ident, seq)[:24]),         # error with a cut-off quote
            icmp(13, 0, 0, bytes(12)),                              # timestamp request
        ):
            s.sendto(packet, ("127.0.0.1", 0))
    rounds += 1
    time.sleep(0.01)
print("rounds", rounds, flush=True)
'''


def test_raw_socket_ignores_foreign_icmp_traffic(lab):
    """While bin/ping runs on a raw socket, the namespace is flooded with ICMP that is not an
    answer to it (other identifiers, never-sent sequences, corrupted and truncated packets,
    errors about other requests) and the system ping runs alongside: none of it may count."""
    ns = lab.netns()
    proc = lab.spawn(ns, lab.tool("ping", "-a", "127.0.0.1", "-c", 6, "-i", 0.25, "-W", 1, "-v"))
    lab.wait_log(proc, "raw ICMP socket, identifier")
    ident = int(re.search(r"raw ICMP socket, identifier (\d+)", proc.output()).group(1))
    injector = lab.spawn(ns, [sys.executable, "-c", INJECTOR, ident, 2.5])
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


FORGER = ICMP_SCRIPT + r'''
pinger, target, elsewhere = sys.argv[1:4]

sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
sniffer.bind(("veth0", 0))
sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
print("forging", flush=True)
while True:
    packet = sniffer.recv(65535)
    header_size = (packet[0] & 0x0F) * 4
    request = packet[header_size:]
    if packet[9] != 1 or packet[16:20] != socket.inet_aton(target) or request[0] != 8:
        continue
    ident, seq = struct.unpack_from("!HH", request, 4)
    if seq % 2:  # an ICMP error quoting the request, as if it had gone elsewhere
        quote = packet[:16] + socket.inet_aton(elsewhere) + packet[20:header_size] + request[:8]
        forged = icmp(3, 1, 0, quote)
    else:  # a reply with the request's identifier, sequence and payload
        forged = icmp(0, 0, (ident << 16) | seq, request[8:])
    sender.sendto(forged, (pinger, 0))
    print("forged", "error" if seq % 2 else "reply", seq, flush=True)
'''


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
    forger = lab.spawn(forger_ns, [sys.executable, "-c", FORGER, "10.9.0.1", "10.9.0.2", "10.9.0.99"])
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
