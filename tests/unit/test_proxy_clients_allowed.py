"""Who may use the proxy (issue 24 item 3): --allow CIDR, the default without it (loopback and
the listen address's own network when it is private; everyone, with a warning, on a public
address or the wildcard), refusals for HTTP and SOCKS5 with an access line."""
import io
import ipaddress
import socket as stdlib_socket
import struct

import gevent
import pytest
from gevent import socket

from tomato_gevent.proxy import interfaces, socks5, socks_session
from tomato_gevent.proxy.access_log import AccessLog
from tomato_gevent.proxy.client_policy import ClientNetworks, default_networks, parse_allow

from .proxy_clients import get
from .proxy_doubles import DEADLINE_SECONDS, FakeResolver
from .proxy_process import ProxyProcess, free_port

N = ipaddress.ip_network
I = ipaddress.ip_interface
A = ipaddress.ip_address
HOST = [I("127.0.0.1/8"), I("10.0.1.1/30"), I("192.168.8.131/24"), I("203.0.113.7/24"), I("fd00::2/64"),
        I("::1/128")]
LOOPBACK = [N("127.0.0.0/8"), N("::1/128")]


@pytest.mark.parametrize("listen,expected", [
    ("127.0.0.1", LOOPBACK),
    ("::1", LOOPBACK),
    ("10.0.1.1", LOOPBACK + [N("10.0.1.0/30")]),           # the VPN's tunnel address
    ("192.168.8.131", LOOPBACK + [N("192.168.8.0/24")]),
    ("fd00::2", LOOPBACK + [N("fd00::/64")]),
    ("::ffff:10.0.1.1", LOOPBACK + [N("10.0.1.0/30")]),
    ("10.9.9.9", LOOPBACK + [N("10.9.9.9/32")]),           # on no interface we know: itself
    ("203.0.113.7", None),                                  # TEST-NET-3 counts as private in Python...
    ("8.8.8.8", None),                                      # ...a public address: everyone
    ("0.0.0.0", None),
    ("::", None),
])
def test_default_networks(listen, expected):
    if listen == "203.0.113.7" and A(listen).is_private:
        expected = LOOPBACK + [N("203.0.113.0/24")]
    assert default_networks(A(listen), HOST) == expected


def test_client_networks_match_longest_prefixes_and_mapped_addresses():
    allowed = ClientNetworks([N("10.0.0.0/8"), N("fd00::/8"), N("192.168.1.7/32")])
    for ip in ["10.1.2.3", "::ffff:10.0.0.1", "fd12::1", "192.168.1.7"]:
        assert allowed.allows(A(ip)), ip
    for ip in ["11.0.0.1", "192.168.1.8", "fe80::1", "127.0.0.1"]:
        assert not allowed.allows(A(ip)), ip


def test_a_remembered_answer_is_each_client_objects_own():
    # Remembered per object id: fresh objects, whose ids CPython reuses as soon as the last
    # one died, must each get their own answer.
    allowed = ClientNetworks([N("10.0.0.0/8")])
    for i in range(50):
        assert allowed.allows(ipaddress.IPv4Address("10.0.0.%d" % (i + 1)))
        assert not allowed.allows(ipaddress.IPv4Address("11.0.0.%d" % (i + 1)))


def test_parse_allow():
    assert parse_allow("192.168.1.5/24") == N("192.168.1.0/24")
    assert parse_allow("10.0.0.1") == N("10.0.0.1/32")
    with pytest.raises(ValueError):
        parse_allow("10.0.0.0/33")


def netlink_address(family, prefixlen, attributes):
    body = struct.pack("=BBBBI", family, prefixlen, 0, 0, 1)
    for kind, data in attributes:
        attr = struct.pack("=HH", 4 + len(data), kind) + data
        body += attr + b"\0" * (-len(attr) % 4)
    return struct.pack("=LHHLL", 16 + len(body), interfaces.RTM_NEWADDR, 2, 1, 0) + body


