"""vpn command line: the seed's flags, one-line errors with exit status 2, endpoint families."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tomato_gevent.errors import ConfigError
from tomato_gevent.vpn.cli import build_parser, show_arguments
from tomato_gevent.vpn.endpoints import resolve_endpoints

VPN = Path(__file__).resolve().parents[2] / "bin" / "vpn"


def run_vpn(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(VPN), *args], capture_output=True, text=True, timeout=30,
                          env=full_env, stdin=subprocess.DEVNULL)


def test_seed_command_line_parses():
    args = build_parser().parse_args("-la :5000 -lp pwd1 -pa 192.168.8.131:5000 -pp pwd2 -v".split())
    assert args.la == ("", 5000) and args.pa == ("192.168.8.131", 5000)
    assert (args.lp, args.pp, args.I, args.pvt, args.avt, args.verbose) == ("pwd1", "pwd2", "tun0", 10.0, 60.0, 1)
    assert args.keep_warm == 2.0
    dynamic = build_parser().parse_args("-la :5000 -lp pwd1 -d -pp pwd2 -v".split())
    assert dynamic.d and dynamic.pa is None


def test_extras_parse():
    args = build_parser().parse_args(["-la", "[::1]:5000", "-d", "-I", "tomato1", "-pvt", "5", "-avt", "30",
                                      "--addr", "10.0.1.1/30", "--mtu", "1400", "--keepalive", "0",
                                      "--keep-warm", "0"])
    assert args.la == ("::1", 5000) and args.I == "tomato1" and (args.pvt, args.avt) == (5.0, 30.0)
    assert [str(a) for a in args.addr] == ["10.0.1.1/30"] and args.mtu == 1400 and args.keepalive == 0
    assert args.keep_warm == 0


@pytest.mark.parametrize("argv", [
    ["-la", "5000", "-lp", "a", "-d", "-pp", "b"],                       # no colon
    ["-la", ":99999", "-lp", "a", "-d", "-pp", "b"],                     # port range
    ["-la", ":5000", "-lp", "a", "-pp", "b"],                            # neither -pa nor -d
    ["-la", ":5000", "-lp", "a", "-d", "-pa", "1.2.3.4:5", "-pp", "b"],  # both
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "-pvt", "0"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "-avt", "soon"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--mtu", "20"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--addr", "10.0.1.1"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "-I", "a-name-that-is-too-long"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--keepalive", "-1"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--keep-warm", "-1"],
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--bogus"],
    ["-la", "[fe80::1:5000", "-lp", "a", "-d", "-pp", "b"],
])
def test_bad_flags_one_line_exit_2(argv):
    result = run_vpn(*argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vpn: error:"), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_password_one_line_exit_2():
    result = run_vpn("-la", ":5000", "-d", "-pp", "peer-secret")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no local password" in lines[0] and "TOMATO_LOCAL_PASSWORD" in lines[0]
    assert "peer-secret" not in result.stderr


@pytest.mark.parametrize("how", ["flags", "files", "environment", "flag and file"])
def test_equal_passwords_refused_one_line_exit_2(how, tmp_path):
    """Item 10.2: one password for both directions would let a reflected datagram pass as the peer's."""
    secret = "same-secret"
    for name in ("local", "peer"):
        (tmp_path / name).write_text(secret + "\n")
        (tmp_path / name).chmod(0o600)  # a world-readable one adds a warning line
    args, env = {
        "flags": (["-lp", secret, "-pp", secret], {}),
        "files": (["--local-password-file", str(tmp_path / "local"),
                   "--peer-password-file", str(tmp_path / "peer")], {}),
        "environment": ([], {"TOMATO_LOCAL_PASSWORD": secret, "TOMATO_PEER_PASSWORD": secret}),
        "flag and file": (["-lp", secret, "--peer-password-file", str(tmp_path / "peer")], {}),
    }[how]
    result = run_vpn("-la", ":5000", "-d", *args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "passwords are equal" in lines[0], result.stderr
    assert secret not in result.stderr


@pytest.mark.parametrize("argv", [["-lp", "", "-pp", "peer-secret"], ["-lp", "local-secret", "-pp", ""]])
def test_empty_password_refused_one_line_exit_2(argv):
    result = run_vpn("-la", ":5000", "-d", *argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "password is empty" in lines[0], result.stderr


def test_unreadable_password_file_one_line_exit_2(tmp_path):
    result = run_vpn("-la", ":5000", "--local-password-file", str(tmp_path / "missing"), "-d", "-pp", "x")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_help():
    result = run_vpn("--help")
    assert result.returncode == 0
    for flag in ("-la", "-lp", "-pa", "-d", "-pp", "-I", "-pvt", "-avt", "--local-password-file",
                 "--peer-password-file", "--addr", "--mtu", "--keepalive"):
        assert flag in result.stdout


def test_endpoint_families():
    assert resolve_endpoints(("", 5000), ("10.9.0.2", 5000)) == (("0.0.0.0", 5000), ("10.9.0.2", 5000))
    assert resolve_endpoints(("", 5000), None) == (("0.0.0.0", 5000), None)
    bind, peer = resolve_endpoints(("", 5000), ("::1", 5001))
    assert bind[:2] == ("::", 5000) and peer[:2] == ("::1", 5001)
    bind, peer = resolve_endpoints(("::", 5000), ("127.0.0.1", 5001))     # dual stack reaches IPv4
    assert peer[:2] == ("::ffff:127.0.0.1", 5001)
    with pytest.raises(ConfigError):
        resolve_endpoints(("127.0.0.1", 5000), ("::1", 5001))


def test_addr_repeats_for_ipv4_and_ipv6():
    args = build_parser().parse_args("-la :5000 -d --addr 10.0.1.1/30 --addr fd01::1/64".split())
    assert [str(a) for a in args.addr] == ["10.0.1.1/30", "fd01::1/64"]


def test_show_without_a_running_vpn_is_one_line_exit_1(tmp_path):
    result = run_vpn("show", "--control", str(tmp_path / "nothing.sock"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["vpn: no vpn running: %s does not exist" % (tmp_path / "nothing.sock")]
    result = run_vpn("show", "-I", "tmtnone0", "--json")
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "vpn: no vpn running for tmtnone0: nothing listens on @tomato/vpn-tmtnone0 in this network namespace"]
    reordered = run_vpn("-I", "tmtnone0", "show")                   # show's options may come first
    assert (reordered.returncode, reordered.stderr) == (result.returncode, result.stderr)


@pytest.mark.parametrize("argv, expected", [
    (["show"], []),
    (["show", "-I", "tun1", "--json"], ["-I", "tun1", "--json"]),
    (["--control", "/x.sock", "show"], ["--control", "/x.sock"]),
    (["-I", "tun1", "--json", "show"], ["-I", "tun1", "--json"]),
    (["--control=/x.sock", "show", "--json"], ["--control=/x.sock", "--json"]),
    (["-Itun1", "show"], ["-Itun1"]),
    (["-I", "show", "-la", ":5000"], None),                     # an interface named "show"
    (["-la", ":5000", "--up", "show", "-d"], None),             # a hook command named "show"
    (["-la", ":5000", "-d"], None),
])
def test_show_is_recognised_after_its_own_options(argv, expected):
    assert show_arguments(argv) == expected


@pytest.mark.parametrize("argv", [["show", "-I", "tun0", "--control", "/x.sock"], ["show", "--bogus"],
                                  ["show", "-I", "a-name-that-is-too-long"]])
def test_show_bad_flags_one_line_exit_2(argv):
    result = run_vpn(*argv)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("vpn show: error:")


def test_unresolvable_peer_is_retried_until_it_resolves_or_a_stop(monkeypatch, caplog):
    import socket as socket_module

    import gevent.event

    from tomato_gevent import peername
    from tomato_gevent.vpn import endpoints

    answers = iter([socket_module.gaierror(-2, "Name or service not known")] * 3 + [[(2, 2, 17, "", ("10.9.0.2", 5000))]])

    def fake_getaddrinfo(host, port, *rest):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(peername.socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(endpoints, "RESOLVE_RETRY_SECONDS", 0.01)
    stop = gevent.event.Event()
    with caplog.at_level("INFO", logger="tomato_gevent.vpn.endpoints"):
        assert endpoints.resolve_endpoints_patiently(("", 5000), ("peer.test", 5000), stop) == (
            ("0.0.0.0", 5000), ("10.9.0.2", 5000))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "cannot resolve peer.test: Name or service not known; retrying every 0.01 s"
    assert len(messages) == 2 and messages[1].startswith("peer.test resolved after")

    def never_resolves(*args):
        raise socket_module.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(peername.socket, "getaddrinfo", never_resolves)
    stop.set()                                              # SIGTERM while waiting for the name
    assert endpoints.resolve_endpoints_patiently(("", 5000), ("peer.test", 5000), stop) is None


def test_peer_name_refresh_moves_the_endpoint_and_keeps_it_on_failure(monkeypatch):
    from types import SimpleNamespace

    from tomato_gevent.vpn import endpoints

    link = SimpleNamespace(endpoint=SimpleNamespace(address=("10.9.0.2", 5000)), moves=[])
    link.move_peer = lambda address: (setattr(link.endpoint, "address", address), link.moves.append(address))
    resolved = {"peer.test": ("10.9.0.3", 5000)}

    def fake_sockaddr(host, port):
        if host not in resolved:
            raise ConfigError("cannot resolve %s: gone" % host)
        return resolved[host]

    monkeypatch.setattr(endpoints, "sockaddr", fake_sockaddr)
    name = endpoints.PeerResolver(("peer.test", 5000), ("::", 5000, 0, 0))       # a dual-stack socket
    name.refresh(link)
    assert link.moves == [("::ffff:10.9.0.3", 5000, 0, 0)]
    name.refresh(link)                                                  # the same address: no move
    del resolved["peer.test"]
    name.refresh(link)
    numeric = endpoints.PeerResolver(("10.9.0.9", 5000), ("0.0.0.0", 5000))
    numeric.refresh(link)                                               # literal: never resolved again
    assert numeric.name.numeric and link.moves == [("::ffff:10.9.0.3", 5000, 0, 0)]


@pytest.mark.parametrize("argv", [
    ["-la", ":5000", "-lp", "a", "-pa", "10.9.9.9:5000", "-pp", "b", "--http-proxy", "10.9.9.1:8888"],   # UDP
    ["-la", ":5000", "-lp", "a", "-d", "-pp", "b", "--transport", "tcp", "--http-proxy", "10.9.9.1:8888"],
])
def test_http_proxy_needs_tcp_and_a_peer_to_dial(argv):
    result = run_vpn(*argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--http-proxy needs --transport tcp and -pa" in lines[0], result.stderr


def test_transport_flag():
    assert build_parser().parse_args("-la :5000 -d".split()).transport == "udp"
    args = build_parser().parse_args("-la :5000 -d --transport tcp".split())
    assert args.transport == "tcp" and args.http_proxy is None
    assert run_vpn("-la", ":5000", "-d", "--transport", "sctp").returncode == 2
