"""The handshake that opens every connection between two nodes.

Four frames, each a msgpack map, over a stream already wrapped in TLS if TLS is on:

1. dialer -> acceptor, *hello*: ``v`` (protocol version), ``node``, ``uid`` (this
   incarnation of the node), ``cluster``, ``addr`` (``[host, port]`` where the
   dialer's transport listens), ``nonce`` (32 random bytes), ``auth`` (whether it
   has a shared secret).
2. acceptor -> dialer, *welcome*: the same fields for the acceptor, or ``refuse``
   (a reason in words) when the versions, cluster names or ``auth`` differ.
3. dialer -> acceptor, *proof*: ``proof`` = HMAC-SHA256(secret, ``b"dial"`` + hello
   + welcome), the two frames exactly as sent (empty without a secret).
4. acceptor -> dialer, *ready*: ``proof`` = HMAC-SHA256(secret, ``b"accept"`` + hello
   + welcome), or ``refuse``: ``"authentication failed"`` for a wrong proof, or the
   reason the acceptor will not use this connection.

Both sides prove that they know the secret, over both nonces, so a recorded exchange
proves nothing later; the secret itself never crosses the wire. A side that finds the
other's proof wrong says only "authentication failed".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

import attrs
import msgpack  # type: ignore[import-untyped]
import trio

from ..errors import HandshakeFailed, MalformedFrame
from ._frame import FrameReader, encode_frame

__all__ = [
    "PROTOCOL_VERSION",
    "HandshakeAbandoned",
    "NodeIdentity",
    "accept_handshake",
    "dial_handshake",
]

PROTOCOL_VERSION = 1
"""The version of the frames and envelopes this transport speaks; nodes of different
versions refuse each other."""

AUTHENTICATION_FAILED = "authentication failed"
_HANDSHAKE_FRAME_LIMIT = 4096
_NONCE_BYTES = 32
_MAX_UID = 2**64


@attrs.frozen
class NodeIdentity:
    """Who a node is: its id, the uid of its current incarnation, its cluster, and the
    address its transport listens on."""

    node: str
    uid: int
    cluster: str
    address: tuple[str, int]


class HandshakeAbandoned(HandshakeFailed):
    """The peer closed the connection in the middle of the handshake (it went away, as
    a node shutting down does; nothing it sent was wrong)."""


def _hello(local: NodeIdentity, nonce: bytes, auth: bool) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "node": local.node,
        "uid": local.uid,
        "cluster": local.cluster,
        "addr": [local.address[0], local.address[1]],
        "nonce": nonce,
        "auth": auth,
    }


def _proof(secret: bytes | None, role: bytes, hello: bytes, welcome: bytes) -> bytes:
    if secret is None:
        return b""
    return hmac.new(secret, role + hello + welcome, hashlib.sha256).digest()


async def _send(stream: trio.abc.SendStream, body: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(body)
    await stream.send_all(encode_frame(data))
    return data


async def _receive(reader: FrameReader, what: str) -> tuple[bytes, dict[str, Any]]:
    """The next handshake frame, as raw bytes and as a map; refusals raise."""
    limit = reader.limit
    reader.limit = min(limit, _HANDSHAKE_FRAME_LIMIT)
    try:
        data = await reader.read()
    finally:
        reader.limit = limit
    if data is None:
        raise HandshakeAbandoned(f"the peer closed the connection before its {what}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as error:
        raise MalformedFrame(f"an undecodable handshake {what}: {error!r:.100}") from None
    if not isinstance(body, dict):
        raise MalformedFrame(f"a handshake {what} must be a map, not {type(body).__name__}")
    refusal = body.get("refuse")
    if refusal is not None:
        raise HandshakeFailed(f"refused by the peer: {str(refusal)[:200]}")
    return data, body


def _identity(body: dict[str, Any], what: str) -> tuple[NodeIdentity, bytes, bool, object]:
    """The identity in a hello or welcome, its nonce, its auth flag and its version."""
    node, uid, cluster = body.get("node"), body.get("uid"), body.get("cluster")
    addr, nonce, auth = body.get("addr"), body.get("nonce"), body.get("auth")
    if not (isinstance(node, str) and node and "/" not in node and "@" not in node):
        raise MalformedFrame(f"a handshake {what} without a valid node id")
    if type(uid) is not int or not 0 < uid < _MAX_UID:
        raise MalformedFrame(f"a handshake {what} without a valid uid")
    if not (isinstance(cluster, str) and cluster):
        raise MalformedFrame(f"a handshake {what} without a cluster name")
    if not (
        isinstance(addr, list)
        and len(addr) == 2
        and isinstance(addr[0], str)
        and type(addr[1]) is int
        and 0 <= addr[1] <= 65535
    ):
        raise MalformedFrame(f"a handshake {what} without a valid address")
    if not (isinstance(nonce, bytes) and len(nonce) == _NONCE_BYTES):
        raise MalformedFrame(f"a handshake {what} without a valid nonce")
    if type(auth) is not bool:
        raise MalformedFrame(f"a handshake {what} without its auth flag")
    return NodeIdentity(node, uid, cluster, (addr[0], addr[1])), nonce, auth, body.get("v")


def _mismatch(
    local: NodeIdentity, secret: bytes | None, other: NodeIdentity, version: object, auth: bool
) -> str | None:
    if version != PROTOCOL_VERSION:
        return f"protocol version {version!r} is not this node's {PROTOCOL_VERSION}"
    if other.cluster != local.cluster:
        return f"cluster {other.cluster!r} is not this node's cluster {local.cluster!r}"
    if auth != (secret is not None):
        if secret is not None:
            return f"{AUTHENTICATION_FAILED}: this node requires a shared secret"
        return f"{AUTHENTICATION_FAILED}: this node has no shared secret"
    return None


def _proof_of(body: dict[str, Any]) -> bytes:
    proof = body.get("proof")
    if not isinstance(proof, bytes):
        raise MalformedFrame("a handshake proof must be bytes")
    return proof


async def dial_handshake(
    stream: trio.abc.Stream,
    reader: FrameReader,
    local: NodeIdentity,
    *,
    secret: bytes | None = None,
) -> NodeIdentity:
    """Run the dialer's side of the handshake; the other node's identity.

    Blocks until the acceptor has answered (the caller bounds it with a timeout).

    Raises:
        HandshakeFailed: the acceptor refused, or its proof of the secret was wrong.
        MalformedFrame: the acceptor sent something that is not a handshake frame.
    """
    hello = await _send(
        stream, _hello(local, secrets.token_bytes(_NONCE_BYTES), secret is not None)
    )
    welcome, body = await _receive(reader, "welcome")
    other, _, auth, version = _identity(body, "welcome")
    problem = _mismatch(local, secret, other, version, auth)
    if problem is not None:
        raise HandshakeFailed(problem, peer=other.node)
    await _send(stream, {"proof": _proof(secret, b"dial", hello, welcome)})
    _, ready = await _receive(reader, "ready")
    expected = _proof(secret, b"accept", hello, welcome)
    if not hmac.compare_digest(_proof_of(ready), expected):
        raise HandshakeFailed(AUTHENTICATION_FAILED, peer=other.node)
    return other


async def accept_handshake(
    stream: trio.abc.Stream,
    reader: FrameReader,
    local: NodeIdentity,
    *,
    secret: bytes | None = None,
    admit: Callable[[NodeIdentity], str | None] | None = None,
) -> NodeIdentity:
    """Run the acceptor's side of the handshake; the dialer's identity.

    ``admit`` is asked, once the dialer is authenticated, whether this connection may
    be used: ``None`` for yes, else the reason to refuse it (sent to the dialer).

    Raises:
        HandshakeFailed: the dialer was refused (the reason says why; the dialer was
            told it).
        MalformedFrame: the dialer sent something that is not a handshake frame.
    """
    hello, body = await _receive(reader, "hello")
    other, _, auth, version = _identity(body, "hello")
    problem = _mismatch(local, secret, other, version, auth)
    if problem is not None:
        await _refuse(stream, problem)
        raise HandshakeFailed(problem, peer=other.node)
    welcome = await _send(stream, _hello(local, secrets.token_bytes(_NONCE_BYTES), auth))
    _, proof = await _receive(reader, "proof")
    if not hmac.compare_digest(_proof_of(proof), _proof(secret, b"dial", hello, welcome)):
        await _refuse(stream, AUTHENTICATION_FAILED)
        raise HandshakeFailed(AUTHENTICATION_FAILED, peer=other.node)
    reason = admit(other) if admit is not None else None
    if reason is not None:
        await _refuse(stream, reason)
        raise HandshakeFailed(reason, peer=other.node)
    await _send(stream, {"proof": _proof(secret, b"accept", hello, welcome)})
    return other


async def _refuse(stream: trio.abc.SendStream, reason: str) -> None:
    """Tell the other side why, if it still listens."""
    try:
        await _send(stream, {"refuse": reason})
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
