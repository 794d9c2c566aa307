"""The control socket's failures, each one line (ControlError), over real unix sockets in a temp
dir (no root): paths that cannot be served or reached, servers that answer nothing or not JSON,
a name held by a socket that does not listen, and closing twice or after the file is gone.
(test_vpn_control.py covers the exchanges that succeed and the refusals between users.)"""
import os
import secrets
import socket
import stat
import threading

import pytest

from tomato_gevent.vpn import control
from tomato_gevent.vpn.control import ControlError, ControlServer, bind_control_socket, query

STATUS = {"interface": "tun0"}
TOO_LONG = "s" * 120        # a unix socket path holds at most 107 bytes


def current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_path_under_a_file_cannot_be_served_or_reached(tmp_path):
    (tmp_path / "file").write_text("")
    path = str(tmp_path / "file" / "vpn-tun0.sock")
    with pytest.raises(ControlError) as served:
        bind_control_socket(path)
    assert str(served.value) == "cannot use control socket %s: Not a directory" % path
    with pytest.raises(ControlError) as reached:
        query(path)
    assert str(reached.value) == "cannot reach %s: Not a directory" % path


def test_a_path_too_long_for_a_socket_is_one_error_and_the_umask_comes_back(tmp_path):
    path = str(tmp_path / TOO_LONG)
    umask = current_umask()
    with pytest.raises(ControlError, match=r"^cannot serve control socket .*: AF_UNIX path too long$"):
        bind_control_socket(path)
    assert current_umask() == umask                     # not left at 0177 for the rest of the vpn
    assert not os.path.lexists(path)
    with pytest.raises(ControlError, match=r"^cannot reach .*: AF_UNIX path too long$"):
        query(path)


def test_the_tomato_directory_is_made_once_and_kept_as_it_is(tmp_path, monkeypatch):
    directory = tmp_path / "tomato"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    monkeypatch.setattr(control, "DEFAULT_DIRECTORY", str(directory))
    sock = bind_control_socket(str(directory / "vpn-tun0.sock"))
    sock.close()
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755     # an administrator's choice stays


def test_a_tomato_directory_that_cannot_be_made_is_one_error(tmp_path, monkeypatch):
    (tmp_path / "run").write_text("")                   # /run is a file: nothing can be made in it
    directory = tmp_path / "run" / "tomato"
    monkeypatch.setattr(control, "DEFAULT_DIRECTORY", str(directory))
    with pytest.raises(ControlError) as error:
        bind_control_socket(str(directory / "vpn-tun0.sock"))
    assert str(error.value) == "cannot create %s: Not a directory" % directory


def test_an_abstract_name_bound_without_listening_is_held_by_another_process():
    """The holder cannot be asked who it is (it refuses connections): named without a pid."""
    name = "@tomato-test/held-%d-%s" % (os.getpid(), secrets.token_hex(4))
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(control.sockaddr(name))
    try:
        with pytest.raises(ControlError) as error:
            bind_control_socket(name)
    finally:
        holder.close()
    assert str(error.value) == ("control socket %s is in use by another process in this network namespace "
                                "(give this vpn its own with --control)" % name)


def test_closing_a_server_never_started_or_twice_is_harmless(tmp_path):
    path = str(tmp_path / "vpn-tun0.sock")
    server = ControlServer(path, lambda: STATUS)
    server.close()
    assert not os.path.lexists(path)
    server.start()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    server.close()
    server.close()
    assert not os.path.lexists(path)


def test_closing_after_the_socket_file_was_removed_is_harmless(tmp_path):
    path = str(tmp_path / "vpn-tun0.sock")
    server = ControlServer(path, lambda: STATUS).start()
    os.unlink(path)
    server.close()
    assert not os.path.lexists(path)


@pytest.fixture
def fake_vpn(tmp_path):
    """A listener at a socket path whose one connection is handled by behave(conn) in a thread."""
    path = str(tmp_path / "vpn-tun0.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    threads = []

    def serve(behave):
        def run():
            conn, _ = listener.accept()
            with conn:
                behave(conn)
        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        return path
    yield serve
    for thread in threads:
        thread.join(30)
    listener.close()


@pytest.mark.parametrize("answer, error", [
    (b"vpn 1.0\n", "answered something that is not JSON"),
    (b'["tun0"]\n', "answered something that is not a JSON object"),
    (b"", "answered something that is not JSON"),
])
def test_an_answer_that_is_not_a_json_object_is_one_error(fake_vpn, answer, error):
    def reply(conn):
        conn.recv(64)
        conn.sendall(answer)
    path = fake_vpn(reply)
    with pytest.raises(ControlError) as raised:
        query(path, timeout=30)
    assert str(raised.value) == "%s %s" % (path, error)


def test_a_server_that_closes_with_the_command_unread_and_no_answer(fake_vpn):
    path = fake_vpn(lambda conn: conn.recv(1, socket.MSG_PEEK))    # waits for the command, reads none of it
    with pytest.raises(ControlError) as raised:
        query(path, timeout=30)
    assert str(raised.value) == "no answer on %s: Connection reset by peer" % path


def test_a_server_that_closes_before_the_command_and_answers_nothing(fake_vpn, monkeypatch):
    """The send fails (EPIPE) and the read finds nothing sent before: that is the error."""
    closed = threading.Event()
    credentials = control.peer_credentials

    def once_the_server_closed(sock):
        assert closed.wait(30)
        return credentials(sock)

    def close_at_once(conn):
        conn.close()
        closed.set()
    monkeypatch.setattr(control, "peer_credentials", once_the_server_closed)
    path = fake_vpn(close_at_once)
    with pytest.raises(ControlError) as raised:
        query(path, timeout=30)
    assert str(raised.value) == "no answer on %s: Broken pipe" % path


def test_a_server_that_never_answers_is_given_up_after_the_timeout(fake_vpn):
    asked = threading.Event()
    gave_up = threading.Event()

    def hold(conn):
        asked.set()
        assert gave_up.wait(30)                         # holds the connection open, silent
    path = fake_vpn(hold)
    try:
        with pytest.raises(ControlError) as raised:
            query(path, timeout=0.2)
    finally:
        gave_up.set()
    assert asked.is_set()
    assert str(raised.value) == "no answer on %s: timed out" % path
