"""The tun device: python-pytun, non-blocking fd, waits through the gevent hub.

TunDevice(name, addrs=(), mtu=None, created_mtu=None) is a context manager:
  - a device that already exists (pre-created with `ip tuntap add ... mode tun`,
    as the seed's README does) is opened as it is; --addr/--mtu, if given, are
    applied and undone on exit, and if it was down it is set up and set down
    again on exit -- the device is left as it was. What is already so is left
    alone and not undone: an address already on the device (e.g. left by a vpn
    that was SIGKILLed) is not added again, which would fail, nor removed on exit;
  - an absent device is created (non-persistent: it disappears when closed),
    configured with --addr and --mtu (created_mtu when no --mtu is given) and set up.
With vnet_hdr=True (UDP offloads on) the device is opened with IFF_VNET_HDR so that
merged TCP packets can be written (coalesce.py), also a device created by `ip tuntap`
(TUNSETIFF sets the flag on attach); on exit the flag is cleared (also when a killed
predecessor left it set: each opener chooses its own flags anyway). With it, the
kernel's checksum and segmentation offloads are asked for (TUNSETOFFLOAD, offload.py):
reads then return TCP super-packets and partial checksums; `offloads` says what the
kernel granted (0: it refused, reads are whole packets as before). Offloads are always
set, to 0 without vnet_hdr, and reset to 0 on exit: a device left with offloads by a
killed predecessor would otherwise hand super-packets to a reader that cannot cut them.
The fd is non-blocking; scheduler.py decides how to wait for it (hub watcher or epoll).
"""
import errno
import fcntl
import ipaddress
import json
import logging
import os
import socket
import struct
import subprocess

from ..errors import ConfigError, TomatoError
from .offload import TUN_F_TSO_ECN, TUN_OFFLOADS, TUNSETOFFLOAD

log = logging.getLogger(__name__)


_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def device_exists(name):
    """True if a network device of that name exists in this process's network namespace."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def device_is_up(name):
    # ioctl on a socket asks this namespace's kernel directly (/sys may be another namespace's).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, struct.pack("16sH14x", name.encode(), 0))
    return bool(struct.unpack_from("16xH", ifreq)[0] & _IFF_UP)


def _sysfs_tun_flags(name):
    try:
        with open("/sys/class/net/%s/tun_flags" % name) as f:
            return int(f.read(), 16)
    except (OSError, ValueError):
        return None


def set_offloads(fd, wanted, ioctl=fcntl.ioctl):
    """Ask for the offloads `wanted` (TUN_F_* bits) on a tun fd; returns the set granted:
    wanted, else wanted without TSO_ECN (a kernel that cuts ECN super-packets itself), else
    0 after clearing them (the kernel refused: whole packets, as without offloads)."""
    for flags in (wanted, wanted & ~TUN_F_TSO_ECN):
        if flags:
            try:
                ioctl(fd, TUNSETOFFLOAD, flags)
                return flags
            except OSError as e:
                log.debug("TUNSETOFFLOAD %#x refused: %s", flags, e.strerror)
    try:
        ioctl(fd, TUNSETOFFLOAD, 0)
    except OSError as e:
        log.debug("TUNSETOFFLOAD 0 refused: %s", e.strerror)
    return 0


def device_addresses(name):
    """The addresses on a device, as ipaddress interfaces, in the device's order."""
    try:
        result = subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True, text=True)
        links = json.loads(result.stdout) if result.returncode == 0 else []
    except (OSError, ValueError):
        return []
    return [ipaddress.ip_interface("%s/%s" % (info["local"], info["prefixlen"]))
            for link in links for info in link.get("addr_info", ())]


