"""The README's and docs/' examples name commands that exist: bin/vpn or tomato-vpn, never a
bare `vpn`, and never a bare `ping -a` (that runs iputils ping, where -a means audible); their
links between each other lead to pages and headings that exist."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
TOOLS = ("vpn", "ping", "proxy", "dlmerge")
# a tool name where a command starts: line start (code blocks), after a backtick, or after `$ `
BARE = re.compile(r"(?:^|`|\$ )(%s) -" % "|".join(TOOLS), re.MULTILINE)
COMMAND = re.compile(r"^((?:bin/|tomato-)?(?:%s))\s" % "|".join(TOOLS), re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def page_id(path):
    return str(path.relative_to(REPO))


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation but '-' dropped, spaces as '-'."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_docs_exist():
    assert {page_id(p) for p in PAGES} >= {"README.md", "docs/protocol.md", "docs/operations.md",
                                           "docs/proxy.md", "docs/performance.md", "docs/layout.md"}


def test_readme_is_a_front_door():
    assert len((REPO / "README.md").read_text().splitlines()) < 300


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_bare_tool_commands(page):
    assert BARE.findall(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_code_block_commands_exist(page):
    commands = COMMAND.findall(page.read_text())
    assert all(c.startswith(("bin/", "tomato-")) for c in commands), commands
    for command in commands:
        if command.startswith("bin/"):
            assert (REPO / command).is_file(), command


def test_commands_are_found():
    """The checks above see the quick starts and the references (not an empty match)."""
    found = {page_id(p): set(COMMAND.findall(p.read_text())) for p in PAGES}
    assert found["README.md"] >= {"bin/vpn", "bin/ping", "bin/proxy", "bin/dlmerge"}
    assert found["docs/operations.md"] >= {"bin/vpn", "bin/ping"}
    assert found["docs/proxy.md"] >= {"bin/dlmerge"}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_lead_somewhere(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue                                    # https://..., mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


# -- proxy examples never forward to themselves (issue 24 item 1) ----------------------------
EXAMPLES = sorted((REPO / "contrib" / "examples").glob("*.conf"))
PROXY_COMMAND = re.compile(r"(?:bin/proxy|tomato-proxy|PROXY_ARGS=)([^`\n]*)")


def proxy_addresses(text):
    """(-a, -f) of every proxy command line in text, where -f is a real address."""
    found = []
    for args in PROXY_COMMAND.findall(text):
        words = args.split()
        options = dict(zip(words, words[1:]))
        forward = options.get("-f", "")
        if re.fullmatch(r"[\w.\[\]:-]+:\d+", forward) and not forward.isupper():
            found.append((options.get("-a", "127.0.0.1:1080"), forward))
    return found


def test_proxy_examples_forward_to_the_other_host():
    """The docs show the demo's setup: A's proxy forwards to B's (10.0.1.2:1080), never to an
    address of its own (the README's old `-f 10.0.1.1:1080` on host A looped)."""
    pairs = [pair for path in PAGES + EXAMPLES + [REPO / "rules" / "example.txt"]
             for pair in proxy_addresses(path.read_text())]
    assert pairs and all(listen != forward for listen, forward in pairs), pairs
    assert {forward for _, forward in pairs} == {"10.0.1.2:1080"}


def test_example_configs_pair_up():
    """The installed examples are one host: its proxy's -f is the peer's end of its tunnel."""
    import ipaddress

    vpn = (REPO / "contrib" / "examples" / "vpn-example.conf").read_text()
    own = ipaddress.ip_interface(re.search(r"--addr (\S+)", vpn).group(1))
    peer = next(host for host in own.network.hosts() if host != own.ip)
    [(listen, forward)] = proxy_addresses((REPO / "contrib" / "examples" / "proxy-example.conf").read_text())
    assert forward.rpartition(":")[0] == str(peer) != str(own.ip)


def test_proxy_help_example_forwards_to_the_other_host():
    """`proxy --help`'s example is host A's proxy forwarding to B's, as the docs' (it said
    `-f 10.0.1.1:1080`, A's own tunnel address)."""
    from tomato_gevent.proxy.cli import build_parser

    example = build_parser().epilog.split("%(prog)s", 1)[1]
    [(listen, forward)] = proxy_addresses("bin/proxy" + example)
    assert forward == "10.0.1.2:1080" != listen


def layout_modules():
    """The modules docs/layout.md's tree names, as paths under tomato_gevent/."""
    tree = (REPO / "docs" / "layout.md").read_text().split("```")[1]
    inside = tree.split("\ntomato_gevent/\n", 1)[1]
    named, package = set(), None
    for line in inside.splitlines():
        if not line.startswith(" "):
            break                                       # the package's tree ends
        entry = re.match(r"  (\w+)(/|\.py)\s", line)
        if entry:
            package = entry.group(1) if entry.group(2) == "/" else None
            if package is None:
                named.add(entry.group(1) + ".py")
                continue
        named.update((package + "/" if package else "") + name for name in re.findall(r"\b(\w+\.py)\b", line)
                     if package or not entry)
    return named


def test_layout_names_every_module():
    """docs/layout.md's tree lists the package as it is: no module missing, none gone."""
    package = REPO / "tomato_gevent"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"}
    assert layout_modules() == modules
