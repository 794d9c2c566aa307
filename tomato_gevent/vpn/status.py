"""What the running vpn reports (pure: clocks are passed in).

  build_status(...)      the status as a dict: the JSON contract of `vpn show --json`
                         (keys below), also the source of every human-readable view
  format_status(status)  the multi-line view of `vpn show` (like `wg show`)
  format_status_line(status)  the same in one line: SIGUSR1, SIGHUP and the stop line
  clock_skew_message     the wording of the timestamp diagnostic

JSON keys (all present; null where unknown):
  interface, listen_address, peer_address, peer_host (the -pa host as given),
  dynamic (true: the peer's address is learned), peer_learned (a learned address is known),
  peer_session (16 hex digits: the current keypair's two indices, the peer's then ours),
  peer_session_age_seconds (since that handshake completed),
  last_received_seconds_ago, rx_packets, rx_bytes, tx_packets, tx_bytes (datagram bytes on
  the wire, overhead included), drops (reason -> count), uptime_seconds, pid (the vpn's
  process id: which process answered, e.g. in which network namespace).
"""


def _round(seconds):
    return None if seconds is None else round(max(0.0, seconds), 1)


def build_status(*, interface, listen_address, peer_address, peer_host, dynamic, session,
                 last_received, started, now, now_ms, rx_packets, rx_bytes, tx_packets, tx_bytes, drops, pid=None):
    """The status dict. session: the current keypair (keypair.Keypair) or None.
    last_received/started/now are monotonic seconds, now_ms wall-clock ms; addresses are
    already formatted strings (or None)."""
    session_id = session_age = None
    if session is not None:
        session_id = session.remote_index << 32 | session.local_index
        session_age = now - session.created
    return {
        "interface": interface,
        "listen_address": listen_address,
        "peer_address": peer_address,
        "peer_host": peer_host,
        "dynamic": dynamic,
        "peer_learned": dynamic and peer_address is not None,
        "peer_session": None if session_id is None else "%016x" % session_id,
        "peer_session_age_seconds": _round(session_age),
        "last_received_seconds_ago": None if last_received is None else _round(now - last_received),
        "rx_packets": rx_packets,
        "rx_bytes": rx_bytes,
        "tx_packets": tx_packets,
        "tx_bytes": tx_bytes,
        "drops": dict(sorted(drops.items())),
        "uptime_seconds": _round(now - started),
        "pid": pid,
    }


def format_duration(seconds):
    """12 s, 5 min 3 s, 2 h 5 min, 3 d 4 h: the two largest units."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append("%d %s" % (seconds // size, unit))
            seconds %= size
    return " ".join(parts[:2])


def format_bytes(count):
    """1023 B, 1.50 KiB, 12.34 MiB ... (binary units, as wg show)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "%d B" % count if unit == "B" else "%.2f %s" % (value, unit)
        value /= 1024


def _peer_text(status):
    address = status["peer_address"]
    if status["dynamic"]:
        return "%s (learned)" % address if address else "none known (dynamic mode: learned from its datagrams)"
    if address is None:
        return "%s (not resolved yet)" % status["peer_host"]
    if status["peer_host"] and status["peer_host"] not in address:
        return "%s (%s)" % (address, status["peer_host"])
    return address


def _drops_text(drops):
    return ", ".join("%s: %d" % item for item in drops.items()) or "none"


def format_status(status):
    """The human view of `vpn show`, one fact per line."""
    lines = ["interface: %s" % status["interface"],
             "  listening on: %s" % status["listen_address"],
             "  peer: %s" % _peer_text(status)]
    if status["peer_session"] is not None:
        lines.append("  peer session: %s, started %s ago" % (
            status["peer_session"], format_duration(status["peer_session_age_seconds"])))
    else:
        lines.append("  peer session: none yet")
    ago = status["last_received_seconds_ago"]
    lines.append("  latest authenticated datagram: %s" % ("never" if ago is None else format_duration(ago) + " ago"))
    lines.append("  transfer: %s received (%d packets), %s sent (%d packets)" % (
        format_bytes(status["rx_bytes"]), status["rx_packets"], format_bytes(status["tx_bytes"]),
        status["tx_packets"]))
    lines.append("  drops: %s" % _drops_text(status["drops"]))
    lines.append("  uptime: %s" % format_duration(status["uptime_seconds"]))
    if status.get("pid") is not None:           # absent in the answer of an older vpn
        lines.append("  process id: %d" % status["pid"])
    return "\n".join(lines)


def format_status_line(status):
    """The same facts in one log line (counters exact, no units rounded away)."""
    ago = status["last_received_seconds_ago"]
    return ("%s: peer %s, last datagram %s, received %d packets (%d bytes), sent %d packets (%d bytes), "
            "dropped %s, up %s" % (
                status["interface"], _peer_text(status), "never" if ago is None else "%s ago" % format_duration(ago),
                status["rx_packets"], status["rx_bytes"], status["tx_packets"], status["tx_bytes"],
                _drops_text(status["drops"]), format_duration(status["uptime_seconds"])))


def clock_skew_message(skew_ms, pvt_seconds):
    """skew_ms = the datagram's timestamp minus our clock."""
    return "peer clock differs by %+.0f s; -pvt is %g s (handshakes outside it are refused: sync the clocks, " \
           "e.g. with NTP)" % (skew_ms / 1000.0, pvt_seconds)


__all__ = ["build_status", "format_status", "format_status_line", "format_duration", "format_bytes",
           "clock_skew_message"]
