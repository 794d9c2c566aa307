"""README examples name commands that exist: bin/vpn or tomato-vpn, never a bare `vpn`, and
never a bare `ping -a` (that runs iputils ping, where -a means audible)."""
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
TOOLS = ("vpn", "ping", "proxy", "dlmerge")
# a tool name where a command starts: line start (code blocks), after a backtick, or after `$ `
BARE = re.compile(r"(?:^|`|\$ )(%s) -" % "|".join(TOOLS), re.MULTILINE)


def test_no_bare_tool_commands():
    assert BARE.findall(README) == []


def test_code_block_commands_exist():
    commands = re.findall(r"^((?:bin/|tomato-)?(?:%s))\s" % "|".join(TOOLS), README, re.MULTILINE)
    assert commands and all(c.startswith(("bin/", "tomato-")) for c in commands)
