"""Tests of the bench harness's pure parts (no root, no network): .venv/bin/python -m pytest -q bench"""
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_vpn  # noqa: E402
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


@pytest.mark.parametrize("cores, workers, proxy_us, rps", [
    (2, 1, 100.0, 10_000),          # one worker: its core is the limit
    (2, 2, 100.0, 2e6 / 120),       # two: the machine is (100 + 10 + 10 us per request on 2 cores)
    (8, 2, 100.0, 20_000),          # plenty of cores: the two workers are
    (8, 8, 10.0, 1e6 / 10),         # fast proxy: wrk's one thread (10 us) is
])
def test_workers_model(cores, workers, proxy_us, rps):
    import proxy_bench
    assert proxy_bench.workers_model(cores, workers, proxy_us, 10.0, 10.0) == pytest.approx(rps)
