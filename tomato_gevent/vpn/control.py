"""The control socket: `vpn show` asks a running vpn for its status.

Every vpn serves a unix stream socket. By default an abstract one, @tomato/vpn-IFACE:
the kernel scopes abstract names to the network namespace, so a vpn for tun0 in one
namespace and another for tun0 in a second one each have their own (a file under /run
is shared by every namespace that shares the mount namespace), and nothing is left
behind by a killed process. --control PATH serves a file instead (socket 0600; made in
/run/tomato, 0700, if the path is there), --control @NAME another abstract name.
An abstract socket has no file permissions, so both ends check the other's credentials
(SO_PEERCRED): the server answers root and its own user only; the client asks only a
server run by root or by itself (not a squatter that took the name first).
Protocol, one exchange per connection:
  client -> server   one command line: b"show\\n" (at most MAX_REQUEST_BYTES)
  server -> client   one JSON object and b"\\n", then close: the status (status.py lists
                     the keys), or {"error": "..."} for an unknown command or a caller
                     of another user
A client has REQUEST_DEADLINE_SECONDS for the whole exchange; MAX_CLIENTS are served at once.
The JSON is the contract; `vpn show` formats its human view from it.

ControlServer (gevent glue) binds the socket, replacing a stale file left by a killed
process but never one that still answers, and removes it on close if it is still
its own. query() is the client side (a plain blocking socket).
"""
import errno
import json
import logging
import os
import socket
import stat
import struct

from ..errors import TomatoError

log = logging.getLogger(__name__)

DEFAULT_DIRECTORY = "/run/tomato"
MAX_REQUEST_BYTES = 256
CLIENT_TIMEOUT_SECONDS = 5.0            # query()'s wait for the answer
REQUEST_DEADLINE_SECONDS = 5.0          # one whole exchange, however the client paces its bytes
MAX_CLIENTS = 4                         # served at once; more wait in the listen backlog
LISTEN_BACKLOG = 16
PROBE_TIMEOUT_SECONDS = 0.5             # is a socket left at our path still served?
COMMANDS = ("show",)
ABSTRACT_PREFIX = "@"                   # how ss(8) and --control write an abstract name
_PEERCRED = struct.Struct("3i")         # struct ucred: pid, uid, gid


class ControlError(TomatoError):
    """The control socket cannot be served or reached (exit status 1)."""


def default_path(interface):
    """The default control socket of the vpn serving interface: an abstract name, one per
    network namespace."""
    return "%stomato/vpn-%s" % (ABSTRACT_PREFIX, interface)


def is_abstract(path):
    return path.startswith(ABSTRACT_PREFIX)


def sockaddr(path):
    """What bind/connect take: a leading NUL for an abstract name."""
    return "\0" + path[len(ABSTRACT_PREFIX):] if is_abstract(path) else path


def peer_credentials(sock):
    """(pid, uid, gid) of the process at the other end of a connected unix socket."""
    return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))


def trusted(uid, own_uid=None):
    """The other end may be talked to: root, or the same user as this process."""
    return uid == 0 or uid == (os.geteuid() if own_uid is None else own_uid)


def answer(request, status):
    """The server's reply (bytes) to one request line; status() gives the status dict."""
    command = request.decode("ascii", "replace").strip()
    if command == "show":
        reply = status()
    else:
        reply = {"error": "unknown command %r (known: %s)" % (command[:40], ", ".join(COMMANDS))}
    return json.dumps(reply).encode() + b"\n"


def _still_served(path):
    """False only if nothing listens on the unix socket at path (a killed vpn's
    leftover); a listener too busy to take the connection in time counts as alive."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_SECONDS)
    try:
        probe.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:         # timeout: a full backlog, someone is there
        return True
    finally:
        probe.close()


def _prepare_directory(directory):
    if os.path.isdir(directory):
        return
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise ControlError("cannot create %s: %s" % (directory, e.strerror)) from None


def _holder(path):
    """'process PID (uid UID)' serving an abstract name, as far as a connection tells."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_SECONDS)
    try:
        probe.connect(sockaddr(path))
        pid, uid, _ = peer_credentials(probe)
        return "process %d (uid %d)" % (pid, uid)
    except OSError:
        return "another process"
    finally:
        probe.close()


def _bind_abstract(path):
    from gevent import socket as gsocket

    sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(sockaddr(path))
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ControlError("control socket %s is in use by %s in this network namespace (give this vpn "
                               "its own with --control)" % (path, _holder(path))) from None
        raise ControlError("cannot serve control socket %s: %s" % (path, e.strerror or e)) from None
    return sock


def bind_control_socket(path):
    """A listening unix socket at path (an abstract name, or a file of mode 0600);
    refuses a path another process serves."""
    from gevent import socket as gsocket

    if is_abstract(path):
        return _bind_abstract(path)
    directory = os.path.dirname(path) or "."
    if os.path.abspath(directory) == DEFAULT_DIRECTORY:
        _prepare_directory(directory)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise ControlError("cannot use control socket %s: %s" % (path, e.strerror)) from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise ControlError("cannot use control socket %s: it exists and is not a socket" % path)
        if _still_served(path):
            raise ControlError("control socket %s is in use by another vpn (give this one its own "
                               "with --control PATH)" % path)
        try:
            os.unlink(path)     # left by a process that was killed
        except FileNotFoundError:
            pass                # another vpn starting with this path removed it first
    sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)         # no moment at which the socket is more open than 0600
    try:
        sock.bind(path)
        sock.listen(LISTEN_BACKLOG)     # at once: a bound socket that refuses looks like a leftover
        os.chmod(path, 0o600)
    except OSError as e:
        sock.close()
        raise ControlError("cannot serve control socket %s: %s" % (path, e.strerror or e)) from None
    finally:
        os.umask(old_umask)
    return sock


