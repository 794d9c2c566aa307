"""proxy/udp_association.py: who counts as the client, and who may answer."""
import ipaddress

from tomato_gevent.proxy.udp_association import Association

CLIENT = ipaddress.ip_address("10.0.0.5")
OTHER = ipaddress.ip_address("10.0.0.6")
DNS = ipaddress.ip_address("192.0.2.53")


def test_the_first_datagram_from_the_client_ip_fixes_its_port_when_the_request_named_none():
    association = Association(CLIENT)
    assert association.client_address is None
    assert not association.is_client(OTHER, 4000)               # another host: never the client
    assert association.is_client(CLIENT, 4000)
    assert association.client_address == ("10.0.0.5", 4000)
    assert not association.is_client(CLIENT, 4001)             # another port of the same host


def test_a_named_port_is_the_only_client_port():
    association = Association(CLIENT, 5353)
    assert not association.is_client(CLIENT, 4000) and association.is_client(CLIENT, 5353)


def test_only_endpoints_the_client_sent_to_answer():
    association = Association(CLIENT, 4000)
    assert not association.answers(DNS, 53)
    association.sent_to(DNS, 53)
    assert association.answers(DNS, 53) and not association.answers(DNS, 54)


def test_the_least_recently_used_endpoint_is_forgotten_beyond_the_cap():
    association = Association(CLIENT, 4000, max_remotes=2)
    association.sent_to(DNS, 1)
    association.sent_to(DNS, 2)
    association.sent_to(DNS, 1)             # used again: now the most recent
    association.sent_to(DNS, 3)
    assert association.answers(DNS, 1) and association.answers(DNS, 3) and not association.answers(DNS, 2)


def test_an_endpoint_on_the_client_host_is_not_taken_for_the_client():
    association = Association(CLIENT)
    association.sent_to(CLIENT, 7)          # (before the client's port is known)
    assert not association.is_client(CLIENT, 7)
    assert not association.answers(CLIENT, 7)       # no client address to answer to yet
