"""cli_common: address hints, password files, journal-aware logging, program names, Ctrl-C, --version."""
import logging
import os
import re
import sys

import pytest

from tomato_gevent import __version__
from tomato_gevent.cli_common import (OneLineParser, hostport_arg, parse_hostport, program_name, read_secret,
                                      run_cli, setup_logging, stream_is_journal)
from tomato_gevent.errors import ConfigError
from tomato_gevent.netutil import format_address


def test_bare_port_hints_colon_form():
    with pytest.raises(ConfigError, match=r"write :5000\)"):
        parse_hostport("5000")
    with pytest.raises(ConfigError) as e:
        parse_hostport("example.org")
    assert "write :" not in str(e.value)  # the hint only where it fits
    assert parse_hostport(":5000") == ("", 5000)


def test_ipv6_addresses_print_in_brackets():
    assert format_address(("::1", 5000)) == "[::1]:5000"
    assert format_address(("fe80::1", 53, 0, 2)) == "[fe80::1]:53"
    assert format_address(("10.0.1.1", 1080)) == "10.0.1.1:1080"
    assert format_address(hostport_arg("[2001:db8::1]:443")) == "[2001:db8::1]:443"


def test_password_file_readable_by_everyone_warns(tmp_path, caplog):
    path = tmp_path / "secret"
    path.write_text("hunter2\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert read_secret(None, str(path), "TOMATO_NOPE", "local password") == "hunter2"
    assert len(caplog.records) == 1 and "readable by every user" in caplog.records[0].getMessage()
    assert "chmod 600 %s" % path in caplog.records[0].getMessage()
    assert "hunter2" not in caplog.text


def test_private_password_file_stays_quiet(tmp_path, caplog):
    path = tmp_path / "secret"
    path.write_text("hunter2\n")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert read_secret(None, str(path), "TOMATO_NOPE", "local password") == "hunter2"
    assert caplog.records == []


def _log_one_line(stream):
    setup_logging(0, stream=stream)
    try:
        logging.getLogger("tomato_gevent.test").warning("peer silent since %s", "then")
    finally:
        setup_logging(0)  # back to stderr for the other tests
    stream.flush()


def test_journal_lines_carry_priority_not_time(tmp_path, monkeypatch):
    path = tmp_path / "journal"
    with open(path, "w") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", "%d:%d" % (status.st_dev, status.st_ino))
        assert stream_is_journal(stream)
        _log_one_line(stream)
    assert path.read_text() == "<4>WARNING tomato_gevent.test: peer silent since then\n"


def test_plain_lines_keep_their_time_stamp(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.write_text("")
    status = os.stat(other)
    # stderr redirected away from the journal: JOURNAL_STREAM names another file
    monkeypatch.setenv("JOURNAL_STREAM", "%d:%d" % (status.st_dev, status.st_ino))
    path = tmp_path / "log"
    with open(path, "w") as stream:
        assert not stream_is_journal(stream)
        _log_one_line(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING  tomato_gevent.test: peer silent since then\n",
                        path.read_text())


@pytest.mark.parametrize("value", ["", "junk", "1:", ":2"])
def test_malformed_journal_stream_means_plain(tmp_path, value):
    with open(tmp_path / "log", "w") as stream:
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": value})


@pytest.mark.parametrize("argv0, expected", [
    ("/usr/local/bin/tomato-vpn", "tomato-vpn"),
    ("bin/vpn", "vpn"),
    ("/usr/bin/pytest", "vpn"),  # main() called by something else: the tool's own name
])
def test_program_name_is_the_command_as_started(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert program_name("vpn") == expected


def test_every_parser_has_version(capsys):
    parser = OneLineParser(prog="tomato-ping")
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == "tomato-ping %s\n" % __version__


def test_interrupt_is_one_line_and_130(caplog):
    def body():
        raise KeyboardInterrupt

    with caplog.at_level(logging.INFO):
        assert run_cli(body, "tomato_gevent.test") == 130
    assert [r.getMessage() for r in caplog.records] == ["interrupted"]
