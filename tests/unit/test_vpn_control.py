"""The control socket protocol over a real unix socket in a temp dir (no root).

The server runs in gevent's hub; the client (a plain blocking socket, as `vpn show`
uses it) runs in a native thread so that the hub keeps serving meanwhile.
"""
import json
import os
import re
import socket
import stat

import gevent
import pytest

from tomato_gevent.vpn import control
from tomato_gevent.vpn.control import MAX_REQUEST_BYTES, ControlError, ControlServer, answer, query
from tomato_gevent.vpn.status import build_status

STATUS = {"interface": "tun0", "rx_packets": 3, "drops": {"short datagram": 1}}


def full_status():
    """A complete status, as a running vpn answers it (what the human view formats)."""
    return build_status(interface="tun0", listen_address="0.0.0.0:5000", peer_address="10.9.0.2:5000",
                        peer_host=None, dynamic=False, session_id=None, last_received=None, started=0.0, now=1.0,
                        now_ms=1_700_000_000_000, rx_packets=0, rx_bytes=0, tx_packets=0, tx_bytes=0, drops={})


def ask(path, command="show"):
    """query() from a native thread; returns the reply or the ControlError raised."""
    def call():
        try:
            return query(path, command, timeout=3, what="tun0")
        except ControlError as e:
            return e
    return gevent.get_hub().threadpool.apply(call)


def test_answer_is_one_json_line():
    assert json.loads(answer(b"show", lambda: STATUS)) == STATUS
    assert answer(b"show\r", lambda: STATUS).endswith(b"\n")
    assert "unknown command" in json.loads(answer(b"reboot", lambda: STATUS))["error"]
    assert "unknown command" in json.loads(answer(b"\xff\xfe", lambda: STATUS))["error"]


def test_show_over_the_socket_follows_the_status_and_socket_is_0600(tmp_path):
    path = str(tmp_path / "vpn-tun0.sock")
    counter = {"n": 0}

    def status():
        counter["n"] += 1
        return dict(STATUS, rx_packets=counter["n"])

    with ControlServer(path, status):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert ask(path) == dict(STATUS, rx_packets=1)
        assert ask(path)["rx_packets"] == 2                 # asked afresh each time
        error = ask(path, "reboot")
        assert isinstance(error, ControlError) and "unknown command" in str(error)
    assert not os.path.exists(path)                         # removed at close


def test_a_path_in_the_tomato_directory_creates_it_0700(tmp_path, monkeypatch):
    directory = tmp_path / "run" / "tomato"
    monkeypatch.setattr(control, "DEFAULT_DIRECTORY", str(directory))
    path = str(directory / "vpn-tun7.sock")
    with ControlServer(path, lambda: STATUS):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert ask(path)["interface"] == "tun0"


def abstract_name(tmp_path):
    """An abstract name of this test alone (the default would be @tomato/vpn-IFACE)."""
    return "@tomato-test/%s" % tmp_path.name + str(os.getpid())


def test_default_is_an_abstract_name_per_interface(tmp_path):
    assert control.default_path("tun7") == "@tomato/vpn-tun7"
    name = abstract_name(tmp_path)
    with ControlServer(name, lambda: STATUS):
        assert ask(name) == STATUS
        with pytest.raises(ControlError, match="^control socket %s is in use by process %d \\(uid 0\\) in this "
                                               "network namespace" % (name, os.getpid())):
            ControlServer(name, lambda: {}).start()
        assert ask(name) == STATUS                          # the refused second one took nothing away
    missing = ask(name)                                     # released with the socket: nothing left behind
    assert isinstance(missing, ControlError)
    assert str(missing) == "no vpn running for tun0: nothing listens on %s in this network namespace" % name


