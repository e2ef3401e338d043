"""Mutual TLS for the transport: every connection wrapped in :class:`trio.SSLStream`."""

from __future__ import annotations

import os
import ssl

import attrs
import trio

__all__ = ["TLS", "wrap_client", "wrap_server"]


def _context(value: object, name: str) -> ssl.SSLContext:
    if not isinstance(value, ssl.SSLContext):
        raise TypeError(f"TLS {name} must be an ssl.SSLContext, not {value!r:.80}")
    return value


def _server_context(value: object) -> ssl.SSLContext:
    return _context(value, "server")


def _client_context(value: object) -> ssl.SSLContext:
    return _context(value, "client")


@attrs.frozen
class TLS:
    """The TLS contexts of a transport: ``server`` for the connections it accepts,
    ``client`` for those it opens. For mutual TLS the server context must require a
    client certificate (``verify_mode = ssl.CERT_REQUIRED``), as :meth:`mutual` makes.

    A peer whose certificate does not verify is refused during the TLS handshake,
    before any frame is read; it is logged and counted like any refused connection.
    """

    server: ssl.SSLContext = attrs.field(converter=_server_context)
    client: ssl.SSLContext = attrs.field(converter=_client_context)

    @classmethod
    def mutual(
        cls,
        ca: str | os.PathLike[str],
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str] | None = None,
        *,
        check_hostname: bool = True,
    ) -> TLS:
        """Mutual TLS from PEM files: ``ca`` the certificate authority that signed
        every node's certificate, ``cert`` this node's certificate chain and ``key``
        its private key (``None``: in ``cert``). Each side presents its certificate
        and checks the other's against ``ca``; with ``check_hostname`` a client also
        checks that the server's certificate names the host it dialled.

        Raises:
            OSError / ssl.SSLError: a file is missing or not valid PEM.
        """
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.fspath(ca))
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(ca))
        client.check_hostname = check_hostname
        for context in (server, client):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(os.fspath(cert), None if key is None else os.fspath(key))
        return cls(server, client)


async def wrap_server(stream: trio.abc.Stream, tls: TLS) -> trio.SSLStream[trio.abc.Stream]:
    """``stream`` after the server side of a TLS handshake. Raises
    ``trio.BrokenResourceError`` when the handshake fails (a bad certificate)."""
    wrapped = trio.SSLStream(stream, tls.server, server_side=True)
    await wrapped.do_handshake()
    return wrapped


async def wrap_client(
    stream: trio.abc.Stream, tls: TLS, host: str
) -> trio.SSLStream[trio.abc.Stream]:
    """``stream`` after the client side of a TLS handshake with the server at
    ``host``. Raises ``trio.BrokenResourceError`` when the handshake fails."""
    hostname = host if tls.client.check_hostname else None
    wrapped = trio.SSLStream(stream, tls.client, server_hostname=hostname)
    await wrapped.do_handshake()
    return wrapped
