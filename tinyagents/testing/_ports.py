"""Free loopback ports for the test helpers that start other programs."""

from __future__ import annotations

import socket
import threading

__all__ = ["free_port"]

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
