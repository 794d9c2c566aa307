"""Credentials for an upstream HTTP proxy: the proxy's -f and the VPN's --http-proxy.

    split_userinfo(text) -> (userinfo or None, "host:port")
        "user:password@host:port" (the password may hold ':' and '@': the last '@' ends it)
    basic_authorization(userinfo) -> b"Basic base64(user:password)"   (RFC 7617)
    read_userinfo(path) -> "user:password"    the first line of a file (cli_common.read_secret:
                                              a regular private file; argv shows in ps)
    authorization(proxy, auth_file, ...) -> ((host, port) or None, header or None)
                                              what one proxy flag and its auth-file flag give

The value goes into Proxy-Authorization on each request to that proxy (CONNECT and, for
the proxy's forward, plain requests). Nothing here logs; callers log host:port only, never
the userinfo.
"""
import base64

from ..cli_common import read_secret
from ..errors import ConfigError


def split_userinfo(text):
    userinfo, at, hostport = text.rpartition("@")
    if not at:
        return None, text
    if ":" not in userinfo or not userinfo.partition(":")[0]:
        raise ValueError("credentials before '@' must be user:password")
    return userinfo, hostport


def basic_authorization(userinfo):
    return b"Basic " + base64.b64encode(userinfo.encode("utf-8"))


def read_userinfo(path, what):
    """user:password from the first line of the file at path (ConfigError if it is not that)."""
    userinfo = read_secret(None, path, "TOMATO_UPSTREAM_CREDENTIALS", what)
    if ":" not in userinfo or not userinfo.partition(":")[0]:
        raise ConfigError("%s file %s: the first line must be user:password" % (what, path))
    return userinfo


def authorization(proxy, auth_file, proxy_flag, file_flag, what):
    """The (host, port) and Proxy-Authorization value (or None) of one upstream-proxy flag.

    proxy: (host, port, userinfo or None) as the flag's converter parsed it, or None;
    auth_file: the path its --...-auth-file flag gave, or None. Credentials come from one of
    the two; both, or a file without the proxy, is a ConfigError naming the flags.
    """
    if proxy is None:
        if auth_file is not None:
            raise ConfigError("%s needs %s" % (file_flag, proxy_flag))
        return None, None
    hostport, userinfo = proxy[:2], proxy[2]
    if auth_file is not None:
        if userinfo is not None:
            raise ConfigError("%s has credentials and %s gives them too: give one" % (proxy_flag, file_flag))
        userinfo = read_userinfo(auth_file, what)
    return hostport, (basic_authorization(userinfo) if userinfo is not None else None)
