"""bin/proxy as a process, without root: the summary line on SIGUSR1 and at stop, new flags."""
import signal
import socket

import pytest

from tomato_gevent.proxy.cli import build_parser
from tests.support import free_port
from tests.unit.proxy_process import ProxyProcess

DEADLINE_SECONDS = 15.0


@pytest.fixture
def proxy_process(tmp_path):
    started = []

    def start(*args):
        rules = tmp_path / "rules.txt"
        rules.write_text("block\tads.test\n")
        port = free_port()
        p = ProxyProcess("-a", "127.0.0.1:%d" % port, "-r", str(rules), *args)
        started.append(p)
        p.wait_line(lambda line: "listening on" in line, "listening line")
        return p, port
    yield start
    for p in started:
        p.stop()


def ask(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = s.recv(65536)
            if not data:
                return answer
            answer += data


def test_summary_on_sigusr1_and_at_stop(proxy_process):
    proxy, port = proxy_process()
    assert ask(port, b"GET http://ads.test/ HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 403 ")
    assert ask(port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    proxy.proc.send_signal(signal.SIGUSR1)
    line = proxy.wait_line(lambda line: "summary:" in line, "summary after SIGUSR1")
    assert "requests block 4xx=1, - 4xx=1; bytes up=0 down=" in line
    assert line.endswith("open connections 0")
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=DEADLINE_SECONDS) == 0
    proxy.reader.join(DEADLINE_SECONDS)
    summaries = [line for line in proxy.lines if "summary:" in line]
    assert len(summaries) == 2 and "block 4xx=1" in summaries[-1]
    assert proxy.lines[-1].endswith("stopped")
    assert not [line for line in proxy.lines if "Traceback" in line]


def test_new_flags_parse_with_their_defaults():
    args = build_parser().parse_args([])
    assert (args.tunnel_idle_timeout, args.max_clients, args.allow_private) == (600.0, 2048, False)
    args = build_parser().parse_args(["--tunnel-idle-timeout", "30", "--max-clients", "10", "--allow-private"])
    assert (args.tunnel_idle_timeout, args.max_clients, args.allow_private) == (30.0, 10, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--max-clients", "0"])
