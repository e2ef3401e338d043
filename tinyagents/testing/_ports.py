"""Free loopback ports for the test helpers that start other programs."""

from __future__ import annotations

import socket
import threading

__all__ = ["HOST", "check_host", "check_port", "free_port"]

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(*, udp: bool = False) -> int:
    """A port of 127.0.0.1 free for TCP (and for UDP too if ``udp``), never handed out
    twice by this process (another process may still take it before it is used).

    Raises:
        OSError: no free port was found.
    """
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((HOST, 0))
                port: int = tcp.getsockname()[1]
                if port in _handed_out:
                    continue
                if udp:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                        try:
                            datagram.bind((HOST, port))
                        except OSError:
                            continue
            _handed_out.add(port)
            return port
    raise OSError(f"found no free port on {HOST}")


def check_port(value: object, what: str = "port") -> int:
    """``value`` if it is a TCP port number: an int in 0..65535 (0: pick a free one).

    Raises:
        TypeError: not an int (a ``bool`` or a numeric string included).
        ValueError: outside 0..65535.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int in 0..65535 (0 picks a free port), not {value!r}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{what} must be in 0..65535 (0 picks a free port), not {value}")
    return value


def check_host(value: object, what: str = "host", *, port_as: str = "port=") -> str:
    """``value`` if it is a host to listen on: a name or an IP address, without a port
    (``"127.0.0.1"``, ``"localhost"``, ``"::1"``; ``"[::1]"`` is taken as ``"::1"``).
    ``what`` and ``port_as`` name the arguments in the message.

    Raises:
        TypeError: not a str.
        ValueError: empty, with spaces, or with a port (``"127.0.0.1:8001"``).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str such as '127.0.0.1' or '::1', not {value!r}")
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() or c in "[]/" for c in host):
        raise ValueError(
            f"{what} must be a host name or IP address such as '127.0.0.1' or '::1', not {value!r}"
        )
    name, colon, tail = host.rpartition(":")
    if colon and name.count(":") == 0 and tail.isdigit():
        raise ValueError(
            f"{what} {value!r} has a port in it; give the host alone ({name!r}) "
            f"and the port as {port_as}"
        )
    return host
