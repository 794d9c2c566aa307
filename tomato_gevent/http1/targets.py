"""Request targets (RFC 9112 3.2) as a forwarding proxy takes them, pure: no I/O.

    parse_target(method, target) -> (host, port, authority, path)
        CONNECT: authority-form host:port (path b"")
        others:  absolute-form http://host[:port][/path][?query] (port 80 by default; the
                 fragment dropped; path "/" when empty); userinfo refused
    host is lower case, IPv6 without brackets; authority as the client wrote it.

Refused with RemoteProtocolError(400): origin-form ("/x": this is a proxy), other schemes,
userinfo, bad hosts, ports outside 1-65535. The usual target is matched by one regexp;
anything else (IPv6, an empty port, refusals) by parse_target_careful, which says why.
"""
import re

from ..errors import RemoteProtocolError

_REG_NAME = re.compile(rb"[A-Za-z0-9._~!$&'()*+,;=%-]+")
_PORT = re.compile(rb"[0-9]{1,5}")
# The usual absolute-form target, in one match: http://reg-name[:port][/path|?query][#fragment]
_ABSOLUTE_TARGET = re.compile(
    rb"[Hh][Tt][Tt][Pp]://([A-Za-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]{1,5}))?([/?][^#]*)?(?:#.*)?", re.DOTALL)


def _bad_request(msg):
    return RemoteProtocolError(msg, 400)


def split_authority(authority, default_port, bad):
    """b"host[:port]" / b"[v6]:port" -> (host str lower-case, port int)."""
    if authority.startswith(b"["):
        close = authority.find(b"]")
        if close < 0:
            raise bad("unterminated IPv6 literal in %r" % authority[:80])
        host = authority[1:close]
        rest = authority[close + 1:]
        if not re.fullmatch(rb"[0-9A-Fa-f:.]+", host):
            raise bad("bad IPv6 literal in %r" % authority[:80])
        if rest and not rest.startswith(b":"):
            raise bad("bad authority %r" % authority[:80])
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = authority.rpartition(b":")
        if not colon:
            host, port_text = authority, None
        if not host or not _REG_NAME.fullmatch(host):
            raise bad("bad host in %r" % authority[:80])
    if port_text is None or port_text == b"":
        if default_port is None:
            raise bad("missing port in %r" % authority[:80])
        port = default_port
    else:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise bad("bad port in %r" % authority[:80])
        port = int(port_text)
    return host.decode("ascii").lower(), port


def parse_target(method, target):
    """(host, port, authority, path) of a request target (RFC 9112 3.2): authority-form for
    CONNECT (path b""), else absolute-form http:// without userinfo (path from its "/")."""
    if method != "CONNECT":
        usual = _ABSOLUTE_TARGET.fullmatch(target)
        if usual is not None:
            host, port, path = usual.groups()
            port = int(port) if port else 80
            if 0 < port < 65536:
                authority = target[7:usual.end(2 if usual.start(2) >= 0 else 1)]
                if path is None:
                    path = b"/"
                elif path[:1] == b"?":
                    path = b"/" + path
                return host.decode("ascii").lower(), port, authority, path
    return parse_target_careful(method, target)


def parse_target_careful(method, target):
    """parse_target for every target, with the reason for refusing one."""
    if method == "CONNECT":
        host, port = split_authority(target, None, _bad_request)
        return host, port, target, b""
    if target[:7].lower() != b"http://":
        if target.startswith(b"/") or target == b"*":
            raise _bad_request("this is a proxy: the request target must be absolute "
                               "(http://host/path)")
        raise _bad_request("unsupported request target %r" % target[:80])
    rest = target[7:]
    cut = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    authority, path = rest[:cut], rest[cut:]
    if b"@" in authority:
        raise _bad_request("userinfo in the request target is not allowed")
    host, port = split_authority(authority, 80, _bad_request)
    path = path.split(b"#", 1)[0]
    if not path.startswith(b"/"):
        path = b"/" + path
    return host, port, authority, path
