"""tomato_gevent/launch.py in this process: which requirement is missing, which folder is
closed, what bin/* does about either, and the order start() keeps (patch, then import the CLI).
test_launchers.py runs the real launchers as subprocesses; these pin the decisions one by one."""
import errno
import os
import signal
import sys
import types
from importlib import metadata

import gevent.monkey
import pytest
from gevent.hub import Hub

from tomato_gevent import launch


@pytest.fixture(autouse=True)
def sigint_restored():
    """start() and run_checkout_tool() install SIGINT handlers: the test process keeps its own."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("argv, name", [(["/usr/local/bin/tomato-vpn", "show"], "tomato-vpn"),
                                        (["bin/ping"], "ping"), ([""], "tomato"), ([], "tomato")])
def test_started_as_is_the_commands_base_name(monkeypatch, argv, name):
    monkeypatch.setattr(sys, "argv", argv)
    assert launch.started_as() == name


def test_this_venv_lacks_no_requirement():
    assert launch.missing_requirement() is None


def requirements(monkeypatch, listed):
    def requires(name):
        assert name == "tomato_gevent"
        if isinstance(listed, Exception):
            raise listed
        return listed
    monkeypatch.setattr(metadata, "requires", requires)


@pytest.mark.parametrize("listed, missing", [
    (["gevent>=22", "surely-not-installed-tomato (>=1.0) ; python_version >= '3'"], "surely-not-installed-tomato"),
    (['absent-extra-only ; extra == "test"', "gevent[recommended]>=22", "idna~=3.4"], None),
    (["cryptography!=41", "also-absent<2", "another-absent"], "also-absent"),
    (None, None),
    (metadata.PackageNotFoundError("tomato_gevent"), "tomato_gevent"),
], ids=["version-and-marker", "extras-skipped", "first-of-two", "no-requirements", "package-not-installed"])
def test_missing_requirement_is_the_first_uninstalled_one(monkeypatch, listed, missing):
    """Names are cut at any version, extra or marker syntax and looked up in this interpreter's
    installed metadata; requirements of extras (the tests') are not the tools'."""
    requirements(monkeypatch, listed)
    assert launch.missing_requirement() == missing


def test_user_name_is_the_account_or_the_uid(monkeypatch):
    import pwd

    assert launch.user_name() == pwd.getpwuid(os.getuid()).pw_name

    def unknown(uid):
        raise KeyError(uid)
    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert launch.user_name() == "uid %d" % os.getuid()


@pytest.fixture
def closed(monkeypatch):
    """Folders this user may not enter, whoever runs the test (root enters every folder, so the
    permission bits cannot say it): os.access answers no for X_OK on the folders in the set."""
    folders = set()
    access = os.access

    def fake_access(path, mode, **kw):
        if mode & os.X_OK and os.path.abspath(path) in folders:
            return False
        return access(path, mode, **kw)
    monkeypatch.setattr(launch.os, "access", fake_access)
    return folders


def test_closed_folder_is_the_first_one_on_the_way(tmp_path, closed):
    (tmp_path / "home" / "dev" / ".venv" / "bin").mkdir(parents=True)
    python = str(tmp_path / "home" / "dev" / ".venv" / "bin" / "python")
    assert launch.closed_folder(python) is None
    closed.update({str(tmp_path / "home" / "dev"), str(tmp_path / "home")})
    assert launch.closed_folder(python) == str(tmp_path / "home")


def test_closed_folder_follows_links(tmp_path, closed):
    """A venv whose python links into a closed home (a venv made from pyenv's python under /root)."""
    (tmp_path / "root" / "pyenv").mkdir(parents=True)
    (tmp_path / "open").mkdir()
    link = tmp_path / "open" / "python"
    link.symlink_to(tmp_path / "root" / "pyenv" / "python3")
    closed.add(str(tmp_path / "root"))
    assert launch.closed_folder(str(link)) == str(tmp_path / "root")


def test_closed_folder_stops_at_a_folder_that_is_not_there(tmp_path, closed):
    closed.add(str(tmp_path / "absent" / "deeper"))
    assert launch.closed_folder(str(tmp_path / "absent" / "deeper" / "bin" / "python")) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root enters a folder of mode 0")
def test_closed_folder_for_real_as_a_user(tmp_path):
    folder = tmp_path / "private"
    (folder / "bin").mkdir(parents=True)
    folder.chmod(0)
    try:
        assert launch.closed_folder(str(folder / "bin" / "python")) == str(folder)
    finally:
        folder.chmod(0o700)


class Execed(Exception):
    pass


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout at tmp_path (its bin/vpn is the script) whose interpreter lacks gevent."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(launch, "missing_requirement", lambda: "gevent")
    monkeypatch.setattr(sys, "argv", ["bin/vpn", "show", "--json"])
    monkeypatch.setattr(launch, "start", lambda tool: pytest.fail("started %s without gevent" % tool))
    return tmp_path


def make_venv_python(checkout):
    python = checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    return str(python)


def test_a_checkout_tool_reexecutes_with_the_venv_python(checkout, monkeypatch):
    python = make_venv_python(checkout)

    def execv(path, argv):
        raise Execed(path, argv)
    monkeypatch.setattr(launch.os, "execv", execv)
    with pytest.raises(Execed) as execed:
        launch.run_checkout_tool("vpn", str(checkout / "bin" / "vpn"))
    assert execed.value.args == (python, [python, "bin/vpn", "show", "--json"])


def test_a_venv_python_that_cannot_run_is_one_line(checkout, monkeypatch, capsys):
    python = make_venv_python(checkout)

    def execv(path, argv):
        raise OSError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(launch.os, "execv", execv)
    assert launch.run_checkout_tool("vpn", str(checkout / "bin" / "vpn")) == 1
    assert capsys.readouterr().err == "vpn: cannot run %s: Permission denied\n" % python


def test_without_a_venv_the_line_says_to_run_make(checkout, capsys):
    assert launch.run_checkout_tool("vpn", str(checkout / "bin" / "vpn")) == 1
    assert capsys.readouterr().err == ("vpn: gevent is not installed for %s: run `make` in %s first\n"
                                       % (sys.executable, checkout))


def test_inside_the_venv_it_never_reexecutes_itself(checkout, monkeypatch, capsys):
    """The venv's own python lacking gevent (a broken venv) must not exec itself forever."""
    make_venv_python(checkout)
    monkeypatch.setattr(sys, "prefix", str(checkout / ".venv"))
    monkeypatch.setattr(launch.os, "execv", lambda *a: pytest.fail("re-executed the running venv"))
    assert launch.run_checkout_tool("vpn", str(checkout / "bin" / "vpn")) == 1
    assert "gevent is not installed" in capsys.readouterr().err


def test_a_venv_behind_a_closed_folder_names_the_folder_and_user(checkout, monkeypatch, closed, capsys):
    python = make_venv_python(checkout)
    closed.add(str(checkout / ".venv"))
    monkeypatch.setattr(launch.os, "execv", lambda *a: pytest.fail("tried a python it cannot reach"))
    assert launch.run_checkout_tool("vpn", str(checkout / "bin" / "vpn")) == 1
    assert capsys.readouterr().err == (
        "vpn: cannot run %s as %s: %s is closed to this user (`make install` installs the tools for every user)\n"
        % (python, launch.user_name(), checkout / ".venv"))


def test_a_checkout_with_its_requirements_starts_the_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "missing_requirement", lambda: None)
    monkeypatch.setattr(launch, "start", lambda tool: "started %s" % tool)
    assert launch.run_checkout_tool("ping", str(tmp_path / "bin" / "ping")) == "started ping"


@pytest.fixture
def fake_tool(monkeypatch):
    """tomato_gevent.faketool.cli with a main() that records what held when it ran; gevent's
    patch_all recorded instead of done (this process stays unpatched)."""
    events = []
    monkeypatch.setattr(gevent.monkey, "patch_all", lambda: events.append("patched"))
    monkeypatch.setattr(Hub, "NOT_ERROR", Hub.NOT_ERROR)        # restored after the test
    cli = types.ModuleType("tomato_gevent.faketool.cli")
    monkeypatch.setitem(sys.modules, "tomato_gevent.faketool", types.ModuleType("tomato_gevent.faketool"))
    monkeypatch.setitem(sys.modules, "tomato_gevent.faketool.cli", cli)
    monkeypatch.setattr(sys, "argv", ["tomato-faketool"])
    return events, cli


def test_start_patches_then_runs_main_with_ctrl_c_raising_again(fake_tool):
    events, cli = fake_tool

    def main():
        events.append(("main", signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                       issubclass(KeyboardInterrupt, Hub.NOT_ERROR)))
        return 3
    cli.main = main
    assert launch.start("faketool") == 3
    assert events == ["patched", ("main", True, True)]


def test_ctrl_c_escaping_main_is_one_line_and_status_130(fake_tool, capsys):
    _, cli = fake_tool

    def main():
        raise KeyboardInterrupt
    cli.main = main
    assert launch.start("faketool") == launch.INTERRUPTED_STATUS == 130
    assert capsys.readouterr().err == "tomato-faketool: interrupted\n"


def test_until_the_tool_runs_ctrl_c_exits_at_once():
    launch.interrupt_exits_quietly()
    assert signal.getsignal(signal.SIGINT) is launch._exit_interrupted


def test_quiet_hub_interrupts_adds_keyboard_interrupt_once(monkeypatch):
    monkeypatch.setattr(Hub, "NOT_ERROR", tuple(t for t in Hub.NOT_ERROR if t is not KeyboardInterrupt))
    launch.quiet_hub_interrupts()
    launch.quiet_hub_interrupts()
    assert Hub.NOT_ERROR.count(KeyboardInterrupt) == 1


@pytest.mark.parametrize("tool", ["vpn", "ping", "proxy", "dlmerge"])
def test_each_installed_entry_point_starts_its_tool(monkeypatch, tool):
    monkeypatch.setattr(launch, "start", lambda name: "started %s" % name)
    assert getattr(launch, tool)() == "started %s" % tool
