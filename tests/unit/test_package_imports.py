"""Which of the package's parts may import which: the vpn package imports nothing from the
proxy's (what both need, HTTP/1.x and upstream proxy credentials, is in tomato_gevent/http1)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tomato_gevent"


def imported_modules(path, root=PACKAGE):
    """Every module the file at `path` imports, as dotted names ("tomato_gevent.http1.http"),
    relative imports resolved against its package; `from pkg import name` also counts pkg.name."""
    package = [root.name] + list(path.relative_to(root).parent.parts)
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            names += [".".join(module)] + [".".join(module + [alias.name]) for alias in node.names]
    return names


def from_proxy(names):
    return [name for name in names if name == "tomato_gevent.proxy" or name.startswith("tomato_gevent.proxy.")]


def test_every_way_of_importing_the_proxy_is_seen(tmp_path):
    sample = tmp_path / "tomato_gevent" / "vpn" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("import tomato_gevent.proxy.http\n"
                      "from ..proxy import upstream_auth\n"
                      "from .. import proxy, netutil\n"
                      "from ..proxying import x\n"
                      "from . import tun\n"
                      "def f():\n    from tomato_gevent.proxy.http import parse_response_head\n")
    assert from_proxy(imported_modules(sample, tmp_path / "tomato_gevent")) == [
        "tomato_gevent.proxy.http", "tomato_gevent.proxy", "tomato_gevent.proxy.upstream_auth",
        "tomato_gevent.proxy", "tomato_gevent.proxy.http", "tomato_gevent.proxy.http.parse_response_head"]


def test_the_vpn_package_imports_nothing_from_the_proxy():
    offenders = ["%s imports %s" % (path.relative_to(PACKAGE), name)
                 for path in sorted((PACKAGE / "vpn").rglob("*.py"))
                 for name in from_proxy(imported_modules(path))]
    assert offenders == [], "\n".join(offenders)
