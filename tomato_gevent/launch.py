"""Entry points of the installed tomato-* commands.

Each one monkey-patches with gevent before importing its tool, exactly like
the bin/* launchers in the checkout.
"""
import importlib


def _run(tool):
    from gevent import monkey

    monkey.patch_all()
    return importlib.import_module("tomato_gevent.%s.cli" % tool).main()


def vpn():
    return _run("vpn")


def ping():
    return _run("ping")


def proxy():
    return _run("proxy")


def dlmerge():
    return _run("dlmerge")