class TunDevice:
    def __init__(self, name, addrs=(), mtu=None, vnet_hdr=False, created_mtu=None, tso=False, ioctl=fcntl.ioctl):
        self.name = name
        self.addrs = list(addrs)    # ipaddress interfaces (IPv4Interface / IPv6Interface) to add
        self.mtu = mtu
        self.created_mtu = created_mtu  # MTU of a device created here when mtu is None
        self.vnet_hdr = vnet_hdr    # every read/write carries a virtio_net_hdr (see coalesce.py)
        self.tso = tso              # ask for TUNSETOFFLOAD (needs vnet_hdr)
        self.offloads = 0           # TUN_F_* the kernel granted (offload.py)
        self._ioctl = ioctl
        self.precreated = None
        self._original_flags = None
        self._dev = None
        self.fd = None
        self._undo = []             # callables restoring a pre-created device, newest last

    # -- lifecycle ----------------------------------------------------------------
    def open(self):
        import pytun

        self.precreated = device_exists(self.name)
        if self.precreated:
            self._original_flags = _sysfs_tun_flags(self.name)
        flags = pytun.IFF_TUN | pytun.IFF_NO_PI
        try:
            try:
                vnet = pytun.IFF_VNET_HDR if self.vnet_hdr else 0
                self._dev = pytun.TunTapDevice(name=self.name, flags=flags | vnet)
            except pytun.Error as e:
                if not (self.vnet_hdr and e.args and e.args[0] == errno.EINVAL):
                    raise
                self.vnet_hdr = False       # a kernel without virtio headers on tun: plain packets
                self._dev = pytun.TunTapDevice(name=self.name, flags=flags)
        except pytun.Error as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            why = e.args[1] if len(e.args) > 1 else str(e)
            if code == errno.EPERM:
                raise TomatoError("cannot open tun device %s: %s (run as root or grant CAP_NET_ADMIN)"
                                  % (self.name, why)) from None
            if code == errno.EBUSY:
                raise TomatoError("cannot open tun device %s: %s (another process holds it?)"
                                  % (self.name, why)) from None
            if code == errno.EINVAL and self.precreated:
                raise ConfigError("cannot open %s: it exists but is not a tun device without packet info "
                                  "(create it with: ip tuntap add dev %s mode tun)" % (self.name, self.name)) from None
            raise TomatoError("cannot open tun device %s: %s" % (self.name, why)) from None
        self.fd = self._dev.fileno()
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            wanted = TUN_OFFLOADS if self.vnet_hdr and self.tso else 0
            self.offloads = set_offloads(self.fd, wanted, self._ioctl)
            if wanted and not self.offloads:
                log.info("%s refused checksum and segmentation offloads: one packet per read", self.name)
            self._configure()
        except BaseException:
            self.close()
            raise
        return self

    def _configure(self):
        dev = self._dev
        mtu = self.mtu if self.mtu is not None or self.precreated else self.created_mtu
        if mtu is not None and dev.mtu != mtu:
            old_mtu = dev.mtu
            try:
                dev.mtu = mtu
            except Exception as e:
                raise ConfigError("cannot set MTU %d on %s: %s" % (mtu, self.name, e)) from None
            self._undo.append(lambda: setattr(dev, "mtu", old_mtu))
        present = set(device_addresses(self.name)) if self.addrs and self.precreated else set()
        for addr in self.addrs:
            if addr in present:
                log.info("%s already has %s: kept as it is", self.name, addr)
                continue
            # nodad: a point-to-point tun has no one to collide with, and the address is usable at once.
            extra = ("nodad",) if addr.version == 6 else ()
            self._ip("addr", "add", str(addr), "dev", self.name, *extra)
            self._undo.append(lambda addr=addr: self._ip("addr", "del", str(addr), "dev", self.name))
        if not device_is_up(self.name):
            dev.up()
            self._undo.append(dev.down)

    def current_mtu(self):
        return self._dev.mtu

    def _ip(self, *args):
        try:
            result = subprocess.run(["ip", *args], capture_output=True, text=True)
        except OSError as e:
            raise TomatoError("cannot run ip(8) to configure %s: %s" % (self.name, e.strerror)) from None
        if result.returncode != 0:
            raise ConfigError("ip %s failed: %s" % (" ".join(args), result.stderr.strip()))

    def close(self):
        if self._dev is None:
            return
        if self.precreated:
            for undo in reversed(self._undo):
                try:
                    undo()
                except Exception as e:      # restoring is best effort, closing must go on
                    log.warning("could not restore %s: %s", self.name, e)
        self._undo.clear()
        if self.offloads and self.precreated:
            set_offloads(self.fd, 0, self._ioctl)      # left as we found it (offloads off)
        self.offloads = 0
        self._dev.close()
        self._dev = None
        self.fd = None
        if self.precreated and self.vnet_hdr:
            self._reset_vnet_hdr_flag()

    def _reset_vnet_hdr_flag(self):
        """The kernel keeps the last opener's IFF_VNET_HDR on a persistent device: attach
        once more without it, so it is left as it was (or as it was before a killed
        vpn set it)."""
        import pytun

        keep = (self._original_flags or pytun.IFF_NO_PI) & (pytun.IFF_NO_PI | pytun.IFF_ONE_QUEUE)
        try:
            pytun.TunTapDevice(name=self.name, flags=pytun.IFF_TUN | keep).close()
        except pytun.Error as e:
            log.warning("could not restore the flags of %s: %s", self.name, e)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
