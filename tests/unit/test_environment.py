"""environment.py: secrets passed in the environment are forgotten once read, by the C
environ (children) and by the initial block /proc/PID/environ shows."""
import os
import subprocess
import sys

import pytest

from tomato_gevent.environment import forget_environment, initial_entries

SECRET = "hunter2-from-the-environment"

# Run in a fresh interpreter: the initial block of a process is fixed at its exec.
CHILD = r"""
import os, subprocess, sys
from tomato_gevent.cli_common import read_secret
password = read_secret(None, None, "TOMATO_LOCAL_PASSWORD", "local password")
assert password == %r
hook = subprocess.run(["/bin/sh", "-c", "env; echo ===; tr '\\0' '\\n' < /proc/$PPID/environ"],
                      capture_output=True, text=True)
sys.stdout.write(hook.stdout)
""" % SECRET


@pytest.mark.parametrize("block, names, spans", [
    (b"A=1\0B=2\0", ["B"], [(4, 3)]),
    (b"A=1\0B=2\0A=3\0", ["A"], [(0, 3), (8, 3)]),              # every occurrence
    (b"AB=1\0A=2\0", ["A"], [(5, 3)]),                          # a name, not a prefix
    (b"A\0A=\0", ["A"], [(2, 2)]),                              # an entry without '=' is no variable
    (b"X=A=1\0", ["A"], []),                                    # '=' inside a value
    (b"", ["A"], []),
    (b"A=1\0B=2\0", ["A", "B"], [(0, 3), (4, 3)]),
])
def test_initial_entries(block, names, spans):
    assert initial_entries(block, names) == spans


def test_forget_pops_from_os_environ(monkeypatch):
    monkeypatch.setenv("TOMATO_TEST_FORGET", "x")
    forget_environment(["TOMATO_TEST_FORGET"])
    assert "TOMATO_TEST_FORGET" not in os.environ


def test_children_and_proc_environ_never_see_the_password():
    """A hook started after the password was read prints its environment and the vpn's
    /proc/PID/environ: the password is in neither, another variable still is."""
    env = dict(os.environ, TOMATO_LOCAL_PASSWORD=SECRET, TOMATO_TEST_MARKER="still-here")
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    child_env, _, parent_environ = result.stdout.partition("===\n")
    assert "TOMATO_TEST_MARKER=still-here" in child_env and "TOMATO_TEST_MARKER=still-here" in parent_environ
    assert SECRET not in result.stdout and "TOMATO_LOCAL_PASSWORD" not in result.stdout
    assert "could not be erased" not in result.stderr


def test_unreadable_proc_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TOMATO_TEST_FORGET", "x")
    assert forget_environment(["TOMATO_TEST_FORGET"], stat_path=str(tmp_path / "missing")) is False
    assert "TOMATO_TEST_FORGET" not in os.environ               # the children are spared anyway
