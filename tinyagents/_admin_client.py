"""The client side of the admin endpoint (what the ``tinyagents`` CLI uses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from ._address import parse_address
from .admin import PROTOCOL_VERSION
from .errors import TinyAgentsError

__all__ = ["AdminRefused", "AdminUnreachable", "admin_request", "admin_watch"]

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


class AdminUnreachable(TinyAgentsError):
    """No admin endpoint answered at the address (or it broke off)."""


class AdminRefused(TinyAgentsError):
    """The endpoint refused the connection (a missing or wrong token) or the request."""


def _url(addr: str) -> str:
    host, port = parse_address(addr, what="--addr", default_port=7373)
    return f"ws://{f'[{host}]' if ':' in host else host}:{port}/"


@asynccontextmanager
async def _connect(addr: str, token: str | None) -> AsyncIterator[Any]:
    url = _url(addr)
    headers = [] if token is None else [(b"Authorization", f"Bearer {token}".encode())]
    try:
        async with trio_websocket.open_websocket_url(
            url, extra_headers=headers, connect_timeout=CONNECT_TIMEOUT, disconnect_timeout=1
        ) as connection:
            yield connection
    except trio_websocket.ConnectionRejected as rejected:
        if rejected.status_code == 401:
            raise AdminRefused(
                f"the node at {addr} refused the connection: "
                + ("a token is needed (--token)" if token is None else "wrong token")
            ) from None
        raise AdminRefused(
            f"the node at {addr} refused the connection (HTTP {rejected.status_code})"
        ) from None
    except trio_websocket.ConnectionClosed:
        raise AdminUnreachable(f"the node at {addr} closed the connection") from None
    except (OSError, trio_websocket.HandshakeError, trio.BrokenResourceError) as error:
        raise AdminUnreachable(f"no tinyagents node answers at {addr}: {_why(error)}") from None


def _why(error: BaseException) -> str:
    """The most telling text of ``error`` or of what caused it."""
    while not str(error) and (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error) or type(error).__name__


def _check(reply: Any, addr: str) -> Any:
    if not isinstance(reply, dict) or reply.get("v") != PROTOCOL_VERSION:
        raise AdminUnreachable(f"the endpoint at {addr} does not speak the admin protocol")
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise AdminRefused(f"{error.get('type', 'Error')}: {error.get('message', '')}")
    return reply.get("result")


async def admin_request(addr: str, token: str | None, op: str, **arguments: Any) -> Any:
    """One request's result. Raises :class:`AdminUnreachable` or :class:`AdminRefused`."""
    async with _connect(addr, token) as connection:
        with trio.move_on_after(REQUEST_TIMEOUT) as scope:
            await connection.send_message(
                json.dumps({"v": PROTOCOL_VERSION, "id": 1, "op": op, **arguments})
            )
            try:
                reply = json.loads(await connection.get_message())
            except trio_websocket.ConnectionClosed:
                raise AdminUnreachable(f"the node at {addr} closed the connection") from None
            except ValueError:
                raise AdminUnreachable(f"the endpoint at {addr} sent something not JSON") from None
        if scope.cancelled_caught:
            raise AdminUnreachable(f"the node at {addr} did not answer in {REQUEST_TIMEOUT:g}s")
        return _check(reply, addr)


async def admin_watch(
    addr: str,
    token: str | None,
    types: list[str] | None,
    on_message: Callable[[dict[str, Any]], None],
) -> None:
    """Call ``on_message`` with each message the node streams (``{"event": {...}}`` or
    ``{"lost": n}``) until the node closes the connection (:class:`AdminUnreachable`)
    or the caller is cancelled."""
    async with _connect(addr, token) as connection:
        request = {"v": PROTOCOL_VERSION, "id": 1, "op": "watch", "types": types}
        try:
            await connection.send_message(json.dumps(request))
            _check(json.loads(await connection.get_message()), addr)
            while True:
                message = json.loads(await connection.get_message())
                if isinstance(message, dict):
                    on_message(message)
        except trio_websocket.ConnectionClosed:
            raise AdminUnreachable(f"the node at {addr} closed the connection") from None
        except ValueError:
            raise AdminUnreachable(f"the endpoint at {addr} sent something not JSON") from None
