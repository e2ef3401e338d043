"""Network addresses given as arguments (internal): ``"host:port"`` or ``(host, port)``."""

from __future__ import annotations

import ipaddress

from .errors import InvalidAddress

__all__ = ["Address", "format_address", "parse_address"]

Address = str | tuple[str, int]
"""An address as the public API takes it: ``"host:port"`` (``"[::1]:7946"`` for IPv6) or a
``(host, port)`` tuple."""

_FORM = "'host:port' (such as '127.0.0.1:7946' or '[::1]:7946') or a (host, port) tuple"


def _check_port(port: object, given: object, what: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidAddress(given, what, f"the port must be an int, not {port!r}; use {_FORM}")
    if not 0 <= port <= 65535:
        raise InvalidAddress(given, what, f"the port must be in 0..65535, not {port}")
    return port


def parse_address(
    value: object, *, what: str = "address", default_port: int | None = None
) -> tuple[str, int]:
    """``value`` as a ``(host, port)`` pair.

    Accepts ``"host:port"``, ``"[v6-address]:port"``, ``(host, port)`` (also as a list),
    and, when ``default_port`` is given, a bare ``"host"``. ``what`` names the argument in
    the error message (``"bind"``, ``"seed"``...).

    Raises:
        InvalidAddress: anything else, with a message naming the expected form (it is
            also a ``ValueError``).
    """
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise InvalidAddress(value, what, f"expected {_FORM}")
        host, port = value
        if not isinstance(host, str):
            raise InvalidAddress(value, what, f"the host must be a str, not {host!r}")
        return _host(host, value, what), _check_port(port, value, what)
    if not isinstance(value, str):
        raise InvalidAddress(value, what, f"expected {_FORM}")
    text = value.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise InvalidAddress(value, what, f"an unclosed '[' ; expected {_FORM}")
        host, rest = text[1:close], text[close + 1 :]
        if not rest and default_port is not None:
            return _host(host, value, what), default_port
        if not rest.startswith(":"):
            raise InvalidAddress(value, what, f"no port after ']'; expected {_FORM}")
        port_text = rest[1:]
    else:
        if text.count(":") > 1:
            raise InvalidAddress(
                value, what, f"an IPv6 address needs brackets, as in '[::1]:7946'; expected {_FORM}"
            )
        host, colon, port_text = text.partition(":")
        if not colon:
            if default_port is not None:
                return _host(host, value, what), default_port
            raise InvalidAddress(value, what, f"no port; expected {_FORM}")
    if not port_text.isdigit():
        raise InvalidAddress(
            value, what, f"the port {port_text!r} is not a number; expected {_FORM}"
        )
    return _host(host, value, what), _check_port(int(port_text), value, what)


def _host(host: str, given: object, what: str) -> str:
    if not host or any(c.isspace() for c in host):
        raise InvalidAddress(
            given, what, f"the host {host!r} is empty or has spaces; expected {_FORM}"
        )
    return host


def format_address(address: tuple[str, int]) -> str:
    """``(host, port)`` as ``"host:port"``, bracketing IPv6 addresses."""
    host, port = address
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"
