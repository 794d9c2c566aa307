"""How every tomato command starts: the installed tomato-* entry points and bin/* in a checkout.

Two rules hold from the first instruction to the last:
- gevent monkey-patches before any module that touches sockets is imported;
- Ctrl-C at any moment ends the command with one line on stderr, exit status 130 and no
  traceback (while importing there is nothing to clean up, so it exits at once).

bin/* may be started by any python3 from any working directory: when that interpreter lacks
the dependencies, the launcher re-executes the script with the checkout's .venv python, or
says in one line that `make` has to build it first -- or, when the venv is there but behind a
folder this user may not enter (a venv built from a Python under /root, run by another user),
that this user cannot run it.
"""
import importlib
import os
import signal
import sys

INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for a Ctrl-C
VENV_DIR = ".venv"  # the Makefile's VENV default


def started_as():
    """The name the command was started as (tomato-vpn, vpn, ...), for one-line messages."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tomato"


def _exit_interrupted(signum=None, frame=None):
    os.write(2, ("%s: interrupted\n" % started_as()).encode())
    os._exit(INTERRUPTED_STATUS)


def interrupt_exits_quietly():
    """Until the tool runs: SIGINT writes one line and exits 130 at once (no KeyboardInterrupt
    unwinding through half-finished imports)."""
    signal.signal(signal.SIGINT, _exit_interrupted)


def quiet_hub_interrupts():
    """A KeyboardInterrupt raised inside gevent's event loop still reaches the main greenlet,
    but the hub no longer prints it as a traceback first."""
    from gevent.hub import Hub

    if not issubclass(KeyboardInterrupt, Hub.NOT_ERROR):
        Hub.NOT_ERROR = Hub.NOT_ERROR + (KeyboardInterrupt,)


def start(tool):
    """Monkey-patch, import tomato_gevent.<tool>.cli and run its main(); its exit status."""
    interrupt_exits_quietly()
    from gevent import monkey

    monkey.patch_all()
    quiet_hub_interrupts()
    main = importlib.import_module("tomato_gevent.%s.cli" % tool).main
    # From here on Ctrl-C raises KeyboardInterrupt again: the tool stops cleanly (its own
    # handlers, run_cli), and this is the last resort for the moments before and after.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return main()
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % started_as())
        return INTERRUPTED_STATUS


def missing_requirement():
    """The first installed requirement of tomato_gevent this interpreter lacks, or None.

    Reads the installed metadata (setup.cfg's install_requires), so a new dependency needs
    no second list here.
    """
    from importlib import metadata

    try:
        requirements = metadata.requires("tomato_gevent") or []
    except metadata.PackageNotFoundError:
        return "tomato_gevent"
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0].strip()
        for separator in "<>=!~[ (":
            name = name.split(separator)[0]
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            return name
    return None


def user_name():
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "uid %d" % os.getuid()


def closed_folder(path):
    """The first existing folder on the way to path, or to where its links lead, that this user
    may not enter; None if there is none (then path is reachable, or simply absent)."""
    for candidate in (os.path.abspath(path), os.path.realpath(path)):
        folder = os.sep
        for part in candidate.split(os.sep)[1:-1]:
            folder = os.path.join(folder, part)
            if not os.path.lexists(folder):
                break
            if not os.access(folder, os.X_OK):
                return folder
    return None


def run_checkout_tool(tool, script):
    """bin/<tool>: run the checkout's code with an interpreter that has the dependencies.

    script is the launcher's __file__; the checkout is the folder above bin/ (the launcher
    has put it first on sys.path, to import this module from it).
    """
    interrupt_exits_quietly()
    checkout = os.path.dirname(os.path.dirname(os.path.realpath(script)))
    missing = missing_requirement()
    if missing is not None:
        venv = os.path.join(checkout, VENV_DIR)
        venv_python = os.path.join(venv, "bin", "python")
        running_in_venv = os.path.realpath(sys.prefix) == os.path.realpath(venv)
        closed = None if running_in_venv else closed_folder(venv_python)
        if closed is not None:
            sys.stderr.write("%s: cannot run %s as %s: %s is closed to this user (`make install` "
                             "installs the tools for every user)\n" % (started_as(), venv_python, user_name(), closed))
            return 1
        if os.path.exists(venv_python) and not running_in_venv:
            try:
                os.execv(venv_python, [venv_python, sys.argv[0]] + sys.argv[1:])
            except OSError as e:  # e.g. a venv built from a Python in root's home, run by another user
                sys.stderr.write("%s: cannot run %s: %s\n" % (started_as(), venv_python, e.strerror or e))
                return 1
        sys.stderr.write("%s: %s is not installed for %s: run `make` in %s first\n"
                         % (started_as(), missing, sys.executable, checkout))
        return 1
    return start(tool)


def vpn():
    return start("vpn")


def ping():
    return start("ping")


def proxy():
    return start("proxy")


def dlmerge():
    return start("dlmerge")