class ControlServer:
    """Answers control requests with status() while running; a context manager."""

    def __init__(self, path, status, deadline=REQUEST_DEADLINE_SECONDS):
        self.path = path
        self.status = status
        self.deadline = deadline    # seconds a client may hold one of the MAX_CLIENTS slots
        self._server = None
        self._identity = None       # (st_dev, st_ino) of the socket file we created

    def start(self):
        from gevent.pool import Pool
        from gevent.server import StreamServer

        sock = bind_control_socket(self.path)
        if not is_abstract(self.path):
            try:
                st = os.stat(self.path)
            except OSError as e:
                # Another vpn starting at the same moment with the same path took our
                # not-yet-listening socket for a killed vpn's leftover and removed it.
                sock.close()
                raise ControlError("control socket %s vanished while starting (%s): another vpn uses this "
                                   "path; give each its own with --control PATH" % (self.path, e.strerror)) from None
            self._identity = (st.st_dev, st.st_ino)
        self._server = StreamServer(sock, self._handle, spawn=Pool(MAX_CLIENTS))
        self._server.start()
        return self

    def _handle(self, conn, _address):
        """One exchange, within self.deadline in all: a client sending a byte now and then
        (each in time for a per-receive timeout) would otherwise hold its slot for
        MAX_REQUEST_BYTES receives."""
        import gevent

        deadline = gevent.Timeout(self.deadline)
        deadline.start()
        request = b""
        try:
            _, uid, _ = peer_credentials(conn)
            if not trusted(uid):
                log.debug("control client of uid %d refused", uid)
                conn.sendall(json.dumps({"error": "permission denied: only root and uid %d may ask"
                                                  % os.geteuid()}).encode() + b"\n")
                return
            while b"\n" not in request and len(request) <= MAX_REQUEST_BYTES:
                chunk = conn.recv(MAX_REQUEST_BYTES)
                if not chunk:
                    break
                request += chunk
            conn.sendall(answer(request.split(b"\n", 1)[0][:MAX_REQUEST_BYTES], self.status))
        except OSError as e:        # a vanished client
            log.debug("control client dropped: %s", e)
        except gevent.Timeout as e:
            if e is not deadline:
                raise
            log.debug("control client dropped: no complete exchange within %g s", self.deadline)
        finally:
            deadline.close()

    def close(self):
        if self._server is None:
            return
        self._server.stop(timeout=1)
        self._server = None
        if self._identity is None:      # an abstract name: gone with the socket
            return
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:    # not a successor's socket
                os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def query(path, command="show", timeout=CLIENT_TIMEOUT_SECONDS, what=None):
    """Send one command to the vpn serving path; returns the decoded JSON reply.

    Raises ControlError with one line when no vpn answers there. `what` names the
    instance in that line (e.g. "tun0").
    """
    who = "no vpn running%s" % (" for %s" % what if what else "")
    where = " in this network namespace" if is_abstract(path) else " (left by a stopped vpn)"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(sockaddr(path))
        except FileNotFoundError:
            raise ControlError("%s: %s does not exist" % (who, path)) from None
        except ConnectionRefusedError:
            raise ControlError("%s: nothing listens on %s%s" % (who, path, where)) from None
        except PermissionError:
            raise ControlError("cannot reach %s: permission denied (run as the vpn's user, usually root)"
                               % path) from None
        except OSError as e:
            raise ControlError("cannot reach %s: %s" % (path, e.strerror or e)) from None
        pid, uid, _ = peer_credentials(sock)
        if not trusted(uid):
            raise ControlError("%s is served by process %d of uid %d, neither root nor you: not asked"
                               % (path, pid, uid))
        # A server that refuses us (another uid) answers at once and closes without reading
        # the command: the send may then fail (EPIPE), or the read end in ECONNRESET after
        # the answer. Either way the answer already sent is read, and it is the reply.
        try:
            sock.sendall(command.encode("ascii") + b"\n")
            unsent = None
        except OSError as e:
            unsent = e
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError as e:
            if not chunks:
                raise ControlError("no answer on %s: %s" % (path, e.strerror or e)) from None
        except OSError as e:
            raise ControlError("no answer on %s: %s" % (path, e.strerror or e)) from None
        if unsent is not None and not chunks:
            raise ControlError("no answer on %s: %s" % (path, unsent.strerror or unsent)) from None
    finally:
        sock.close()
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError("%s answered something that is not JSON" % path) from None
    if not isinstance(reply, dict):
        raise ControlError("%s answered something that is not a JSON object" % path)
    if "error" in reply:
        raise ControlError("%s: %s" % (path, reply["error"]))
    return reply


__all__ = ["ControlServer", "ControlError", "answer", "bind_control_socket", "default_path", "is_abstract",
           "peer_credentials", "query", "sockaddr", "trusted"]
