"""Tests of the bench harness's pure parts (no root, no network): .venv/bin/python -m pytest -q bench"""
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_vpn  # noqa: E402
import proxy_bench  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
from benchlib import HIGHER, LOWER, Figure, Unavailable, best, run_json  # noqa: E402


def test_best_takes_the_best_round_and_skips_failed_ones():
    assert best([3.0, None, 5.0], HIGHER) == 5.0
    assert best([3.0, None, 5.0], LOWER) == 3.0
    assert best([None, None]) is None
    assert best([]) is None


def test_ratio_is_tomato_over_reference_and_none_when_either_is_missing():
    assert Figure("VPN", "x", "Mbit/s", tomato=900.0, reference=600.0).ratio == pytest.approx(1.5)
    assert Figure("VPN", "x", "Mbit/s", tomato=None, reference=600.0).ratio is None
    assert Figure("VPN", "x", "Mbit/s", tomato=1.0, reference=0.0).ratio is None
    assert Figure("VPN", "x", "Mbit/s", tomato=1.0).to_json()["ratio"] is None


def test_markdown_shows_values_ratio_and_na_reason():
    meta = {"date_utc": "2026-01-01 09:30 UTC", "duration_s": 400, "commit": "abc1234", "machine": "cpu",
            "tools": {"openvpn": "2.6.14"}, "command": "make bench", "quick": False}
    figures = [
        Figure("VPN", "TCP throughput", "Mbit/s", tomato=812.4, reference=650.0, reference_name="OpenVPN 2.6",
               note="raw veth: 20000 Mbit/s"),
        Figure("VPN", "ping RTT", "ms", LOWER, tomato=None, reference=0.25, reference_name="OpenVPN 2.6",
               tomato_na="n/a: bin/vpn exited with status 1: No module named x|y"),
    ]
    text = report.render_markdown(meta, figures)
    assert "| VPN | TCP throughput | 812 Mbit/s | 650 Mbit/s (OpenVPN 2.6) | 1.25× | raw veth: 20000 Mbit/s |" in text
    rtt_row = next(line for line in text.splitlines() if "ping RTT" in line)
    assert "*(lower is better)*" in rtt_row
    assert "| n/a | 0.250 ms (OpenVPN 2.6) | n/a |" in rtt_row
    assert "No module named x/y" in rtt_row         # a "|" in a reason must not break the table
    assert "abc1234" in text and "`make bench`" in text


@pytest.mark.parametrize("better, ratio_tomato, verdict", [
    (HIGHER, 160.0, "target ≥ 1.50×: met"), (HIGHER, 140.0, "target ≥ 1.50×: missed"),
    (LOWER, 60.0, "target ≤ 0.60×: met"), (LOWER, 61.0, "target ≤ 0.60×: missed"),
    (LOWER, None, "target ≤ 0.60×"),                # no ratio, no verdict
])
def test_markdown_puts_the_target_and_its_verdict_first_in_the_notes(better, ratio_tomato, verdict):
    target = 1.5 if better == HIGHER else 0.6
    fig = Figure("VPN", "x", "u", better, tomato=ratio_tomato, reference=100.0, target=target, note="raw veth: 1")
    assert fig.target_met is (None if ratio_tomato is None else verdict.endswith(": met"))
    assert fig.to_json()["target_met"] is fig.target_met
    meta = {"date_utc": "d", "duration_s": 1, "commit": "c", "machine": "m", "tools": {}, "command": "c",
            "quick": True}
    row = next(line for line in report.render_markdown(meta, [fig]).splitlines() if line.startswith("| VPN"))
    assert row.endswith("| %s; raw veth: 1 |" % verdict)


BIDIR_REPORT = {"end": {  # trimmed from `iperf3 -c ... --bidir -J` (iperf 3.12)
    "sum_sent": {"bits_per_second": 4.61e9, "sender": True},
    "sum_received": {"bits_per_second": 4.57e9, "sender": True},
    "sum_sent_bidir_reverse": {"bits_per_second": 8.19e9, "sender": False},
    "sum_received_bidir_reverse": {"bits_per_second": 8.16e9, "sender": False}}}


