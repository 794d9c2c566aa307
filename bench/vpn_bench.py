"""VPN benchmark: tomato bin/vpn against OpenVPN 2.6 and the raw veth, same run.

Two namespaces A (10.9.0.1) and B (10.9.0.2) joined by a veth. On top of it,
both tunnels run side by side for the whole section:

    raw veth   10.9.0.1  <->  10.9.0.2
    tomato     tun0 10.0.1.1/30 <-> 10.0.1.2/30, UDP 5000, the seed's command line
    OpenVPN    tun1 10.0.2.1 <-> 10.0.2.2 (p2p), UDP 1194, AES-256-GCM, TLS with
               self-signed certificates + peer-fingerprint, disable-dco,
               tun-mtu 1400, sndbuf/rcvbuf 4 MiB

iperf3 clients run in B against a one-shot iperf3 server in A (--bidir: one
stream each way at once); pings go B -> A, at 0.2 s intervals and at ping's
default 1 s (cold).
Rounds alternate the order of the systems (A B C, C B A, ...) and each figure
keeps the best round. A system that fails to come up is n/a with the reason.

The TCP-transport part (run_tcp_transport) routes A (10.9.1.1) and B (10.9.2.2)
through a router namespace R instead, with four tunnels side by side: tomato over
UDP and over TCP (--transport tcp), OpenVPN over UDP and over TCP (proto
tcp-server in A, tcp-client in B). Single-stream iperf3 TCP through each, without
loss and with `tc netem loss 1%` on both of R's egress interfaces (or an equivalent
nftables random drop where the kernel has no sch_netem). A's and B's
veths do no TCP/UDP segmentation offload there, so what R forwards (and netem
drops) are single packets, as on a real wire, not 64 KiB GSO batches.
"""
import json
import re
import subprocess
import time

from benchlib import (HIGHER, LOWER, BenchLab, Figure, Unavailable, best, log, log_tail,  # noqa: F401
                      na_reason, tool_argv, run_rounds)
from procstat import process_cpu_seconds

VETH_A, VETH_B = "10.9.0.1", "10.9.0.2"
TOMATO_A, OPENVPN_A = "10.0.1.1", "10.0.2.1"
IDLE_SETTLE_SECONDS = 3     # > the keep-warm window of tomato_gevent/vpn/scheduler.py
TUN_MTU = 1400
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
IPERF_PORT = 5201
TOMATO_PORT = 5000
OPENVPN_PORT = 1194

VETH, TOMATO, OPENVPN = "raw veth", "tomato", "OpenVPN"
TOMATO_TCP, OPENVPN_TCP = "tomato TCP", "OpenVPN TCP"
# Address in A that B's clients target, per system.
TARGET = {VETH: VETH_A, TOMATO: TOMATO_A, OPENVPN: OPENVPN_A, TOMATO_TCP: "10.0.3.1", OPENVPN_TCP: "10.0.4.1"}
TUN_DEVICE = {TOMATO: "tun0", OPENVPN: "tun1", TOMATO_TCP: "tun2", OPENVPN_TCP: "tun3"}
# system -> (transport/proto, port); the tun addresses are TARGET[system] and its .2 twin.
TUNNEL = {TOMATO: ("udp", TOMATO_PORT), TOMATO_TCP: ("tcp", TOMATO_PORT + 1),
          OPENVPN: ("udp", OPENVPN_PORT), OPENVPN_TCP: ("tcp", OPENVPN_PORT + 1)}
ROUTED_A, ROUTED_B = "10.9.1.1", "10.9.2.2"
LOSS_PERCENT = 1
# TCP payload per full-size segment inside a 1400-byte tun MTU: IPv4 20 + TCP 20 + timestamps 12.
TCP_MSS_BYTES = TUN_MTU - 20 - 20 - 12
WARM_PING_SECONDS = 0.2     # 5 pings/s
COLD_PING_SECONDS = 1.0     # ping's default interval
# Ratios tomato / OpenVPN that issue 19 asks for: at least (HIGHER rows), at most (LOWER rows).
TARGET_TCP, TARGET_BIDIR = 2.0, 1.5
TARGET_CPU_SENDING, TARGET_CPU_RECEIVING = 0.5, 0.6
TARGET_RTT_WARM, TARGET_RTT_COLD, TARGET_CPU_PINGS = 1.0, 1.5, 5.0
TARGET_UDP_PPS, TARGET_LOSS_UDP = 1.0, 1.0


