"""proxy/auth.py: the --auth-file format and the one check behind SOCKS5 and HTTP Basic."""
import base64

import pytest

from tomato_gevent.errors import ConfigError
from tomato_gevent.proxy.auth import load_auth_file, parse_auth_lines


def basic(user_pass):
    return b"Basic " + base64.b64encode(user_pass)


def test_users_and_passwords_with_colons():
    auth = parse_auth_lines(["# comment\n", "\n", "alice:pw:with:colons\n", "bob:x\r\n"], "users")
    assert len(auth) == 2
    assert auth.check(b"alice", b"pw:with:colons")
    assert auth.check(b"bob", b"x")
    assert not auth.check(b"alice", b"pw")
    assert not auth.check(b"carol", b"x")
    assert not auth.check(b"bob", b"x\r")


@pytest.mark.parametrize("value, ok", [
    (basic(b"alice:s3cret"), True),
    (b"basic " + base64.b64encode(b"alice:s3cret"), True),      # the scheme is case-insensitive
    (basic(b"alice:wrong"), False),
    (basic(b"alice"), False),                                  # no colon
    (b"Basic !!!notbase64", False),
    (b"Bearer " + base64.b64encode(b"alice:s3cret"), False),
    (b"", False),
    (None, False),
])
def test_check_basic(value, ok):
    assert parse_auth_lines(["alice:s3cret\n"], "users").check_basic(value) is ok


@pytest.mark.parametrize("lines, why", [
    (["alice s3cret\n"], "users:1: expected user:password"),
    (["# only comments\n"], "users: no user:password line"),
    ([":s3cret\n"], "users:1: user and password must each be 1 to 255 bytes"),
    (["alice:\n"], "users:1: user and password must each be 1 to 255 bytes"),
    (["alice:" + "x" * 256 + "\n"], "users:1: user and password"),
    (["alice:a\n", "alice:b\n"], "users:2: user 'alice' appears twice"),
])
def test_bad_files_name_the_line_but_never_show_it(lines, why):
    with pytest.raises(ConfigError) as info:
        parse_auth_lines(lines, "users")
    assert str(info.value).startswith(why)
    assert "s3cret" not in str(info.value) and "x" * 10 not in str(info.value)


def test_load_auth_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read auth file"):
        load_auth_file(str(tmp_path / "missing"))
    path = tmp_path / "users"
    path.write_bytes(b"alice:caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_auth_file(str(path))
    path.write_text("alice:ok\n")
    assert load_auth_file(str(path)).check(b"alice", b"ok")