def fork_as_nobody(body):
    """Start body() in a forked child with uid/gid 65534; returns result(), which waits for
    the child and returns what body returned (bytes). The child uses plain blocking
    sockets only, never the parent's gevent hub."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, body())
        finally:
            os._exit(0)
    os.close(write_end)

    def result():
        try:
            return gevent.get_hub().threadpool.apply(lambda: b"".join(iter(lambda: os.read(read_end, 4096), b"")))
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
    return result


def test_an_abstract_socket_answers_root_and_its_own_user_only(tmp_path):
    """No file permissions guard an abstract name: the server checks the caller's uid."""
    name = abstract_name(tmp_path)

    def ask_as_nobody():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(control.sockaddr(name))
        sock.sendall(b"show\n")
        return sock.recv(4096)
    with ControlServer(name, lambda: STATUS):
        reply = json.loads(fork_as_nobody(ask_as_nobody)())
        assert reply == {"error": "permission denied: only root and uid 0 may ask"}
        assert ask(name) == STATUS
    assert control.trusted(0, own_uid=1000) and control.trusted(1000, own_uid=1000)
    assert not control.trusted(1001, own_uid=1000)


def test_the_client_asks_no_squatter(tmp_path):
    """Another user took the name first (the vpn then serves none): `vpn show` as root
    does not take that process's answer for the vpn's status."""
    name = abstract_name(tmp_path)
    ready_read, ready_write = os.pipe()

    def squat():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(control.sockaddr(name))
        sock.listen(1)
        os.write(ready_write, b"x")
        sock.settimeout(10)
        conn, _ = sock.accept()
        conn.sendall(json.dumps({"interface": "fake"}).encode() + b"\n")
        return b""
    squatter = fork_as_nobody(squat)
    os.close(ready_write)                   # the child's copy alone: its exit ends the read below
    try:
        assert gevent.get_hub().threadpool.apply(os.read, (ready_read, 1)) == b"x"
        error = ask(name)
    finally:
        os.close(ready_read)
        squatter()
    assert isinstance(error, ControlError)
    assert re.fullmatch("%s is served by process \\d+ of uid 65534, neither root nor you: not asked" % name,
                        str(error)), str(error)


def test_no_instance_is_one_clear_error(tmp_path):
    missing = ask(str(tmp_path / "vpn-tun0.sock"))
    assert isinstance(missing, ControlError) and "no vpn running for tun0" in str(missing)
    assert "does not exist" in str(missing) and missing.exit_status == 1
    stale = str(tmp_path / "stale.sock")
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(stale)
    left.close()                                            # the file stays, nobody listens: a killed vpn
    error = ask(stale)
    assert isinstance(error, ControlError) and "nothing listens" in str(error)


def test_stale_socket_is_replaced_but_a_live_one_is_refused(tmp_path):
    path = str(tmp_path / "vpn-tun0.sock")
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(path)
    left.close()
    with ControlServer(path, lambda: STATUS):
        assert ask(path) == STATUS
        with pytest.raises(ControlError, match="in use by another vpn"):
            ControlServer(path, lambda: {}).start()
        assert ask(path) == STATUS                          # the refused second one took nothing away


def test_a_successors_socket_is_not_removed(tmp_path):
    path = str(tmp_path / "vpn-tun0.sock")
    first = ControlServer(path, lambda: STATUS).start()
    os.unlink(path)                                         # e.g. removed by hand, then a new vpn took the path
    with ControlServer(path, lambda: {"interface": "successor"}):
        first.close()
        assert ask(path) == {"interface": "successor"}


def test_not_a_socket_is_refused(tmp_path):
    path = tmp_path / "vpn-tun0.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(str(path), lambda: STATUS).start()
    assert path.read_text() == "precious"


def test_a_silent_client_does_not_block_others(tmp_path, monkeypatch):
    path = str(tmp_path / "vpn-tun0.sock")
    with ControlServer(path, lambda: STATUS):
        from gevent import socket as gsocket
        silent = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(path)                                # connects, never sends its command
        try:
            assert ask(path) == STATUS
        finally:
            silent.close()