def test_parse_addresses_prefers_the_local_address_of_a_point_to_point_link():
    data = (netlink_address(stdlib_socket.AF_INET, 30, [(interfaces.IFA_ADDRESS, bytes([10, 0, 1, 2])),
                                                        (interfaces.IFA_LOCAL, bytes([10, 0, 1, 1]))])
            + netlink_address(stdlib_socket.AF_INET6, 64, [(interfaces.IFA_ADDRESS, A("fd00::2").packed)])
            + struct.pack("=LHHLL", 20, interfaces.NLMSG_DONE, 2, 1, 0) + b"\0" * 4)
    assert interfaces.parse_addresses(data) == [I("10.0.1.1/30"), I("fd00::2/64")]
    assert interfaces.parse_addresses(data[:30]) == []          # truncated: nothing, no error


def test_local_networks_know_loopback():
    assert I("127.0.0.1/8") in interfaces.local_networks()


# -- refusals ------------------------------------------------------------------------------------
def serve_as(proxy, address, raw):
    """One connection handled as if it came from address; what the client got."""
    ours, theirs = socket.socketpair()

    def serve():
        try:
            proxy.handle(theirs, address)
        finally:
            theirs.close()
    job = gevent.spawn(serve)
    ours.settimeout(DEADLINE_SECONDS)
    ours.sendall(raw)
    got = b""
    while True:
        data = ours.recv(65536)
        if not data:
            break
        got += data
        if raw[:1] == b"\x05" and len(got) >= 2:
            break
    ours.close()
    job.join()
    return got


@pytest.fixture
def allowing_proxy(proxies):
    out = io.StringIO()
    proxy = proxies("direct\tok.test\n", resolver=FakeResolver({"ok.test"}), socks5_handler=socks_session.handle,
                    allowed_clients=ClientNetworks([N("10.0.1.0/30"), N("127.0.0.0/8")]),
                    access_log=AccessLog(stream=out), allow_private=True)
    proxy.lines = lambda: out.getvalue().splitlines()
    return proxy


def test_clients_outside_allow_get_403_or_no_method_and_a_line(allowing_proxy):
    got = serve_as(allowing_proxy, ("10.0.2.9", 4000), get("ok.test", 9))
    assert got.startswith(b"HTTP/1.1 403 ") and b"may not use this proxy" in got
    assert serve_as(allowing_proxy, ("::ffff:192.168.0.3", 4000, 0, 0), b"\x05\x01\x00") == b"\x05\xff"
    lines = allowing_proxy.lines()
    assert len(lines) == 2
    assert " 10.0.2.9:4000 - HTTP - - 403 " in lines[0]
    assert lines[0].endswith(" rule=- upstream=- (client address not allowed (--allow))")
    assert " SOCKS5 - - 403 " in lines[1]


def test_clients_inside_allow_are_served(allowing_proxy):
    got = serve_as(allowing_proxy, ("10.0.1.2", 4000), b"\x05\x01\x00")
    assert got == bytes((5, socks5.METHOD_NO_AUTH))
    got = serve_as(allowing_proxy, ("10.0.1.2", 4000), b"GET http://ok.test:9/ HTTP/1.0\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 502 ")        # got through the door: nothing listens on port 9
    assert allowing_proxy.stats.requests["-", "4xx"] == 0


def test_bin_proxy_warns_when_open_and_names_its_clients_when_not():
    port = free_port()
    for args, expected in [(["-a", ":%d" % port], "the proxy is open"),
                           (["-a", "127.0.0.1:%d" % port], "clients from 127.0.0.0/8, ::1/128"),
                           (["-a", "127.0.0.1:%d" % port, "--allow", "10.0.0.0/8"], "clients from 10.0.0.0/8)")]:
        proxy = ProxyProcess(*args)
        try:
            proxy.wait_line(lambda line: expected in line, expected)
        finally:
            proxy.stop()
