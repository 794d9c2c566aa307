"""cidr: rules: the action for an IP-literal host, most specific prefix first.

``NetworkTable.add(network, action)`` keeps the first action per network;
``lookup(address)`` returns the action of the longest prefix containing the
address, or None. One dict per prefix length, keyed by the address bits above
it, probed from the longest length present down: a handful of probes.
An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is looked up as the IPv4
address it is, so ``cidr:10.0.0.0/8`` covers it too.

Pure: no I/O.
"""
import ipaddress
from typing import Dict, List, Optional


class NetworkTable:
    __slots__ = ("_tables", "_lengths", "_count")

    def __init__(self):
        self._tables: Dict[int, Dict[int, Dict[int, object]]] = {4: {}, 6: {}}
        self._lengths: Dict[int, List[int]] = {4: [], 6: []}
        self._count = 0

    def __len__(self):
        return self._count

    def add(self, network, action) -> bool:
        """Add a rule for network (ipaddress network); False if that network has one already."""
        by_length = self._tables[network.version]
        table = by_length.get(network.prefixlen)
        if table is None:
            table = by_length[network.prefixlen] = {}
            self._lengths[network.version] = sorted(by_length, reverse=True)
        key = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
        if key in table:
            return False
        table[key] = action
        self._count += 1
        return True

    def lookup(self, address) -> Optional[object]:
        """The action of the most specific network containing address (ipaddress address)."""
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        version = address.version
        table = self._tables[version]
        bits = address.max_prefixlen
        value = int(address)
        for length in self._lengths[version]:
            action = table[length].get(value >> (bits - length))
            if action is not None:
                return action
        return None


def parse_network(text: str):
    """'192.168.0.0/16' / 'fd00::/8' / '10.0.0.1' (a /32) -> ipaddress network; ValueError(why)."""
    try:
        return ipaddress.ip_network(text)
    except ValueError as e:
        raise ValueError("bad network %r (%s)" % (text, e)) from None
