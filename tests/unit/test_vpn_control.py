"""The control socket protocol over a real unix socket in a temp dir (no root).

The server runs in gevent's hub; the client (a plain blocking socket, as `vpn show`
uses it) runs in a native thread so that the hub keeps serving meanwhile.
"""
import json
import os
import re
import secrets
import socket
import stat
import traceback

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
    """An abstract name of this test in this run alone (the default would be @tomato/vpn-IFACE):
    abstract names are shared by every process of the network namespace, so concurrent runs
    of the suite (or runs in other pid namespaces, where the pid repeats) must not meet."""
    return "@tomato-test/%d-%s/%s" % (os.getpid(), secrets.token_hex(8), tmp_path.name)


def test_default_is_an_abstract_name_per_interface(tmp_path):
    assert control.default_path("tun7") == "@tomato/vpn-tun7"
    name = abstract_name(tmp_path)
    with ControlServer(name, lambda: STATUS):
        assert ask(name) == STATUS
        with pytest.raises(ControlError, match="^control socket %s is in use by process %d \\(uid %d\\) in this "
                                               "network namespace" % (re.escape(name), os.getpid(), os.geteuid())):
            ControlServer(name, lambda: {}).start()
        assert ask(name) == STATUS                          # the refused second one took nothing away
    missing = ask(name)                                     # released with the socket: nothing left behind
    assert isinstance(missing, ControlError)
    assert str(missing) == "no vpn running for tun0: nothing listens on %s in this network namespace" % name


def fork_as_nobody(body):
    """Start body() in a forked child with uid/gid 65534; returns result(), which waits for
    the child and returns what body returned (bytes), or fails with the child's traceback
    (an exception there would otherwise read as an empty reply). The child uses plain
    blocking sockets only, never the parent's gevent hub."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            try:
                os.close(read_end)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                out = body()
                status = 0
            except BaseException:
                out = traceback.format_exc().encode()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(out)
        finally:
            os._exit(status)
    os.close(write_end)

    def result():
        try:
            out = gevent.get_hub().threadpool.apply(lambda: b"".join(iter(lambda: os.read(read_end, 4096), b"")))
        finally:
            os.close(read_end)
            _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        assert code == 0, "the child as uid 65534 failed (exit status %d):\n%s" % (code, out.decode(errors="replace"))
        return out
    return result


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a client of another uid needs root to switch to uid 65534")


@needs_root
def test_an_abstract_socket_answers_root_and_its_own_user_only(tmp_path):
    """No file permissions guard an abstract name: the server checks the caller's uid, and
    `vpn show` of another user prints that refusal (the server closes at once, the command
    unread; query() said "no answer ...: Connection reset by peer" or "Broken pipe" instead)."""
    name = abstract_name(tmp_path)

    def ask_as_nobody():
        try:
            return json.dumps(query(name, "show", timeout=30)).encode()
        except ControlError as e:
            return str(e).encode()
    with ControlServer(name, lambda: STATUS):
        refused = fork_as_nobody(ask_as_nobody)().decode()
        assert refused == "%s: permission denied: only root and uid 0 may ask" % name, refused
        assert ask(name) == STATUS
    assert control.trusted(0, own_uid=1000) and control.trusted(1000, own_uid=1000)
    assert not control.trusted(1001, own_uid=1000)


@needs_root
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
        sock.settimeout(30)
        conn, _ = sock.accept()
        try:
            conn.sendall(json.dumps({"interface": "fake"}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass                        # the client hung up unasked, as it should
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
    assert re.fullmatch("%s is served by process \\d+ of uid 65534, neither root nor you: not asked" % re.escape(name),
                        str(error)), str(error)


@pytest.mark.parametrize("order", ["closed before the command was sent", "closed with the command unread"])
def test_an_answer_given_before_the_command_was_read_is_the_reply(tmp_path, monkeypatch, order):
    """A vpn refusing another user answers at once and closes, the command unread: the send then
    fails (EPIPE), or the read ends in ECONNRESET after the answer. `vpn show` printed
    "no answer ...: Broken pipe" / "Connection reset by peer" instead of the refusal."""
    import threading

    path = str(tmp_path / "vpn-tun0.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    closed = threading.Event()

    def refuse():
        conn, _ = listener.accept()
        with conn:
            if order == "closed with the command unread":
                conn.recv(1, socket.MSG_PEEK)               # waits until the command is there
            conn.sendall(b'{"error": "permission denied: only root and uid 0 may ask"}\n')
        closed.set()
    credentials = control.peer_credentials

    def once_the_server_closed(sock):
        assert closed.wait(30)
        return credentials(sock)
    if order == "closed before the command was sent":
        monkeypatch.setattr(control, "peer_credentials", once_the_server_closed)
    server = threading.Thread(target=refuse)
    server.start()
    try:
        with pytest.raises(ControlError) as refused:
            query(path, timeout=30)
    finally:
        server.join()
        listener.close()
    assert str(refused.value) == "%s: permission denied: only root and uid 0 may ask" % path


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
