"""The virtio_net_hdr in front of every packet on a tun opened with IFF_VNET_HDR (pure).

    offset 0      1         2           4          6           8             10
           +------+---------+-----------+----------+-----------+-------------+
           |flags |gso_type | hdr_len   | gso_size |csum_start |csum_offset  |
           +------+---------+-----------+----------+-----------+-------------+
           (u16 fields little-endian on the machines we run on, as the kernel writes them)

What a packet read from the tun needs, from its header (wireguard-go's
tun/offload_linux.go makes the same decision):
  - flags & NEEDS_CSUM (1): the checksum is partial, to be completed by whoever
    sends the packet on (only with TUNSETOFFLOAD csum);
  - gso_type != GSO_NONE: a super-packet to be cut into segments (only with TSO);
  - flags & DATA_VALID (2): the kernel counts the checksum as already verified,
    e.g. a packet a physical or virtio NIC validated that the host then forwards
    into the tunnel. Nothing is left to do: an ordinary, complete packet.
is_offloaded(header) says whether the packet needs such work (offload.split does it:
the tun's offloads are on, tun.py); a DATA_VALID packet does not.
"""
import struct

VNET_HDR_SIZE = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_TCPV6 = 4
PLAIN_VNET_HDR = bytes(VNET_HDR_SIZE)

VNET_HDR = struct.Struct("<BBHHHH")
FLAGS_OFFSET, GSO_TYPE_OFFSET = 0, 1


def is_offloaded(header):
    """True if the packet behind header has a partial checksum or is a GSO super-packet."""
    return bool(header[FLAGS_OFFSET] & VIRTIO_NET_HDR_F_NEEDS_CSUM or header[GSO_TYPE_OFFSET])
