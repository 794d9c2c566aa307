"""The test suite's own layout: no module under tests/ imports a test module (test_*.py).

Shared doubles and helpers live in helper modules (tests/support.py, tests/unit/vpn_doubles.py,
tests/unit/proxy_doubles.py, tests/netns/nsutil.py, tests/netns/vpn_support.py, ...), shared
fixtures in conftest.py, helper programs in programs/ folders, run by path."""
import ast
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def imported_modules(path, root=CHECKOUT):
    """Every module the file `path` imports, as dotted names from `root` (relative imports
    resolved against the file's package; `from pkg import name` also counts as pkg.name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(root).parent.parts)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            names.append(".".join(module))
            names += [".".join(module + [alias.name]) for alias in node.names]
    return names


def naming_test_modules(names):
    return [name for name in names if name.rsplit(".", 1)[-1].startswith("test_")]


def test_every_way_of_importing_a_test_module_is_seen(tmp_path):
    sample = tmp_path / "tests" / "netns" / "test_sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("import tests.netns.test_vpn\n"
                      "from tests.unit.test_vpn_link import Side\n"
                      "from .test_ping import PingLog\n"
                      "from . import test_proxy, nsutil\n"
                      "from .. import support\n"
                      "from .vpn_support import start_vpn\n"
                      "def f():\n    from tests.unit.test_vpn_status import status\n")
    assert naming_test_modules(imported_modules(sample, tmp_path)) == [
        "tests.netns.test_vpn", "tests.unit.test_vpn_link", "tests.netns.test_ping", "tests.netns.test_proxy",
        "tests.unit.test_vpn_status"]


def test_no_module_under_tests_imports_a_test_module():
    offenders = ["%s imports %s" % (path.relative_to(CHECKOUT), name)
                 for path in sorted((CHECKOUT / "tests").rglob("*.py"))
                 for name in naming_test_modules(imported_modules(path))]
    assert offenders == [], "move what they share into a helper module or conftest.py:\n" + "\n".join(offenders)
