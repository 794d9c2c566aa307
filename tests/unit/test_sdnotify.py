"""sd_notify by hand: the datagram systemd expects, and a proxy that says READY=1 once it listens."""
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import free_port
from tomato_gevent.sdnotify import notify

PROXY = Path(__file__).resolve().parents[2] / "bin" / "proxy"


@pytest.fixture
def manager(tmp_path):
    """A stand-in for systemd's notification socket: (NOTIFY_SOCKET value, socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(20)  # the deadline for a datagram that should come
    yield str(path), sock
    sock.close()


def test_ready_and_status_in_one_datagram(manager):
    name, sock = manager
    assert notify("READY=1", "STATUS=listening on :5000", environ={"NOTIFY_SOCKET": name})
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on :5000"


def test_abstract_socket_written_with_at():
    abstract = "tomato-test-%s" % uuid.uuid4().hex
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + abstract)
        assert notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + abstract})
        sock.settimeout(20)
        assert sock.recv(4096) == b"STOPPING=1"


def test_outside_systemd_nothing_happens(caplog):
    assert notify("READY=1", environ={}) is False
    assert caplog.records == []


def test_unreachable_manager_is_one_warning_not_a_crash(tmp_path, caplog):
    missing = str(tmp_path / "gone")
    with caplog.at_level(logging.WARNING):
        assert notify("READY=1", environ={"NOTIFY_SOCKET": missing}) is False
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert len(caplog.records) == 2 and missing in caplog.records[0].getMessage()


def test_proxy_is_ready_once_it_accepts(manager):
    name, sock = manager
    env = dict(os.environ, NOTIFY_SOCKET=name)
    port = free_port()  # the proxy refuses port 0
    proxy = subprocess.Popen([sys.executable, str(PROXY), "-a", "127.0.0.1:%d" % port], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = sock.recv(4096).decode()
        lines = ready.splitlines()
        assert lines == ["READY=1", "STATUS=listening on 127.0.0.1:%d" % port]
        socket.create_connection(("127.0.0.1", port), timeout=10).close()  # listening when it said so
        proxy.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proxy.wait(timeout=20) == 0
    finally:
        proxy.kill()
        proxy.wait()
