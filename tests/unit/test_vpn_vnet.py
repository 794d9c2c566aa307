"""vnet.py: which packets read from a tun with IFF_VNET_HDR need offload work (item 10.3)."""
import pytest

from tomato_gevent.vpn.vnet import (PLAIN_VNET_HDR, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR, is_offloaded)

ECN = 0x80      # VIRTIO_NET_HDR_GSO_ECN, or'ed into gso_type


def header(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return VNET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


@pytest.mark.parametrize("vnet_header, offloaded", [
    (PLAIN_VNET_HDR, False),
    # Forwarded from a NIC that verified the checksum: an ordinary, complete packet.
    (header(flags=VIRTIO_NET_HDR_F_DATA_VALID), False),
    (bytearray(header(flags=VIRTIO_NET_HDR_F_DATA_VALID)), False),
    # Partial checksum: the packet is not complete as it stands.
    (header(flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=20, csum_offset=16), True),
    (header(flags=VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID), True),
    # Super-packets, with or without the checksum flag.
    (header(gso_type=VIRTIO_NET_HDR_GSO_TCPV4, gso_size=1400), True),
    (header(flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type=VIRTIO_NET_HDR_GSO_TCPV6, gso_size=1380), True),
    (header(flags=VIRTIO_NET_HDR_F_DATA_VALID, gso_type=VIRTIO_NET_HDR_GSO_TCPV4 | ECN), True),
], ids=["plain", "data-valid", "data-valid-bytearray", "needs-csum", "needs-csum+data-valid", "gso-tcpv4",
        "gso-tcpv6+csum", "gso-ecn+data-valid"])
def test_only_partial_checksums_and_gso_are_offloaded(vnet_header, offloaded):
    assert is_offloaded(vnet_header) is offloaded


def test_every_flags_byte_without_gso():
    """Unknown flag bits do not make a packet offloaded; only NEEDS_CSUM does."""
    for flags in range(256):
        assert is_offloaded(header(flags=flags)) is bool(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM), flags