def test_vpn_show_prints_the_human_view_or_one_line(tmp_path, capsys):
    """bin/vpn show's main path against a server in this process (a status of another version
    cannot be formatted: one line, exit 1, --json still works)."""
    from tomato_gevent.vpn.cli import main

    path = str(tmp_path / "vpn-tun0.sock")
    replies = iter([full_status(), {"interface": "tun0"}, {"interface": "tun0"}])
    with ControlServer(path, lambda: next(replies)):
        run = gevent.get_hub().threadpool.apply
        assert run(main, (["show", "--control", path],)) == 0
        assert capsys.readouterr().out.startswith("interface: tun0\n  listening on: 0.0.0.0:5000\n")
        assert run(main, (["show", "--control", path],)) == 1
        assert "cannot show; try --json" in capsys.readouterr().err
        assert run(main, (["show", "--control", path, "--json"],)) == 0
        assert json.loads(capsys.readouterr().out) == {"interface": "tun0"}


def test_socket_removed_by_a_concurrent_vpn_while_starting_is_one_error(tmp_path, monkeypatch):
    # Two vpns for one interface name in two namespaces start together: the other one finds
    # our socket bound but not yet listening, takes it for a leftover and removes it.
    path = str(tmp_path / "vpn-tun0.sock")
    bind = control.bind_control_socket

    def bind_then_lose_it(where):
        sock = bind(where)
        os.unlink(where)
        return sock
    monkeypatch.setattr(control, "bind_control_socket", bind_then_lose_it)
    with pytest.raises(ControlError, match="vanished while starting"):
        ControlServer(path, lambda: {}).start()


def test_leftover_removed_by_a_concurrent_vpn_first_is_no_error(tmp_path, monkeypatch):
    # Both vpns find the same leftover; the other one unlinks it just before we do.
    path = str(tmp_path / "vpn-tun0.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()                    # a killed vpn's socket file: nothing listens
    unlink = os.unlink

    def other_vpn_was_faster(where):
        unlink(where)
        unlink(where)
    monkeypatch.setattr(control.os, "unlink", other_vpn_was_faster)
    server = ControlServer(path, lambda: {"interface": "tun0"}).start()
    monkeypatch.setattr(control.os, "unlink", unlink)
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()


def drip(path, pace=0.05):
    """A client that sends its request one byte at a time, `pace` apart, and never the
    newline: ("closed", bytes sent) when the server hung up, ("answered", reply) if it
    answered (after MAX_REQUEST_BYTES bytes it would: an unknown command)."""
    import select

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        for sent in range(MAX_REQUEST_BYTES + 2):
            try:
                sock.send(b"s" if sent == 0 else b" ")
            except (BrokenPipeError, ConnectionResetError):
                return "closed", sent
            if select.select([sock], [], [], pace)[0]:      # pacing only: the outcome decides
                reply = sock.recv(4096)
                return ("answered", reply) if reply else ("closed", sent + 1)
        return "still open", MAX_REQUEST_BYTES + 2


def test_a_dripping_client_is_dropped_at_the_deadline(tmp_path):
    """Issue 23 item 8: one byte every few seconds kept a slot for ~17 minutes. Each exchange
    now has a total deadline (here 0.3 s; the byte pace makes 257 bytes take > 12 s)."""
    path = str(tmp_path / "vpn-tun0.sock")
    with ControlServer(path, lambda: STATUS, deadline=0.3):
        outcome, detail = gevent.get_hub().threadpool.apply(drip, (path,))
        assert outcome == "closed" and detail < MAX_REQUEST_BYTES, (outcome, detail)
        assert ask(path) == STATUS                          # the slot is free again


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_vpn_show_into_a_closed_pipe_is_quiet(tmp_path, flags):
    """`vpn show | head -1`: the reader is gone before vpn writes. No traceback (print's
    BrokenPipeError, or the one of Python's flush at exit), the status of a SIGPIPE death."""
    import subprocess
    import sys

    path = str(tmp_path / "vpn-tun0.sock")
    vpn = os.path.join(os.path.dirname(__file__), "..", "..", "bin", "vpn")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with ControlServer(path, full_status):
            result = gevent.get_hub().threadpool.apply(subprocess.run, ([sys.executable, vpn, "show", "--control", path,
                                                                          *flags],),
                                                       dict(stdout=write_end, stderr=subprocess.PIPE, timeout=30))
    finally:
        os.close(write_end)
    assert result.stderr == b"" and result.returncode == 141
