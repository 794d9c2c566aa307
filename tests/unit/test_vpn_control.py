"""The control socket protocol over a real unix socket in a temp dir (no root).

The server runs in gevent's hub; the client (a plain blocking socket, as `vpn show`
uses it) runs in a native thread so that the hub keeps serving meanwhile.
"""
import json
import os
import socket
import stat

import gevent
import pytest

from tomato_gevent.vpn import control
from tomato_gevent.vpn.control import ControlError, ControlServer, answer, query

STATUS = {"interface": "tun0", "rx_packets": 3, "drops": {"short datagram": 1}}


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


def test_default_directory_is_created_0700(tmp_path, monkeypatch):
    directory = tmp_path / "run" / "tomato"
    monkeypatch.setattr(control, "DEFAULT_DIRECTORY", str(directory))
    path = control.default_path("tun7")
    assert path == str(directory / "vpn-tun7.sock")
    with ControlServer(path, lambda: STATUS):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert ask(path)["interface"] == "tun0"


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
    from tests.unit.vpn_doubles import status as full_status

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
