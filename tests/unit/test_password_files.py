"""Password files, -lp/-pp and the proxy's --auth-file: what is refused, in one line each
(issue 23 item 6): anything but a regular file (a named pipe blocked the start forever,
/dev/zero was read without bound), a file over the size limit, text that is not UTF-8;
and a file others may read (every user, or its group) works with a warning."""
import grp
import logging
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tomato_gevent.cli_common import MAX_PASSWORD_FILE_BYTES, read_secret
from tomato_gevent.errors import ConfigError
from tomato_gevent.proxy.auth import MAX_AUTH_FILE_BYTES, load_auth_file

BIN = Path(__file__).resolve().parents[2] / "bin"
NOT_UTF8 = b"caf\xe9"


@contextmanager
def no_blocking(seconds=10):
    """Fail (instead of hanging the suite) if the body blocks, e.g. in open() of a FIFO."""
    def blocked(signum, frame):
        raise AssertionError("blocked for %d s" % seconds)
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def password_file(tmp_path, data, mode=0o600):
    path = tmp_path / "secret"
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def fifo(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path, 0o600)
    return path


def read_file(path):
    return read_secret(None, path, "TOMATO_NOPE", "local password")


def test_named_pipe_is_refused_at_once(tmp_path):
    path = fifo(tmp_path)
    with no_blocking(), pytest.raises(ConfigError) as info:
        read_file(path)
    assert str(info.value) == "local password file %s is a named pipe, not a regular file" % path


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a device"), ("/dev/null", "a device"), ("/", "a directory")])
def test_devices_and_directories_are_refused(path, kind):
    with no_blocking(), pytest.raises(ConfigError, match="^local password file %s is %s, not a regular file$"
                                      % (path, kind)):
        read_file(path)


def test_size_limit(tmp_path):
    fits = password_file(tmp_path, b"pw\n" + b"#" * (MAX_PASSWORD_FILE_BYTES - 3))
    assert read_file(fits) == "pw"
    too_big = password_file(tmp_path, b"pw\n" + b"#" * (MAX_PASSWORD_FILE_BYTES - 2))
    with pytest.raises(ConfigError, match="is larger than %d bytes" % MAX_PASSWORD_FILE_BYTES):
        read_file(too_big)


def test_file_that_is_not_utf8(tmp_path):
    path = password_file(tmp_path, NOT_UTF8 + b"\n")
    with pytest.raises(ConfigError) as info:
        read_file(path)
    assert str(info.value) == "local password file %s is not UTF-8 text (byte 3)" % path


def test_argument_and_environment_that_are_not_utf8(monkeypatch):
    undecodable = NOT_UTF8.decode("utf-8", "surrogateescape")      # how Python hands over argv and environ
    with pytest.raises(ConfigError, match="^the local password on the command line is not UTF-8 text$"):
        read_secret(undecodable, None, "TOMATO_NOPE", "local password")
    monkeypatch.setenv("TOMATO_TEST_PASSWORD", undecodable)
    with pytest.raises(ConfigError, match=r"^\$TOMATO_TEST_PASSWORD is not UTF-8 text$"):
        read_secret(None, None, "TOMATO_TEST_PASSWORD", "local password")


def test_group_readable_file_warns_with_the_group(tmp_path, caplog):
    path = password_file(tmp_path, b"hunter2\n", 0o640)
    with caplog.at_level(logging.WARNING):
        assert read_file(path) == "hunter2"
    group = grp.getgrgid(os.stat(path).st_gid).gr_name
    assert [r.getMessage() for r in caplog.records] == [
        "local password file %s is readable by the members of group %s: chmod 600 %s unless they should know it"
        % (path, group, path)]


def test_vpn_with_a_fifo_or_a_bad_argument_is_one_line(tmp_path):
    """The real command: exit status 2 and one line, no traceback, no waiting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    for argv, expected in ((["--local-password-file", fifo(tmp_path), "-pp", "b"], "is a named pipe"),
                           ([b"-lp", NOT_UTF8, "-pp", "b"], "the local password on the command line is not UTF-8")):
        result = subprocess.run([sys.executable, str(BIN / "vpn"), "-la", ":5000", "-d", *argv], capture_output=True,
                                timeout=30, env=env, stdin=subprocess.DEVNULL)
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
        assert expected in stderr and "Traceback" not in stderr


# -- the proxy's --auth-file shares the reader --------------------------------------------

def test_auth_file_refuses_pipes_devices_and_oversized_files(tmp_path):
    path = fifo(tmp_path)
    with no_blocking(), pytest.raises(ConfigError, match="^auth file %s is a named pipe, not a regular file$" % path):
        load_auth_file(path)
    with no_blocking(), pytest.raises(ConfigError, match="^auth file /dev/zero is a device, not a regular file$"):
        load_auth_file("/dev/zero")
    big = tmp_path / "users"
    big.write_bytes(b"alice:pw\n" + b"#" * MAX_AUTH_FILE_BYTES)
    with pytest.raises(ConfigError, match="is larger than %d bytes" % MAX_AUTH_FILE_BYTES):
        load_auth_file(str(big))


def test_auth_file_keeps_its_format_and_warns_when_others_may_read_it(tmp_path, caplog):
    path = tmp_path / "users"
    path.write_bytes(b"\xef\xbb\xbfalice:pw:x\r\n# comment\n\nbob:b\n")       # BOM, CRLF, comment, blank line
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        auth = load_auth_file(str(path))
    assert auth.check(b"alice", b"pw:x") and auth.check(b"bob", b"b") and len(auth) == 2
    assert [r.getMessage() for r in caplog.records] == ["auth file %s is readable by every user: chmod 600 %s"
                                                        % (path, path)]


def test_proxy_with_a_fifo_auth_file_is_one_line(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]          # free a moment ago; the file is refused before any bind
    result = subprocess.run([sys.executable, str(BIN / "proxy"), "-a", "127.0.0.1:%d" % port, "--auth-file",
                             fifo(tmp_path)], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "is a named pipe, not a regular file" in result.stderr and "Traceback" not in result.stderr
