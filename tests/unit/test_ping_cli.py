"""bin/ping's command line: every bad input is a one-line error with exit status 2, never a traceback.

These checks stop before any socket is opened, so they need neither root nor a network.
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tomato_gevent.ping import cli

BIN_PING = Path(__file__).resolve().parents[2] / "bin" / "ping"


@pytest.fixture(autouse=True)
def restore_root_logger():
    """main() installs its own stderr handler on the root logger; put pytest's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_main(capsys, *argv):
    try:
        status = cli.main(list(argv))
    except SystemExit as e:  # argparse
        status = e.code
    captured = capsys.readouterr()
    return status, captured.err


def test_help_text(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for flag in ("-a HOST", "-i SECONDS", "-c COUNT", "-W TIMEOUT", "-s PAYLOAD_BYTES", "-4", "-6", "-v"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: -a"),
    (["-a", "127.0.0.1", "-i", "0"], "argument -i/--interval: '0' must be greater than 0"),
    (["-a", "127.0.0.1", "-i", "soon"], "argument -i/--interval: 'soon' is not a number"),
    (["-a", "127.0.0.1", "-c", "0"], "argument -c/--count: '0' must be greater than 0"),
    (["-a", "127.0.0.1", "-c", "2.5"], "argument -c/--count: '2.5' is not a whole number"),
    (["-a", "127.0.0.1", "-W-1"], "argument -W/--timeout: '-1' must be greater than 0"),
    (["-a", "127.0.0.1", "-s-1"], "argument -s/--size: '-1' must be 0-65527"),
    (["-a", "127.0.0.1", "-s", "70000"], "argument -s/--size: '70000' must be 0-65527"),
    (["-a", "127.0.0.1", "-4", "-6"], "argument -6: not allowed with argument -4"),
    (["-a", "127.0.0.1", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_exit_2_with_one_line(capsys, argv, message):
    status, err = run_main(capsys, *argv)
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("ping: error")] == \
        ["ping: error: " + err.split("ping: error: ", 1)[1].strip()]


def test_short_interval_refused_for_non_root(capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    status, err = run_main(capsys, "-a", "127.0.0.1", "-i", "0.1", "-c", "1")
    assert status == 2
    assert err.count("\n") == 1
    assert "ERROR" in err and "-i 0.1: cannot flood; the minimal interval for non-root users is 0.2s" in err


def test_payload_too_big_for_ipv4(capsys):
    status, err = run_main(capsys, "-a", "127.0.0.1", "-s", "65508")
    assert status == 2
    assert "-s 65508: at most 65507 bytes fit an IPv4 packet" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["-a", "::1", "-4"], "::1 is an IPv6 address, but -4 was given"),
    (["-a", "127.0.0.1", "-6"], "127.0.0.1 is an IPv4 address, but -6 was given"),
])
def test_address_family_conflicts(capsys, argv, message):
    status, err = run_main(capsys, *argv)
    assert (status, err.count("\n")) == (2, 1)
    assert message in err


def test_real_script_bad_flag_has_no_traceback():
    result = subprocess.run([sys.executable, str(BIN_PING), "-a", "127.0.0.1", "-c", "many"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument -c/--count: 'many' is not a whole number" in result.stderr
