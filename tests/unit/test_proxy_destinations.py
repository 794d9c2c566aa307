"""Destinations nobody reaches through the proxy (issue 23 item 7): multicast and the limited
broadcast, over HTTP CONNECT, SOCKS5 CONNECT and the SOCKS5 UDP relay. Loopback clients
included, --allow-private or not: a group address is never a service of one host."""
import ipaddress
import logging

import pytest
from gevent import socket

from tomato_gevent.proxy import exchange, socks5, socks_session

from .proxy_clients import HttpClient, SocksClient
from .proxy_doubles import DEADLINE_SECONDS, FakeResolver, wait_for

A = ipaddress.ip_address
GROUPS = ["224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1", "ff05::c", "::ffff:224.0.0.251"]


@pytest.mark.parametrize("destination", GROUPS)
@pytest.mark.parametrize("client", ["127.0.0.1", "10.0.1.2", "::1"])
def test_multicast_and_broadcast_are_refused_for_every_client(client, destination):
    assert not exchange.destination_allowed(A(client), A(destination))
    assert not exchange.destination_allowed(A(client), A(destination), allow_private=True)
    assert "multicast" in exchange.refused_destination(A(destination)) or "broadcast" in \
        exchange.refused_destination(A(destination))


@pytest.mark.parametrize("destination", ["223.255.255.255", "240.0.0.1", "fe00::1", "10.255.255.255"])
def test_neighbours_of_the_group_ranges_are_not_refused(destination):
    assert exchange.destination_allowed(A("10.0.1.2"), A(destination))


def group_resolver():
    return FakeResolver(addresses={"group.test": [A("224.0.0.1")], "all.test": [A("255.255.255.255")],
                                   "v6group.test": [A("ff02::1")]})


@pytest.mark.parametrize("host", ["group.test", "all.test", "v6group.test"])
def test_http_connect_to_a_group_address_is_403(proxies, host):
    proxy = proxies(resolver=group_resolver(), allow_private=True)
    client = HttpClient(proxy.server_port)
    client.send(b"CONNECT %s:1900 HTTP/1.1\r\n\r\n" % host.encode())
    head, body = client.response("CONNECT")
    assert head.status == 403
    assert b"multicast" in body or b"broadcast" in body


def test_socks5_connect_to_a_group_address_is_not_allowed(proxies):
    proxy = proxies(resolver=group_resolver(), socks5_handler=socks_session.handle, allow_private=True)
    client = SocksClient(proxy.server_port)
    assert client.method() == socks5.METHOD_NO_AUTH
    assert client.request("224.0.0.1", 1900).code == socks5.NOT_ALLOWED


def test_a_multicast_udp_associate_datagram_is_dropped(proxies, caplog):
    proxy = proxies(resolver=group_resolver(), socks5_handler=socks_session.handle, allow_private=True)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(DEADLINE_SECONDS)
    control = SocksClient(proxy.server_port)
    try:
        assert control.method() == socks5.METHOD_NO_AUTH
        reply = control.request("0.0.0.0", 0, command=socks5.CMD_UDP_ASSOCIATE)
        assert reply.code == socks5.SUCCEEDED
        with caplog.at_level(logging.DEBUG):
            for host in ["224.0.0.1", "group.test", "255.255.255.255"]:
                udp.sendto(socks5.render_udp_header(host, 5353) + b"mdns?", (reply.host, reply.port))
            control.close()
            wait_for(lambda: "UDP-ASSOCIATE" in caplog.text, "the association's log line")
    finally:
        udp.close()
        control.close()
    # Sent, each would have counted as relayed (or as "send failed" where no route leads there).
    assert "dropped 3 no allowed address" in caplog.text, caplog.text
    assert "up=0 " in caplog.text