def b_side(system):
    """B's tun address of a system: TARGET's .2 twin."""
    return TARGET[system][:-1] + "2"


class VpnLab:
    """The two namespaces and the tunnels between them; `up` maps system -> True or n/a reason.

    routed=True puts a router namespace R between A and B (see the module docstring)."""

    def __init__(self, lab: BenchLab, routed=False):
        self.lab = lab
        self.a = lab.netns()
        self.b = lab.netns()
        if routed:
            self.r = lab.netns()
            self.wan_a, self.wan_b = ROUTED_A, ROUTED_B
            lab.veth(self.a, ROUTED_A + "/24", self.r, "10.9.1.254/24", name_b="ra")
            lab.veth(self.r, "10.9.2.254/24", self.b, ROUTED_B + "/24", name_a="rb")
            lab.ns_ok(self.r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            lab.ns_ok(self.a, ["ip", "route", "add", "10.9.2.0/24", "via", "10.9.1.254"])
            lab.ns_ok(self.b, ["ip", "route", "add", "10.9.1.0/24", "via", "10.9.2.254"])
            for ns in (self.a, self.b):
                lab.ns_ok(ns, ["ethtool", "-K", "veth0", "tso", "off", "tx-udp-segmentation", "off"])
        else:
            self.r = None
            self.wan_a, self.wan_b = VETH_A, VETH_B
            lab.veth(self.a, VETH_A + "/24", self.b, VETH_B + "/24")
        self.up = {VETH: True}
        self.procs = {}
        # system -> [(sender-side us/packet, receiver-side us/packet)] per TCP run
        self.cpu_per_packet = {}
        # ping interval (s) -> system -> [% of a core used by both processes during a ping run] per round
        self.cpu_during_ping = {}

    @property
    def tomato_procs(self):
        return self.procs.get(TOMATO, [])

    @property
    def openvpn_procs(self):
        return self.procs.get(OPENVPN, [])

    def set_loss(self, percent):
        """Random packet loss of `percent` % on both of R's egress interfaces (0: none); returns
        how: tc netem, or, on a kernel without sch_netem, an nftables rule in R's forward chain
        (numgen random: each forwarded packet dropped with that probability)."""
        lab, r = self.lab, self.r
        for dev in ("ra", "rb"):
            lab.run(r, ["tc", "qdisc", "del", "dev", dev, "root"])
        lab.run(r, ["nft", "delete", "table", "inet", "bench_loss"])
        if not percent:
            return None
        try:
            for dev in ("ra", "rb"):
                lab.ns_ok(r, ["tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "%g%%" % percent])
            return "tc netem loss %g%%" % percent
        except Unavailable:
            lab.ns_ok(r, ["nft", "add", "table", "inet", "bench_loss"])
            lab.ns_ok(r, ["nft", "add", "chain", "inet", "bench_loss", "forward",
                          "{ type filter hook forward priority 0; }"])
            lab.ns_ok(r, ["nft", "add", "rule", "inet", "bench_loss", "forward",
                          "numgen", "random", "mod", "1000", "<", str(int(percent * 10)), "drop"])
            return "nftables numgen random drop %g%% (no sch_netem in this kernel)" % percent

    # -- the systems under test ---------------------------------------------------
    def start_tomato(self, system=TOMATO):
        """bin/vpn exactly as the seed's README: pre-created tun, mtu 1400, /30 addresses
        (plus --transport tcp for TOMATO_TCP)."""
        try:
            lab = self.lab
            transport, port = TUNNEL[system]
            dev, addr_a = TUN_DEVICE[system], TARGET[system]
            addr_b = b_side(system)
            lab.tun(self.a, dev, addr_a + "/30", mtu=TUN_MTU)
            lab.tun(self.b, dev, addr_b + "/30", mtu=TUN_MTU)
            extra = ["--transport", transport] if transport != "udp" else []
            self.procs[system] = [
                lab.spawn(self.a, tool_argv("vpn", "-la", ":%d" % port, "-lp", "pwd1", "-pa",
                                            "%s:%d" % (self.wan_b, port), "-pp", "pwd2", "-I", dev, *extra)),
                lab.spawn(self.b, tool_argv("vpn", "-la", ":%d" % port, "-lp", "pwd2", "-pa",
                                            "%s:%d" % (self.wan_a, port), "-pp", "pwd1", "-I", dev, *extra)),
            ]
            for proc in self.procs[system]:
                lab.wait_alive(proc, lambda: True, 1, "bin/vpn")
            self._wait_tunnel(self.procs[system], addr_a, "bin/vpn")
            self.up[system] = True
        except (Unavailable, OSError, subprocess.SubprocessError) as exc:
            self.up[system] = "n/a: %s" % exc
        return self.up[system]

    def start_openvpn(self, system=OPENVPN):
        try:
            configs = write_openvpn_configs(self.lab, self.lab.tmpdir / ("openvpn-%s" % TUN_DEVICE[system]),
                                            system, self.wan_a, self.wan_b)
            self.procs[system] = [self.lab.spawn(ns, ["openvpn", "--config", str(conf)])
                                  for ns, conf in zip((self.a, self.b), configs)]
            for proc in self.procs[system]:
                self.lab.wait_alive(proc, lambda p=proc: "Initialization Sequence Completed" in p.output(),
                                    30, "openvpn")
            self._wait_tunnel(self.procs[system], TARGET[system], "openvpn")
            self.up[system] = True
        except (Unavailable, OSError, subprocess.SubprocessError) as exc:
            self.up[system] = "n/a: %s" % exc
        return self.up[system]

    def check_alive(self, system):
        """False (and up[system] becomes the reason) once a tunnel process has exited mid-run."""
        for proc in self.procs.get(system, []):
            if proc.poll() is not None:
                self.up[system] = "n/a: %s exited during the benchmark (status %s): %s" % (
                    "bin/vpn" if system in (TOMATO, TOMATO_TCP) else "openvpn", proc.returncode, log_tail(proc))
                return False
        return self.up.get(system) is True

    def _wait_tunnel(self, procs, addr, what):
        def answers():
            for proc in procs:
                if proc.poll() is not None:
                    raise Unavailable("%s exited with status %s: %s" % (what, proc.returncode, log_tail(proc)))
            return self.lab.pings(self.b, addr)
        self.lab.wait_alive(procs[0], answers, 30, "%s tunnel to answer ping %s" % (what, addr))

    # -- measurements (client in B, server in A) ----------------------------------
    def _iperf(self, system, client_args, seconds):
        lab = self.lab
        server = lab.spawn(self.a, ["iperf3", "-s", "-1", "-p", IPERF_PORT])
        try:
            lab.wait_tcp_listening(self.a, IPERF_PORT)
            done = lab.run(self.b, ["iperf3", "-c", TARGET[system], "-p", IPERF_PORT, "-t", seconds, "-J",
                                    *client_args], timeout=seconds + 30)
        finally:
            lab.stop(server, timeout=3)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            raise Unavailable("iperf3 printed no JSON: %s" % (done.stderr.strip() or "no output")) from None
        if "error" in report:
            raise Unavailable("iperf3: %s" % report["error"])
        return report

    def tcp_mbit(self, system, seconds):
        """iperf3 TCP single stream B -> A, receiver's Mbit/s.

        For the tunnels it also records each side's CPU time per full-size data
        packet in self.cpu_per_packet: process CPU (user + system) over the run
        divided by TCP payload / MSS. Packet counters cannot be the divisor: with
        GSO/GRO one counted "packet" on the tun or the veth may be 40 segments.
        """
        procs = self.procs.get(system)
        before = [cpu_seconds(p.pid) for p in procs] if procs else None
        report = self._iperf(system, [], seconds)
        received = report["end"]["sum_received"]
        if procs:
            after = [cpu_seconds(p.pid) for p in procs]
            packets = received["bytes"] / TCP_MSS_BYTES
            per_side = [(c1 - c0) * 1e6 / packets for c0, c1 in zip(before, after)]
            # procs are (A = receiver, B = sender); keep (sender, receiver).
            self.cpu_per_packet.setdefault(system, []).append((per_side[1], per_side[0]))
        return received["bits_per_second"] / 1e6

    def tcp_bidir_mbit(self, system, seconds):
        """iperf3 --bidir, one TCP stream each way at once: (B -> A, A -> B) receivers' Mbit/s."""
        return parse_bidir_mbit(self._iperf(system, ["--bidir"], seconds))

    def udp_pps(self, system, seconds, payload=64):
        """iperf3 UDP at unlimited rate with small payloads: (received packets/s, loss %)."""
        report = self._iperf(system, ["-u", "-l", payload, "-b", "0"], seconds)
        total = report["end"]["sum"]
        received = total["packets"] - total["lost_packets"]
        return received / total["seconds"], total["lost_percent"]

    def ping_avg_ms(self, system, count, interval=WARM_PING_SECONDS):
        """Average RTT B -> A; also records the tunnel's CPU (% of a core, both processes) meanwhile
        in cpu_during_ping[interval][system]."""
        procs = self.procs.get(system)
        t0 = time.monotonic()
        before = sum(cpu_seconds(p.pid) for p in procs) if procs else None
        done = self.lab.run(self.b, ["ping", "-q", "-c", count, "-i", interval, TARGET[system]],
                            timeout=count * interval + 10)
        average = parse_ping_avg_ms(done.stdout)
        if procs:
            used = sum(cpu_seconds(p.pid) for p in procs) - before
            self.cpu_during_ping.setdefault(interval, {}).setdefault(system, []).append(
                used * 100 / (time.monotonic() - t0))
        return average


def parse_bidir_mbit(report):
    """(client -> server, server -> client) receivers' Mbit/s from `iperf3 -c --bidir -J`'s report."""
    end = report["end"]
    try:
        there, back = end["sum_received"], end["sum_received_bidir_reverse"]
    except KeyError:
        raise Unavailable("iperf3 reported no reverse direction (older than 3.7, no --bidir?)") from None
    return there["bits_per_second"] / 1e6, back["bits_per_second"] / 1e6


def parse_ping_avg_ms(output):
    """The average RTT of `ping -q`'s summary ("rtt min/avg/max/mdev = a/b/c/d ms"), in ms."""
    match = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", output)
    if not match:
        raise Unavailable("ping: %s" % (output.strip().splitlines()[-1:] or ["no output"])[0])
    return float(match.group(2))


def cpu_seconds(pid):
    """CPU time of a process so far, in seconds: the scheduler's nanosecond count over all its
    threads, ended ones included (procstat.process_cpu_seconds). Summing /proc/PID/task/*/schedstat
    lost the time of a thread that ended between two samples (an idle figure of -12.8 % of a core);
    /proc/PID/stat's 10 ms clock ticks are too coarse for a process that wakes for microseconds."""
    return process_cpu_seconds(pid)


def write_openvpn_configs(lab, directory, system=OPENVPN, wan_a=VETH_A, wan_b=VETH_B):
    """Self-signed certificates (openssl, now) and the two p2p configs; returns their paths.

    OPENVPN_TCP: proto tcp-server in A, tcp-client in B; everything else the same."""
    directory.mkdir(parents=True, exist_ok=True)
    fingerprints = {}
    for side in ("a", "b"):
        lab.ns_ok(None, ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-days", "1", "-subj", "/CN=tomato-bench-%s" % side,
                         "-keyout", directory / ("%s.key" % side), "-out", directory / ("%s.crt" % side)])
        out = lab.ns_ok(None, ["openssl", "x509", "-in", directory / ("%s.crt" % side),
                               "-noout", "-fingerprint", "-sha256"]).stdout
        fingerprints[side] = out.strip().split("=", 1)[1]
    proto, port = TUNNEL[system]
    protos = ("tcp-server", "tcp-client") if proto == "tcp" else ("udp", "udp")
    addr_a = TARGET[system]
    addr_b = b_side(system)
    paths = []
    for side, peer, role, proto, local, remote, addr, peer_addr in (
            ("a", "b", "tls-server\ndh none", protos[0], wan_a, wan_b, addr_a, addr_b),
            ("b", "a", "tls-client", protos[1], wan_b, wan_a, addr_b, addr_a)):
        conf = directory / ("%s.conf" % side)
        conf.write_text("\n".join([
            "dev %s" % TUN_DEVICE[system], "dev-type tun", "proto %s" % proto,
            "local %s" % local, "lport %d" % port,
            "remote %s %d" % (remote, port),
            "ifconfig %s %s" % (addr, peer_addr),
            role,
            "cert %s" % (directory / ("%s.crt" % side)),
            "key %s" % (directory / ("%s.key" % side)),
            "peer-fingerprint %s" % fingerprints[peer],
            "data-ciphers AES-256-GCM",
            "disable-dco",
            "tun-mtu %d" % TUN_MTU,
            "sndbuf %d" % SOCKET_BUFFER_BYTES, "rcvbuf %d" % SOCKET_BUFFER_BYTES,
            "verb 3", ""]))
        paths.append(conf)
    return paths


def run(lab, quick=False, rounds=None):
    """All VPN figures; returns a list of Figure."""
    tcp_seconds = 3 if quick else 10
    udp_seconds = 2 if quick else 5
    ping_count = 10 if quick else 20
    cold_ping_count = 5 if quick else 10
    rounds = rounds or (2 if quick else 3)

    vpn = VpnLab(lab)
    log("vpn: starting OpenVPN (p2p, AES-256-GCM, TLS, peer-fingerprint, disable-dco)")
    up = vpn.start_openvpn()
    log("vpn: OpenVPN %s", "up" if up is True else up)
    log("vpn: starting tomato bin/vpn (seed command line)")
    up = vpn.start_tomato()
    log("vpn: tomato %s", "up" if up is True else up)

    systems = [VETH, OPENVPN, TOMATO]
    figures = []

    idle_seconds = 2 if quick else 4
    log("vpn: CPU of both tunnel processes while idle, %d s", idle_seconds)
    idle = Figure("VPN", "CPU while idle, both processes (%d s, no traffic)" % idle_seconds, "% of a core", LOWER,
                  reference_name="OpenVPN 2.6")
    procs = {s: p for s, p in ((TOMATO, vpn.tomato_procs), (OPENVPN, vpn.openvpn_procs)) if vpn.check_alive(s)}
    # Start-up traffic (keepalives, the liveness probe) keeps tomato's path warm for
    # 2 s after the last packet (scheduler.py); idle means after that window has closed.
    time.sleep(IDLE_SETTLE_SECONDS)
    before = {s: sum(cpu_seconds(p.pid) for p in ps) for s, ps in procs.items()}
    time.sleep(idle_seconds)
    usage = {s: (sum(cpu_seconds(p.pid) for p in ps) - before[s]) * 100 / idle_seconds for s, ps in procs.items()}
    idle.tomato, idle.reference = usage.get(TOMATO), usage.get(OPENVPN)
    idle.tomato_na = "" if idle.tomato is not None else na_reason(vpn, {}, TOMATO)
    idle.reference_na = "" if idle.reference is not None else na_reason(vpn, {}, OPENVPN)
    idle.note = ("CPU time / wall time, from %d s after the last packet "
                 "(tomato keeps its path warm for 2 s after traffic)" % IDLE_SETTLE_SECONDS)
    figures.append(idle)

    def figure(name, unit, better, values, errors, note_fmt=None, target=None):
        fig = Figure("VPN", name, unit, better, reference_name="OpenVPN 2.6", target=target)
        fig.tomato_rounds, fig.reference_rounds = values[TOMATO], values[OPENVPN]
        fig.tomato = best(values[TOMATO], better)
        fig.reference = best(values[OPENVPN], better)
        fig.tomato_na = "" if fig.tomato is not None else na_reason(vpn, errors, TOMATO)
        fig.reference_na = "" if fig.reference is not None else na_reason(vpn, errors, OPENVPN)
        veth = best(values.get(VETH, []), better)
        if note_fmt and veth is not None:
            fig.note = note_fmt % veth
        figures.append(fig)
        return fig

    log("vpn: iperf3 TCP single stream, %d s x %d rounds per system", tcp_seconds, rounds)
    values, errors = run_rounds(vpn, systems, rounds, lambda s: _logged(s, "Mbit/s", vpn.tcp_mbit(s, tcp_seconds)))
    figure("TCP throughput, 1 stream (iperf3 %d s)" % tcp_seconds, "Mbit/s", HIGHER, values, errors,
           "raw veth: %.0f Mbit/s", TARGET_TCP)

    for side, index, target in (("sending", 0, TARGET_CPU_SENDING), ("receiving", 1, TARGET_CPU_RECEIVING)):
        fig = Figure("VPN", "CPU time per full-size data packet, %s side (TCP run)" % side, "µs", LOWER,
                     reference_name="OpenVPN 2.6", target=target)
        fig.tomato_rounds = [r[index] for r in vpn.cpu_per_packet.get(TOMATO, [])]
        fig.reference_rounds = [r[index] for r in vpn.cpu_per_packet.get(OPENVPN, [])]
        fig.tomato, fig.reference = best(fig.tomato_rounds, LOWER), best(fig.reference_rounds, LOWER)
        fig.tomato_na = "" if fig.tomato is not None else na_reason(vpn, errors, TOMATO)
        fig.reference_na = "" if fig.reference is not None else na_reason(vpn, errors, OPENVPN)
        fig.note = "process CPU time / (TCP payload / %d-byte MSS); includes the ACKs" % TCP_MSS_BYTES
        figures.append(fig)

    log("vpn: iperf3 TCP both directions at once (--bidir, 1 stream each way), %d s x %d rounds per system",
        tcp_seconds, rounds)
    directions = {}

    def measure_bidir(system):
        there, back = vpn.tcp_bidir_mbit(system, tcp_seconds)
        directions.setdefault(system, []).append((there, back))
        return _logged(system, "Mbit/s (B->A %.0f + A->B %.0f)" % (there, back), there + back)

    values, errors = run_rounds(vpn, systems, rounds, measure_bidir)
    bidir = figure("TCP throughput, both directions at once (iperf3 --bidir, 1 stream each way, %d s), sum"
                   % tcp_seconds, "Mbit/s", HIGHER, values, errors, "raw veth: %.0f Mbit/s", TARGET_BIDIR)
    bidir.note = "; ".join(filter(None, [bidir_split_note(directions), bidir.note]))

    log("vpn: ping RTT, %d pings at %g s x %d rounds per system", ping_count, WARM_PING_SECONDS, rounds)
    values, errors = run_rounds(vpn, systems, rounds, lambda s: _logged(s, "ms", vpn.ping_avg_ms(s, ping_count)))
    log("vpn: ping RTT, %d pings at %g s (cold) x %d rounds per system", cold_ping_count, COLD_PING_SECONDS, rounds)
    cold_values, cold_errors = run_rounds(vpn, systems, rounds, lambda s: _logged(
        s, "ms", vpn.ping_avg_ms(s, cold_ping_count, COLD_PING_SECONDS)))
    rtt = figure("ping RTT at %g s intervals, average of %d" % (WARM_PING_SECONDS, ping_count), "ms", LOWER,
                 values, errors, "raw veth: %.3f ms", TARGET_RTT_WARM)
    cold = figure("ping RTT at %g s intervals (cold: ping's default), average of %d"
                  % (COLD_PING_SECONDS, cold_ping_count), "ms", LOWER, cold_values, cold_errors,
                  "raw veth: %.3f ms", TARGET_RTT_COLD)
    cold_cpu = vpn.cpu_during_ping.get(COLD_PING_SECONDS, {})
    cold.note = "; ".join(filter(None, [cold.note] + [
        "%s CPU meanwhile %.3f %% of a core" % (s, best(cold_cpu[s], LOWER)) for s in (TOMATO, OPENVPN)
        if best(cold_cpu.get(s, []), LOWER) is not None]))
    veth_rtt = best(values[VETH], LOWER)
    if veth_rtt is not None:
        added = Figure("VPN", "added latency at %g s intervals (RTT minus raw veth RTT)" % WARM_PING_SECONDS, "ms",
                       LOWER, reference_name="OpenVPN 2.6")
        added.tomato = None if rtt.tomato is None else rtt.tomato - veth_rtt
        added.reference = None if rtt.reference is None else rtt.reference - veth_rtt
        added.tomato_na, added.reference_na = rtt.tomato_na, rtt.reference_na
        figures.append(added)

    warm_cpu = vpn.cpu_during_ping.get(WARM_PING_SECONDS, {})
    light = figure("CPU during the ping run (%g pings/s), both processes" % (1 / WARM_PING_SECONDS), "% of a core",
                   LOWER, {VETH: [], TOMATO: warm_cpu.get(TOMATO, []), OPENVPN: warm_cpu.get(OPENVPN, [])}, errors,
                   target=TARGET_CPU_PINGS)
    light.note = "tomato warms its path once before each expected ping (warmth.py); CPU time / wall time"

    log("vpn: iperf3 UDP 64-byte payloads, unlimited rate, %d s x %d rounds per system", udp_seconds, rounds)
    loss = {}

    def measure_udp(system):
        pps, lost = vpn.udp_pps(system, udp_seconds)
        loss.setdefault(system, []).append(lost)
        return _logged(system, "pps (loss %.0f %%)" % lost, pps)

    values, errors = run_rounds(vpn, systems, max(1, rounds - 1), measure_udp)
    udp = figure("UDP 64-byte packets/s received (iperf3 -u -b 0, %d s)" % udp_seconds, "pkt/s", HIGHER,
                 values, errors, "raw veth: %.0f pkt/s", TARGET_UDP_PPS)
    losses = ["%s loss %s %%" % (s, "/".join("%.0f" % x for x in loss[s])) for s in (TOMATO, OPENVPN) if s in loss]
    udp.note = "; ".join(filter(None, [udp.note] + losses))
    return figures


def run_tcp_transport(lab, quick=False, rounds=None):
    """tomato over TCP vs OpenVPN over TCP, and both transports of both under 1 % loss.

    Returns a list of Figure: tomato TCP vs OpenVPN TCP without loss; then, with netem
    loss on the router, tomato UDP vs OpenVPN UDP and tomato TCP vs OpenVPN TCP."""
    tcp_seconds = 3 if quick else 10
    rounds = rounds or (2 if quick else 3)
    vpn = VpnLab(lab, routed=True)
    for system, start in ((OPENVPN, vpn.start_openvpn), (OPENVPN_TCP, vpn.start_openvpn),
                          (TOMATO, vpn.start_tomato), (TOMATO_TCP, vpn.start_tomato)):
        log("vpn-tcp: starting %s (routed through R)", system)
        up = start(system)
        log("vpn-tcp: %s %s", system, "up" if up is True else up)

    figures = []

    def compare(name, tomato, reference, reference_name, values, errors):
        fig = Figure("VPN over TCP", name, "Mbit/s", HIGHER, reference_name=reference_name)
        fig.tomato_rounds, fig.reference_rounds = values.get(tomato, []), values.get(reference, [])
        fig.tomato, fig.reference = best(fig.tomato_rounds, HIGHER), best(fig.reference_rounds, HIGHER)
        fig.tomato_na = "" if fig.tomato is not None else na_reason(vpn, errors, tomato)
        fig.reference_na = "" if fig.reference is not None else na_reason(vpn, errors, reference)
        figures.append(fig)
        return fig

    def measure(system):
        return _logged(system, "Mbit/s", vpn.tcp_mbit(system, tcp_seconds))

    log("vpn-tcp: iperf3 TCP single stream through the TCP transports, %d s x %d rounds", tcp_seconds, rounds)
    values, errors = run_rounds(vpn, [OPENVPN_TCP, TOMATO_TCP], rounds, measure)
    compare("TCP throughput over the TCP transport, 1 stream (iperf3 %d s)" % tcp_seconds, TOMATO_TCP, OPENVPN_TCP,
            "OpenVPN 2.6 proto tcp", values, errors)

    how = vpn.set_loss(LOSS_PERCENT)
    log("vpn-tcp: the same with %s on the router, all four tunnels", how)
    try:
        values, errors = run_rounds(vpn, [OPENVPN, TOMATO, OPENVPN_TCP, TOMATO_TCP], rounds, measure)
    finally:
        vpn.set_loss(0)
    for transport, tomato, reference in (("UDP", TOMATO, OPENVPN), ("TCP", TOMATO_TCP, OPENVPN_TCP)):
        fig = compare("TCP throughput, %g %% loss, %s transport (iperf3 %d s)" % (LOSS_PERCENT, transport, tcp_seconds),
                      tomato, reference, "OpenVPN 2.6 proto %s" % transport.lower(), values, errors)
        fig.note = "loss on the router: " + how
        fig.target = TARGET_LOSS_UDP if transport == "UDP" else None
    return figures


def bidir_split_note(directions):
    """Each system's two directions in its best --bidir round (the one with the largest sum), for the note:
    "tomato B->A 700 + A->B 650 Mbit/s; ...". directions: system -> [(B->A, A->B) Mbit/s] per good round."""
    parts = []
    for system in (TOMATO, OPENVPN):
        if directions.get(system):
            there, back = max(directions[system], key=sum)
            parts.append("%s B->A %.0f + A->B %.0f Mbit/s" % (system, there, back))
    return "; ".join(parts)


def _logged(system, unit, value):
    log("  %-9s %10.3f %s", system, value, unit)
    return value
