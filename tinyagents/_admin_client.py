"""The client side of the admin endpoint (what the ``tinyagents`` CLI uses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from ._address import parse_address
from ._nursery import open_service_nursery
from .admin import PROTOCOL_VERSION
from .errors import TinyAgentsError

__all__ = ["AdminErrorReply", "AdminRefused", "AdminUnreachable", "admin_request", "admin_watch"]

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


class AdminUnreachable(TinyAgentsError):
    """No admin endpoint answered at the address (or it broke off)."""


class AdminRefused(TinyAgentsError):
    """The endpoint refused the connection (a missing or wrong token) or the request."""


class AdminErrorReply(AdminRefused):
    """The endpoint answered a request with an error reply: ``kind`` is its type
    (``BadRequest``, ``UnsupportedVersion``, ``UnknownOperation``), ``detail`` its
    message; the text is ``"kind: detail"``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@asynccontextmanager
async def _connect(addr: str, token: str | None) -> AsyncIterator[Any]:
    """A WebSocket to the endpoint at ``addr``, over a TCP stream this client owns and
    closes in every case (a refused handshake, a cancelled watch)."""
    host, port = parse_address(addr, what="--addr", default_port=7373)
    headers = [] if token is None else [(b"Authorization", f"Bearer {token}".encode())]
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as error:
        raise AdminUnreachable(f"no tinyagents node answers at {addr}: {_why(error)}") from None
    try:
        async with open_service_nursery() as nursery:
            with trio.fail_after(CONNECT_TIMEOUT):
                connection = await trio_websocket.wrap_client_stream(
                    nursery, stream, host, "/", extra_headers=headers
                )
            try:
                yield connection
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await connection.aclose()
                nursery.cancel_scope.cancel()
    except* trio_websocket.ConnectionRejected as group:
        # raised by the handshake and, again, by the connection's reader task
        status = getattr(group.exceptions[0], "status_code", 0)
        if status == 401:
            raise AdminRefused(
                f"the node at {addr} refused the connection: "
                + ("a token is needed (--token)" if token is None else "wrong token")
            ) from None
        raise AdminRefused(f"the node at {addr} refused the connection (HTTP {status})") from None
    except* (trio_websocket.HandshakeError, trio.TooSlowError) as group:
        why = _why(group.exceptions[0])
        raise AdminUnreachable(f"no tinyagents node answers at {addr}: {why}") from None
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
        why = _why(group.exceptions[0])
        raise AdminUnreachable(f"the connection to {addr} broke: {why}") from None
    finally:
        await trio.aclose_forcefully(stream)


def _why(error: BaseException) -> str:
    """The most telling text of ``error`` or of what caused it."""
    while not str(error) and (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error) or type(error).__name__


def _check(reply: Any, addr: str) -> Any:
    if not isinstance(reply, dict) or reply.get("v") != PROTOCOL_VERSION:
        raise AdminUnreachable(f"the endpoint at {addr} does not speak the admin protocol")
    if not reply.get("ok"):
        error = reply.get("error")
        if not isinstance(error, dict):
            error = {}
        raise AdminErrorReply(str(error.get("type", "Error")), str(error.get("message", "")))
    return reply.get("result")


async def admin_request(addr: str, token: str | None, op: str, **arguments: Any) -> Any:
    """One request's result. Raises :class:`AdminUnreachable` or :class:`AdminRefused`
    (:class:`AdminErrorReply` when the endpoint answered with an error)."""
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
    or the caller is cancelled. A watch the endpoint does not accept (an unknown type
    among ``types``) raises :class:`AdminErrorReply` before any message."""
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
