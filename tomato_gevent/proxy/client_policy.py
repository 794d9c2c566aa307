"""Who may use the proxy: --allow CIDR (repeatable), and the default without it; which
connections have not been admitted yet (Admission, for --max-clients). Pure.

    ClientNetworks(networks).allows(ip) -> bool     ip in any of networks (longest-prefix
                                                    table; IPv4-mapped IPv6 as IPv4)
    default_networks(listen, interfaces) -> [networks] | None
        listen      the ip_address the proxy is bound to (0.0.0.0 / :: for every interface)
        interfaces  this host's addresses with their prefixes (interfaces.local_networks())
        None        everyone: listening on a public address or on every interface, where the
                    operator must say (--allow, --auth-file); bin/proxy warns that it is open
        else        loopback, plus the network(s) the listen address sits on when it is a
                    private one (10.0.1.1 on tun0 10.0.1.1/30 -> 10.0.1.0/30): what tinyproxy's
                    and dante's users expect of a proxy bound to a LAN or VPN address

A refused client gets 403 (HTTP) or "no acceptable method" (SOCKS5) and its connection
closed, with a line in the access log.
"""
import ipaddress

from ..rules.networks import NetworkTable

LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Answers remembered per client address object (full = emptied), as outbound.py remembers the
# destination policy: the same few clients come back on every connection.
REMEMBERED_CLIENTS = 4096


class ClientNetworks:
    __slots__ = ("networks", "_table", "_answers")

    def __init__(self, networks):
        self.networks = list(networks)
        self._table = NetworkTable()
        for network in self.networks:
            self._table.add(network, True)
        self._answers = {}                  # id(ip) -> (ip, allowed)

    def allows(self, ip):
        """Keyed by the object's id (the entry holds the object, so no other one can have that
        id while it is remembered): the table's lookup asks ipaddress for four Python
        properties (~6.5k instructions), the remembered answer costs ~2k."""
        answers = self._answers
        entry = answers.get(id(ip))
        if entry is not None:
            return entry[1]
        allowed = self._table.lookup(ip) is not None
        if len(answers) >= REMEMBERED_CLIENTS:
            answers.clear()
        answers[id(ip)] = (ip, allowed)
        return allowed

    def __str__(self):
        return ", ".join(str(network) for network in self.networks)


def default_networks(listen, interfaces):
    """The default allowed networks for a proxy bound to listen; None for everyone."""
    if listen.version == 6 and listen.ipv4_mapped is not None:
        listen = listen.ipv4_mapped
    if listen.is_loopback:
        return list(LOOPBACK_NETWORKS)
    if listen.is_unspecified or not listen.is_private:
        return None
    own = [interface.network for interface in interfaces if interface.ip == listen]
    return list(LOOPBACK_NETWORKS) + (own or [ipaddress.ip_network(listen)])


def parse_allow(text):
    """--allow's value: a network ('10.0.0.0/8', '192.168.1.5/24' = its /24) or an address."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError("%r is not a network (CIDR like 10.0.0.0/8) or an address" % text) from None


class Admission:
    """Client connections not admitted yet: no login yet (--auth-file). Keys are whatever
    the caller uses (its sockets), oldest first.

        arrived(key, now) / admitted(key) / left(key)
        oldest() -> key | None          the one to reclaim when every client slot is taken,
                                        so idle never-authenticating connections cannot keep
                                        out a client that would log in
        overdue(now, deadline) -> [key] those waiting longer than deadline (then forgotten)
    """

    __slots__ = ("_since",)

    def __init__(self):
        self._since = {}                # key -> arrival time; dicts keep insertion order

    def __len__(self):
        return len(self._since)

    def arrived(self, key, now):
        self._since[key] = now

    def admitted(self, key):
        self._since.pop(key, None)

    left = admitted

    def oldest(self):
        for key in self._since:
            del self._since[key]
            return key
        return None

    def overdue(self, now, deadline):
        due = []
        for key, since in self._since.items():
            if now - since < deadline:
                break
            due.append(key)
        for key in due:
            del self._since[key]
        return due