def test_bidir_reads_both_receivers_and_refuses_a_one_way_report():
    import vpn_bench
    assert vpn_bench.parse_bidir_mbit(BIDIR_REPORT) == (pytest.approx(4570.0), pytest.approx(8160.0))
    one_way = {"end": {k: v for k, v in BIDIR_REPORT["end"].items() if "bidir" not in k}}
    with pytest.raises(Unavailable, match="no reverse direction"):
        vpn_bench.parse_bidir_mbit(one_way)


def test_bidir_note_shows_each_systems_best_round_split():
    import vpn_bench
    note = vpn_bench.bidir_split_note({vpn_bench.TOMATO: [(700.0, 650.0), (800.0, 600.0)],
                                       vpn_bench.OPENVPN: [(500.4, 480.6)], vpn_bench.VETH: [(9e3, 9e3)]})
    assert note == "tomato B->A 800 + A->B 600 Mbit/s; OpenVPN B->A 500 + A->B 481 Mbit/s"
    assert vpn_bench.bidir_split_note({vpn_bench.TOMATO: []}) == ""


PING_OUT = """PING 10.0.1.1 (10.0.1.1) 56(84) bytes of data.

--- 10.0.1.1 ping statistics ---
10 packets transmitted, 10 received, 0% packet loss, time 9013ms
rtt min/avg/max/mdev = 0.301/0.375/0.512/0.061 ms
"""


def test_ping_summary_gives_the_average_or_the_reason():
    import vpn_bench
    assert vpn_bench.parse_ping_avg_ms(PING_OUT) == pytest.approx(0.375)
    lost = PING_OUT.replace("10 received, 0%", "0 received, 100%").rsplit("rtt", 1)[0]
    with pytest.raises(Unavailable, match="100% packet loss"):
        vpn_bench.parse_ping_avg_ms(lost)
    with pytest.raises(Unavailable, match="no output"):
        vpn_bench.parse_ping_avg_ms("")


@pytest.mark.parametrize("value, text", [(None, "n/a"), (123456.7, "123 457"), (45.67, "45.7"),
                                         (4.567, "4.57"), (0.1234, "0.123")])
def test_fmt_number(value, text):
    assert report.fmt_number(value) == text


def test_run_json_reads_the_last_json_line_and_reports_failures():
    assert run_json([sys.executable, "-c", "print('progress'); print('{\"a\": 1}')"], 30) == {"a": 1}
    assert run_json([sys.executable, "-c", "print('{\"a\":\\n 2}')"], 30) == {"a": 2}
    with pytest.raises(Unavailable, match="status 3"):
        run_json([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], 30)
    with pytest.raises(Unavailable, match="no JSON"):
        run_json([sys.executable, "-c", "print('hello')"], 30)


def test_collapsed_profile_summary_counts_main_thread_only(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text(
        "Hub.run (gevent/hub.py:647) 50\n"
        "Link._udp_to_tun (tomato_gevent/vpn/link.py:10);Opener.open_into (tomato_gevent/vpn/packet.py:5) 30\n"
        "Link._udp_to_tun (tomato_gevent/vpn/link.py:12) 20\n"
        "_WorkerGreenlet.run (gevent/threadpool.py:216);acquire_with_timeout (gevent/_threading.py:36) 99\n")
    summary = profile_vpn.summarize_collapsed(raw)
    assert "100 samples of the main thread (99 of other threads left out)" in summary
    assert "50.0  Link._udp_to_tun (link.py)" in summary       # inclusive: 30 + 20
    assert "30.0  Opener.open_into (packet.py:5)" in summary   # self
    assert "acquire_with_timeout" not in summary


def test_cli_rejects_unknown_sections_and_sends_quick_runs_to_bench_out():
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "vpn,nosuch"])
    args = run.parse_args(["--quick", "--only", "crypto"])
    assert args.sections == ["crypto"] and args.out.name == "out"
    assert run.parse_args([]).out.name == "bench"


def test_crypto_section_measures_both_backends_through_the_vpn_api():
    import crypto_bench
    figures = crypto_bench.run(quick=True)
    names = [f.name for f in figures]
    assert any("cryptography" in n for n in names) and any("pycryptodome" in n for n in names)
    assert all(f.tomato > 0 and f.reference > 0 for f in figures)


def test_machine_info_has_commit_and_tool_versions():
    args = SimpleNamespace(quick=True, rounds=None, sections=["crypto"])
    meta = report.machine_info("make bench", 0, 5, args)
    assert meta["commit"] and meta["duration_s"] == 5 and "openvpn" in meta["tools"]


WRK_OUT = """Running 1s test @ http://127.0.0.1:1080/
  1 threads and 50 connections
  12345 requests in 1.00s, 1.50MB read
  Socket errors: connect 0, read 5, write 0, timeout 0
  Non-2xx or 3xx responses: %d
Requests/sec:  12345.67
Transfer/sec:      1.50MB
"""


def test_parse_wrk_reads_rate_requests_and_errors():
    import proxy_bench
    assert proxy_bench.parse_wrk(WRK_OUT % 3) == (
        12345.67, 12345, ["3 non-2xx", "socket errors connect 0, read 5, write 0, timeout 0"])
    with pytest.raises(Unavailable, match="most responses were errors"):
        proxy_bench.parse_wrk(WRK_OUT % 9000)
    with pytest.raises(Unavailable, match="unable to connect"):
        proxy_bench.parse_wrk("unable to connect to 127.0.0.1:1080 Connection refused\n")


def test_cpu_of_a_process_counts_its_ended_threads():
    import os
    import threading
    from procstat import cpu_between, cpu_sample

    def spin():
        deadline = time.thread_time() + 0.2
        while time.thread_time() < deadline:
            pass
    before = cpu_sample(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()                   # ended: gone from /proc/PID/task, its time is not
    assert cpu_between(before, cpu_sample(os.getpid())) >= 0.2
    assert cpu_between({1: 1.0}, {1: 1.5, 9: 0.25}) == pytest.approx(0.75)   # 9 started in between


def test_vpn_cpu_of_a_tunnel_process_counts_its_ended_threads():
    import os
    import threading
    import vpn_bench

    def spin():
        deadline = time.thread_time() + 0.2
        while time.thread_time() < deadline:
            pass
    before = vpn_bench.cpu_seconds(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()                   # summing /proc/PID/task/*/schedstat would miss it (negative idle CPU)
    assert vpn_bench.cpu_seconds(os.getpid()) - before >= 0.2


@pytest.mark.parametrize("cores, workers, proxy_us, rps", [
    (2, 1, 100.0, 10_000),          # one worker: its core is the limit
    (2, 2, 100.0, 2e6 / 120),       # two: the machine is (100 + 10 + 10 us per request on 2 cores)
    (8, 2, 100.0, 20_000),          # plenty of cores: the two workers are
    (8, 8, 10.0, 1e6 / 10),         # fast proxy: wrk's one thread (10 us) is
])
def test_workers_model(cores, workers, proxy_us, rps):
    import proxy_bench
    assert proxy_bench.workers_model(cores, workers, proxy_us, 10.0, 10.0) == pytest.approx(rps)


def test_wrk_latency_reads_p50_and_p99_in_ms():
    report = ("  Latency Distribution\n     50%  123.00us\n     75%  200.00us\n     90%  300.00us\n"
              "     99%    1.23ms\n")
    assert proxy_bench.parse_wrk_latency(report) == (0.123, 1.23)
    with pytest.raises(Unavailable):
        proxy_bench.parse_wrk_latency("Requests/sec: 10.0\n")
