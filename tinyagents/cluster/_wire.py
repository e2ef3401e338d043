"""HashiCorp memberlist's wire format, byte for byte, and Serf's tag encoding.

This module only turns values into bytes and back; it keeps no state and does no I/O.
It follows memberlist's Go source (``net.go``, ``util.go``, ``security.go``,
``label.go``); the tests hold golden bytes captured from the Go libraries.

**Messages.** A message is a type byte (:class:`MessageType`) then, for most types, a
msgpack map keyed by the Go struct's field names, encoded the way hashicorp's
go-msgpack ``MsgpackHandle`` does with its defaults:

* the keys are in sorted order (go-msgpack sorts struct fields by name);
* strings and ``[]byte`` are both msgpack *raw* (``str``) values, never ``bin``, and
  without the ``str8`` form (a raw of 32 to 255 bytes uses ``raw16``);
* an empty ``[]byte`` is sent as nil, as Go sends a nil slice; ``omitempty`` fields
  (the ``Source*`` fields of pings) are left out when empty;
* unsigned fields use the smallest unsigned form; Go ``int`` fields (``Nodes``,
  ``UserStateLen``, ``UserMsgLen``, ``State``) above 127 use the *signed* forms
  (``int16``, ``int32``), as go-msgpack v2 (memberlist 0.5 and later) writes them.
  memberlist 0.2 writes those as unsigned; both decode the other's form.

Decoding is as lenient as Go's where Go is lenient — a missing field takes its zero
value, nil is a zero value, unknown keys are ignored, either ``str`` or ``bin`` is
accepted for bytes — and strict elsewhere: every problem raises
:class:`~tinyagents.cluster.MalformedMessage` saying what was wrong (truncated data, an
unknown type, bad msgpack, a field of the wrong type or out of range, trailing bytes,
an oversized input, a bad checksum, a payload no key could decrypt). Text fields must
be UTF-8. ``Addr`` fields must be empty or 4 or 16 bytes, ``Vsn`` empty or 6 bytes.

**Envelopes.** Packets (UDP) may be a compound of messages, compressed, prefixed with
a CRC, encrypted, and labelled, in this order from the inside out::

    [244][len][label] encrypt( [12][crc32] ( [9]{Algo, Buf: lzw( [7][n][lengths][parts] )} ) )

Streams (TCP) carry one message each way, compressed (always, by default), then
encrypted as ``[10][uint32 length][version][nonce][ciphertext+tag]``, then labelled.

**Limits** (each breach raises :class:`MalformedMessage`):

* :data:`MAX_PACKET_SIZE` — 65,536 bytes: a packet, and a packet's decompressed payload
  (a UDP datagram is at most 65,507 bytes);
* :data:`MAX_ENCRYPTED_STREAM_SIZE` — 20 MiB: the length an encrypted stream announces
  (memberlist's ``maxPushStateBytes``);
* :data:`MAX_DECOMPRESSED_SIZE` — 40 MiB: a stream's decompressed payload (memberlist's
  ``maxDecompressedBytes``);
* :data:`MAX_STREAM_BUFFER` — 64 MiB: what a stream decoder buffers at once;
* :data:`MAX_USER_STATE_SIZE` — 20 MiB: push-pull user state and stream user messages;
* :data:`MAX_PUSH_PULL_NODES` — 65,536 node records in one push-pull (memberlist allows
  2**20; a Python process holding that many is not a use we support);
* :data:`MAX_NESTING` — 8 levels of compound and compressed messages inside each other;
* :data:`MAX_COMPOUND_PARTS` — 127 parts in a compound message we *send* (a ValueError
  beyond; memberlist 0.2 misreads 128 or more); up to 255 are read;
* a message body is a map of at most 64 keys; an array (a ``Vsn``) has at most 256 items.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import msgpack  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import MalformedMessage, MetaTooLarge

__all__ = [
    "ENCRYPTION_VERSION",
    "LABEL_MAX_SIZE",
    "MAX_COMPOUND_PARTS",
    "MAX_DECOMPRESSED_SIZE",
    "MAX_ENCRYPTED_STREAM_SIZE",
    "MAX_NESTING",
    "MAX_PACKET_SIZE",
    "MAX_PUSH_PULL_NODES",
    "MAX_STREAM_BUFFER",
    "MAX_USER_STATE_SIZE",
    "META_MAX_SIZE",
    "PROTOCOL_VERSION_MAX",
    "PROTOCOL_VERSION_MIN",
    "TAG_MAGIC_BYTE",
    "Ack",
    "Alive",
    "Dead",
    "ErrorResponse",
    "IndirectPing",
    "Keyring",
    "Message",
    "MessageType",
    "Nack",
    "Packet",
    "Ping",
    "PushNodeState",
    "PushPull",
    "StreamDecoder",
    "StreamFrame",
    "Suspect",
    "User",
    "add_crc",
    "add_label",
    "compress_message",
    "decode_message",
    "decode_packet",
    "decode_stream",
    "decode_tags",
    "decompress_message",
    "decrypt_payload",
    "encode_compound",
    "encode_message",
    "encode_packet",
    "encode_stream",
    "encode_stream_message",
    "encode_tags",
    "encrypt_payload",
    "encrypt_stream",
    "ip_from_bytes",
    "ip_to_bytes",
    "lzw_compress",
    "lzw_decompress",
    "split_compound",
    "strip_crc",
    "strip_label",
]

# -- constants and limits ---------------------------------------------------------------

PROTOCOL_VERSION_MIN: Final = 1
"""The oldest memberlist protocol version (``ProtocolVersionMin``)."""
PROTOCOL_VERSION_MAX: Final = 5
"""The newest memberlist protocol version (``ProtocolVersionMax``); from 5 on, packets
to a node carry a CRC."""

META_MAX_SIZE: Final = 512
"""The largest node meta memberlist accepts (``MetaMaxSize``), Serf's tags included."""
TAG_MAGIC_BYTE: Final = 255
"""The first byte of Serf's msgpack-encoded tags (``tagMagicByte``)."""
LABEL_MAX_SIZE: Final = 255
"""The longest packet or stream label, in bytes (``LabelMaxSize``)."""
ENCRYPTION_VERSION: Final = 1
"""The encryption version written: AES-GCM without padding (protocol 2 and later)."""

MAX_PACKET_SIZE: Final = 65_536
MAX_ENCRYPTED_STREAM_SIZE: Final = 20 * 1024 * 1024
MAX_DECOMPRESSED_SIZE: Final = 40 * 1024 * 1024
MAX_STREAM_BUFFER: Final = 64 * 1024 * 1024
MAX_USER_STATE_SIZE: Final = 20 * 1024 * 1024
MAX_PUSH_PULL_NODES: Final = 65_536
MAX_NESTING: Final = 8

_MAX_MAP_LEN: Final = 64
_MAX_ARRAY_LEN: Final = 256
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_KEY_SIZES: Final = (16, 24, 32)


class MessageType(enum.IntEnum):
    """The first byte of every memberlist message (``messageType`` in ``net.go``)."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244
    """The label header of newer memberlist (``hasLabelMsg``); chosen high so that it
    cannot be mistaken for an encryption version byte or another message type."""


def _type_name(code: int) -> str:
    try:
        return f"{MessageType(code).name} ({code})"
    except ValueError:
        return f"unknown type {code}"


def _malformed(what: str, problem: str) -> MalformedMessage:
    return MalformedMessage(f"{what}: {problem}")


# -- msgpack the way go-msgpack writes it -----------------------------------------------


def _pack_raw(data: bytes) -> bytes:
    """A msgpack raw (str) value: fixstr, raw16 or raw32, never str8 or bin."""
    n = len(data)
    if n < 32:
        return bytes((0xA0 | n,)) + data
    if n < 0x10000:
        return b"\xda" + n.to_bytes(2, "big") + data
    return b"\xdb" + n.to_bytes(4, "big") + data


def _pack_uint(value: int) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


def _pack_go_int(value: int) -> bytes:
    """A Go ``int`` as go-msgpack v2 writes it: positive values above 127 are signed."""
    if value < 128:
        packed: bytes = msgpack.packb(value)
        return packed
    if value <= 0x7FFF:
        return b"\xd1" + value.to_bytes(2, "big")
    if value <= 0x7FFFFFFF:
        return b"\xd2" + value.to_bytes(4, "big")
    return b"\xd3" + value.to_bytes(8, "big")


def _pack_map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 0x10000:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


def _new_unpacker(max_buffer: int, max_map_len: int = _MAX_MAP_LEN) -> Any:
    return msgpack.Unpacker(
        raw=True,
        strict_map_key=True,
        max_buffer_size=max(max_buffer, 1),
        max_map_len=max_map_len,
        max_array_len=_MAX_ARRAY_LEN,
    )


def _unpack_one(data: bytes, what: str, max_map_len: int = _MAX_MAP_LEN) -> object:
    """The single msgpack value that ``data`` holds, with nothing after it."""
    unpacker = _new_unpacker(len(data), max_map_len)
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        raise _malformed(what, "truncated msgpack") from None
    except Exception as exc:
        raise _malformed(what, f"bad msgpack ({type(exc).__name__}: {exc})") from None
    extra = len(data) - unpacker.tell()
    if extra:
        raise _malformed(what, f"{extra} unexpected bytes after the msgpack body")
    return value


# -- fields -----------------------------------------------------------------------------

_T = TypeVar("_T")


@attrs.frozen
class _Kind:
    """How one Go field type is read from decoded msgpack and written back."""

    name: str
    read: Callable[[object, str, str], object]  # (value, what, field) -> python value
    pack: Callable[[Any], bytes]


def _wrong_type(what: str, field: str, expected: str, value: object) -> MalformedMessage:
    return _malformed(what, f"field {field} should be {expected}, not {type(value).__name__}")


def _read_uint(bits: int) -> Callable[[object, str, str], object]:
    limit = 1 << bits

    def read(value: object, what: str, field: str) -> int:
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_type(what, field, "an integer", value)
        if not 0 <= value < limit:
            raise _malformed(what, f"field {field} is {value}, out of range for uint{bits}")
        return value

    return read


def _read_go_int(value: object, what: str, field: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(what, field, "an integer", value)
    if value < 0:
        raise _malformed(what, f"field {field} is negative ({value})")
    return value


def _read_bool(value: object, what: str, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(what, field, "a boolean", value)
    return value


def _read_bytes(value: object, what: str, field: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, bytes):
        raise _wrong_type(what, field, "a byte string", value)
    return value


def _read_str(value: object, what: str, field: str) -> str:
    raw = _read_bytes(value, what, field)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(what, f"field {field} is not valid UTF-8") from None


def _read_addr(value: object, what: str, field: str) -> bytes:
    raw = _read_bytes(value, what, field)
    if len(raw) not in (0, 4, 16):
        raise _malformed(what, f"field {field} is {len(raw)} bytes, not an IPv4 or IPv6 address")
    return raw


def _read_vsn(value: object, what: str, field: str) -> bytes:
    if isinstance(value, list):  # go-msgpack also reads an array of small ints into []uint8
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 256 for x in value):
            raise _malformed(what, f"field {field} is an array with items that are not bytes")
        raw = bytes(value)
    else:
        raw = _read_bytes(value, what, field)
    if len(raw) not in (0, 6):
        raise _malformed(what, f"field {field} is {len(raw)} bytes, not the 6 protocol versions")
    return raw


def _pack_bytes_or_nil(value: bytes) -> bytes:
    return _pack_raw(value) if value else b"\xc0"


def _pack_str(value: str) -> bytes:
    return _pack_raw(value.encode("utf-8"))


def _pack_bool(value: bool) -> bytes:
    return b"\xc3" if value else b"\xc2"


def _pack_vsn(value: bytes) -> bytes:
    if len(value) != 6:
        raise ValueError(
            "a Vsn must be the 6 protocol versions (pmin, pmax, pcur, dmin, dmax, dcur): "
            "memberlist 0.2 panics on a shorter one"
        )
    return _pack_raw(value)


_U8 = _Kind("uint8", _read_uint(8), _pack_uint)
_U16 = _Kind("uint16", _read_uint(16), _pack_uint)
_U32 = _Kind("uint32", _read_uint(32), _pack_uint)
_INT = _Kind("int", _read_go_int, _pack_go_int)
_BOOL = _Kind("bool", _read_bool, _pack_bool)
_STR = _Kind("string", _read_str, _pack_str)
_BYTES = _Kind("[]byte", _read_bytes, _pack_bytes_or_nil)
_ADDR = _Kind("[]byte address", _read_addr, _pack_bytes_or_nil)
_VSN = _Kind("[]uint8 versions", _read_vsn, _pack_vsn)


@attrs.frozen
class _Field:
    go: str
    attr: str
    kind: _Kind
    omitempty: bool = False

    @property
    def key(self) -> bytes:
        return self.go.encode()


def _sorted_fields(fields: Iterable[_Field]) -> tuple[_Field, ...]:
    return tuple(sorted(fields, key=lambda field: field.go))


@attrs.frozen
class _Spec:
    """A Go struct: its name in errors, and its fields, sorted by name as go-msgpack
    writes them."""

    what: str
    fields: tuple[_Field, ...] = attrs.field(converter=_sorted_fields)


def _pack_fields(spec: _Spec, values: Mapping[str, Any]) -> bytes:
    parts = []
    for field in spec.fields:
        item = values[field.attr]
        if field.omitempty and not item:
            continue
        parts.append(_pack_raw(field.key) + field.kind.pack(item))
    return _pack_map_header(len(parts)) + b"".join(parts)


def _pack_struct(spec: _Spec, value: object) -> bytes:
    return _pack_fields(spec, {field.attr: getattr(value, field.attr) for field in spec.fields})


def _read_struct(spec: _Spec, body: object) -> dict[str, Any]:
    what = spec.what
    if not isinstance(body, dict):
        raise _malformed(what, f"the body should be a msgpack map, not {type(body).__name__}")
    values: dict[str, Any] = {}
    for field in spec.fields:
        values[field.attr] = field.kind.read(body.get(field.key), what, field.go)
    return values


# -- validators for the message classes ------------------------------------------------


def _uint_validator(bits: int) -> Callable[[Any, attrs.Attribute[Any], int], None]:
    limit = 1 << bits

    def check(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise ValueError(
                f"{attribute.name} must be an integer in [0, 2**{bits}), not {value!r}"
            )

    return check


def _addr_validator(_: Any, attribute: attrs.Attribute[Any], value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, 4, 16):
        raise ValueError(f"{attribute.name} must be 0, 4 or 16 bytes of an IP address")


def _vsn_validator(_: Any, attribute: attrs.Attribute[Any], value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, 6):
        raise ValueError(f"{attribute.name} must be 6 bytes (pmin, pmax, pcur, dmin, dmax, dcur)")


_u32 = _uint_validator(32)
_u16 = _uint_validator(16)
_str = attrs.validators.instance_of(str)
_bytes = attrs.validators.instance_of(bytes)
_bool = attrs.validators.instance_of(bool)


# -- messages ---------------------------------------------------------------------------


@attrs.frozen
class Ping:
    """``ping``: are you alive? Answered by an :class:`Ack` with the same ``seq_no``.

    ``node`` names the intended target (a node ignores pings for another name). The
    ``source_*`` fields (Go ``omitempty``) say where to send the ack when the sender
    relays an indirect ping.
    """

    seq_no: int = attrs.field(validator=_u32)
    node: str = attrs.field(validator=_str)
    source_addr: bytes = attrs.field(default=b"", validator=_addr_validator)
    source_port: int = attrs.field(default=0, validator=_u16)
    source_node: str = attrs.field(default="", validator=_str)


@attrs.frozen
class IndirectPing:
    """``indirectPingReq``: please ping ``target:port`` (named ``node``) for me.

    With ``nack`` set, the helper answers with a :class:`Nack` when no ack arrives.
    """

    seq_no: int = attrs.field(validator=_u32)
    target: bytes = attrs.field(validator=_addr_validator)
    port: int = attrs.field(validator=_u16)
    node: str = attrs.field(validator=_str)
    nack: bool = attrs.field(default=False, validator=_bool)
    source_addr: bytes = attrs.field(default=b"", validator=_addr_validator)
    source_port: int = attrs.field(default=0, validator=_u16)
    source_node: str = attrs.field(default="", validator=_str)


@attrs.frozen
class Ack:
    """``ackResp``: the answer to a ping; ``payload`` is the ping delegate's (Serf puts
    its network coordinate there; empty is accepted)."""

    seq_no: int = attrs.field(validator=_u32)
    payload: bytes = attrs.field(default=b"", validator=_bytes)


@attrs.frozen
class Nack:
    """``nackResp``: an indirect ping's helper heard no ack in time."""

    seq_no: int = attrs.field(validator=_u32)


@attrs.frozen
class Suspect:
    """``suspect``: ``from_node`` suspects ``node`` (at ``incarnation``) to be dead."""

    incarnation: int = attrs.field(validator=_u32)
    node: str = attrs.field(validator=_str)
    from_node: str = attrs.field(validator=_str)


@attrs.frozen
class Alive:
    """``alive``: ``node`` is alive at ``addr:port`` with ``meta``, at ``incarnation``.

    ``addr`` is the raw IP (4 or 16 bytes). ``vsn`` is six bytes: pmin, pmax, pcur of
    the memberlist protocol, then dmin, dmax, dcur of the delegate's (a Serf agent
    sends ``bytes([1, 5, 2, 2, 5, 5])``). It may only be empty when decoded from an old
    peer; encoding requires all six.
    """

    incarnation: int = attrs.field(validator=_u32)
    node: str = attrs.field(validator=_str)
    addr: bytes = attrs.field(validator=_addr_validator)
    port: int = attrs.field(validator=_u16)
    meta: bytes = attrs.field(validator=_bytes)
    vsn: bytes = attrs.field(validator=_vsn_validator)


@attrs.frozen
class Dead:
    """``dead``: ``from_node`` declares ``node`` dead; when the two are the same node,
    it is leaving gracefully."""

    incarnation: int = attrs.field(validator=_u32)
    node: str = attrs.field(validator=_str)
    from_node: str = attrs.field(validator=_str)


@attrs.frozen
class User:
    """``userMsg``: the delegate's bytes (Serf's messages start with Serf's own type
    byte). In a packet it is ``[8]`` then the payload; on a stream ``[8]``, a
    ``{UserMsgLen}`` header, then the payload."""

    payload: bytes = attrs.field(validator=_bytes)


@attrs.frozen
class ErrorResponse:
    """``errResp``: the remote end of a stream failed to read what it was sent."""

    error: str = attrs.field(validator=_str)


@attrs.frozen
class PushNodeState:
    """One node record of a push-pull (``pushNodeState``).

    ``state`` is memberlist's ``NodeStateType``: 0 alive, 1 suspect, 2 dead, 3 left
    (other values are kept as they are, as Go does, for the state machine to ignore).
    """

    name: str = attrs.field(validator=_str)
    addr: bytes = attrs.field(validator=_addr_validator)
    port: int = attrs.field(validator=_u16)
    meta: bytes = attrs.field(validator=_bytes)
    incarnation: int = attrs.field(validator=_u32)
    state: int = attrs.field(validator=_uint_validator(31))
    vsn: bytes = attrs.field(validator=_vsn_validator)


def _to_nodes(nodes: Iterable[PushNodeState]) -> tuple[PushNodeState, ...]:
    nodes = tuple(nodes)
    for node in nodes:
        if not isinstance(node, PushNodeState):
            raise TypeError(f"a push-pull carries PushNodeState records, not {node!r}")
    return nodes


@attrs.frozen
class PushPull:
    """A whole push-pull exchange, as one stream carries it: the ``pushPullHeader``
    ``{Nodes, UserStateLen, Join}``, one :class:`PushNodeState` per node, then the
    delegate's raw user state (Serf's starts with its push-pull type byte)."""

    join: bool = attrs.field(validator=_bool)
    nodes: tuple[PushNodeState, ...] = attrs.field(converter=_to_nodes)
    user_state: bytes = attrs.field(default=b"", validator=_bytes)


Message = (
    Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | User | ErrorResponse | PushPull
)
"""Any decoded memberlist message."""

_PING_SPEC = _Spec(
    "ping message",
    (
        _Field("SeqNo", "seq_no", _U32),
        _Field("Node", "node", _STR),
        _Field("SourceAddr", "source_addr", _ADDR, omitempty=True),
        _Field("SourcePort", "source_port", _U16, omitempty=True),
        _Field("SourceNode", "source_node", _STR, omitempty=True),
    ),
)
_INDIRECT_PING_SPEC = _Spec(
    "indirect ping message",
    (
        _Field("SeqNo", "seq_no", _U32),
        _Field("Target", "target", _ADDR),
        _Field("Port", "port", _U16),
        _Field("Node", "node", _STR),
        _Field("Nack", "nack", _BOOL),
        _Field("SourceAddr", "source_addr", _ADDR, omitempty=True),
        _Field("SourcePort", "source_port", _U16, omitempty=True),
        _Field("SourceNode", "source_node", _STR, omitempty=True),
    ),
)
_ACK_SPEC = _Spec(
    "ack message", (_Field("SeqNo", "seq_no", _U32), _Field("Payload", "payload", _BYTES))
)
_NACK_SPEC = _Spec("nack message", (_Field("SeqNo", "seq_no", _U32),))
_ERR_SPEC = _Spec("err message", (_Field("Error", "error", _STR),))
_SUSPECT_SPEC = _Spec(
    "suspect message",
    (
        _Field("Incarnation", "incarnation", _U32),
        _Field("Node", "node", _STR),
        _Field("From", "from_node", _STR),
    ),
)
_DEAD_SPEC = attrs.evolve(_SUSPECT_SPEC, what="dead message")
_ALIVE_SPEC = _Spec(
    "alive message",
    (
        _Field("Incarnation", "incarnation", _U32),
        _Field("Node", "node", _STR),
        _Field("Addr", "addr", _ADDR),
        _Field("Port", "port", _U16),
        _Field("Meta", "meta", _BYTES),
        _Field("Vsn", "vsn", _VSN),
    ),
)
_PUSH_NODE_SPEC = _Spec(
    "push-pull node record",
    (
        _Field("Name", "name", _STR),
        _Field("Addr", "addr", _ADDR),
        _Field("Port", "port", _U16),
        _Field("Meta", "meta", _BYTES),
        _Field("Incarnation", "incarnation", _U32),
        _Field("State", "state", _INT),
        _Field("Vsn", "vsn", _VSN),
    ),
)
_PUSH_PULL_HEADER_SPEC = _Spec(
    "push-pull header",
    (
        _Field("Nodes", "nodes", _INT),
        _Field("UserStateLen", "user_state_len", _INT),
        _Field("Join", "join", _BOOL),
    ),
)
_USER_HEADER_SPEC = _Spec("user message header", (_Field("UserMsgLen", "length", _INT),))
_COMPRESS_SPEC = _Spec(
    "compress message", (_Field("Algo", "algo", _U8), _Field("Buf", "buf", _BYTES))
)

# message class -> (type byte, struct spec); User and PushPull are encoded by hand
_BODIES: dict[type, tuple[MessageType, _Spec]] = {
    Ping: (MessageType.PING, _PING_SPEC),
    IndirectPing: (MessageType.INDIRECT_PING, _INDIRECT_PING_SPEC),
    Ack: (MessageType.ACK, _ACK_SPEC),
    Nack: (MessageType.NACK, _NACK_SPEC),
    Suspect: (MessageType.SUSPECT, _SUSPECT_SPEC),
    Alive: (MessageType.ALIVE, _ALIVE_SPEC),
    Dead: (MessageType.DEAD, _DEAD_SPEC),
    ErrorResponse: (MessageType.ERR, _ERR_SPEC),
}
_DECODERS: dict[int, tuple[Callable[..., Message], _Spec]] = {
    int(code): (cls, spec) for cls, (code, spec) in _BODIES.items()
}


def encode_message(message: Message) -> bytes:
    """The bytes of ``message`` as it travels in a packet: its type byte, then its body.

    A :class:`User` message is ``[8]`` then its payload. A :class:`PushPull` has no
    packet form; it is encoded as on a stream (see :func:`encode_stream_message`).
    """
    if isinstance(message, User):
        return bytes((MessageType.USER,)) + message.payload
    if isinstance(message, PushPull):
        return encode_stream_message(message)
    try:
        code, spec = _BODIES[type(message)]
    except KeyError:
        raise TypeError(f"not a memberlist message: {message!r}") from None
    return bytes((code,)) + _pack_struct(spec, message)


def encode_stream_message(message: Message) -> bytes:
    """The bytes of ``message`` as it travels on a stream, before compression and
    encryption: a push-pull is its header, its node records and its user state; a user
    message carries a ``{UserMsgLen}`` header; other messages are as in packets."""
    if isinstance(message, PushPull):
        header = {
            "nodes": len(message.nodes),
            "user_state_len": len(message.user_state),
            "join": message.join,
        }
        parts = [bytes((MessageType.PUSH_PULL,)), _pack_fields(_PUSH_PULL_HEADER_SPEC, header)]
        parts.extend(_pack_struct(_PUSH_NODE_SPEC, node) for node in message.nodes)
        parts.append(message.user_state)
        return b"".join(parts)
    if isinstance(message, User):
        header = {"length": len(message.payload)}
        return (
            bytes((MessageType.USER,)) + _pack_fields(_USER_HEADER_SPEC, header) + message.payload
        )
    return encode_message(message)


def decode_message(data: bytes) -> Message:
    """Decode one message as a packet carries it: a type byte, then one msgpack body
    (for :attr:`MessageType.USER`, the raw payload).

    Compound, compressed, CRC, encrypted and labelled envelopes are not messages:
    :func:`decode_packet` opens them. Raises :class:`MalformedMessage`.
    """
    data = bytes(data)
    if not data:
        raise MalformedMessage("empty message: no type byte")
    code = data[0]
    if code == MessageType.USER:
        return User(data[1:])
    try:
        cls, spec = _DECODERS[code]
    except KeyError:
        if code in MessageType._value2member_map_:
            raise MalformedMessage(
                f"{_type_name(code)} is not a single message: it has no body to decode here"
            ) from None
        raise MalformedMessage(f"unknown message type {code}") from None
    return cls(**_read_struct(spec, _unpack_one(data[1:], spec.what)))


def _decode_push_node(body: object) -> PushNodeState:
    values = _read_struct(_PUSH_NODE_SPEC, body)
    if values["state"] >= 1 << 31:
        raise _malformed(_PUSH_NODE_SPEC.what, f"field State is {values['state']}, out of range")
    return PushNodeState(**values)


# -- compound messages, CRC, labels ----------------------------------------------------


MAX_COMPOUND_PARTS: Final = 127
"""The most parts :func:`encode_compound` puts in one compound message. The count is a
byte, but memberlist before 0.5 (Serf 0.9's) computes ``count * 2`` in 8 bits, which
wraps from 128 parts on and makes it misread (or panic on) the message."""


def encode_compound(parts: Sequence[bytes]) -> bytes:
    """A compound message: ``[7]``, the count (one byte), each part's length (uint16
    big-endian), then the parts. At most :data:`MAX_COMPOUND_PARTS` (127) parts, of at
    most 65,535 bytes each. (Decoding accepts up to 255, as newer memberlist sends.)"""
    if len(parts) > MAX_COMPOUND_PARTS:
        raise ValueError(
            f"a compound message holds at most {MAX_COMPOUND_PARTS} parts, not {len(parts)}"
        )
    header = bytearray((MessageType.COMPOUND, len(parts)))
    for part in parts:
        if len(part) > 0xFFFF:
            raise ValueError(f"a compound part is at most 65535 bytes, not {len(part)}")
        header += len(part).to_bytes(2, "big")
    return bytes(header) + b"".join(parts)


def split_compound(data: bytes) -> tuple[list[bytes], int]:
    """The parts of a compound message, and how many parts were truncated.

    As in Go, parts that the data is too short for are counted, not raised: the parts
    before them are still returned. A missing count or length table raises
    :class:`MalformedMessage`.
    """
    if not data or data[0] != MessageType.COMPOUND:
        raise MalformedMessage("not a compound message")
    if len(data) < 2:
        raise MalformedMessage("compound message: missing the count byte")
    count = data[1]
    table_end = 2 + 2 * count
    if len(data) < table_end:
        raise MalformedMessage(f"compound message: truncated length table ({count} parts)")
    lengths = [int.from_bytes(data[2 + 2 * i : 4 + 2 * i], "big") for i in range(count)]
    parts: list[bytes] = []
    offset = table_end
    for index, length in enumerate(lengths):
        if len(data) < offset + length:
            return parts, count - index
        parts.append(bytes(data[offset : offset + length]))
        offset += length
    return parts, 0


def add_crc(data: bytes) -> bytes:
    """``data`` prefixed with ``[12]`` and its CRC-32 (IEEE), big-endian, as memberlist
    sends packets to nodes whose protocol max is 5 or more."""
    return bytes((MessageType.HAS_CRC,)) + zlib.crc32(data).to_bytes(4, "big") + data


def strip_crc(data: bytes) -> bytes:
    """Check and remove a CRC header; raises :class:`MalformedMessage` if it is
    truncated or the checksum does not match."""
    if not data or data[0] != MessageType.HAS_CRC:
        raise MalformedMessage("not a CRC-prefixed packet")
    if len(data) < 5:
        raise MalformedMessage("CRC header is truncated")
    expected = int.from_bytes(data[1:5], "big")
    actual = zlib.crc32(data[5:])
    if actual != expected:
        raise MalformedMessage(
            f"bad CRC: the packet says {expected:08x}, its data has {actual:08x}"
        )
    return bytes(data[5:])


def add_label(data: bytes, label: str) -> bytes:
    """``data`` prefixed with the label header ``[244][length][label]``; unchanged when
    ``label`` is empty. A label is at most 255 bytes of UTF-8."""
    if not label:
        return data
    raw = label.encode("utf-8")
    if len(raw) > LABEL_MAX_SIZE:
        raise ValueError(f"label {label!r} is {len(raw)} bytes, more than {LABEL_MAX_SIZE}")
    return bytes((MessageType.HAS_LABEL, len(raw))) + raw + data


def strip_label(data: bytes) -> tuple[str, bytes]:
    """``(label, rest)``: the label of a labelled packet and what follows it, or
    ``("", data)`` when there is no label header."""
    if not data or data[0] != MessageType.HAS_LABEL:
        return "", data
    if len(data) < 2:
        raise MalformedMessage("label header is truncated")
    size = data[1]
    if size == 0:
        raise MalformedMessage("label header cannot be empty when present")
    if len(data) < 2 + size:
        raise MalformedMessage("label is truncated")
    try:
        label = bytes(data[2 : 2 + size]).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("label is not valid UTF-8") from None
    return label, bytes(data[2 + size :])


# -- LZW, as Go's compress/lzw with LSB order and 8-bit literals ------------------------

_LZW_CLEAR: Final = 256
_LZW_EOF: Final = 257
_LZW_MAX_CODE: Final = 4095  # codes are at most 12 bits


def lzw_compress(data: bytes) -> bytes:
    """Compress ``data`` exactly as Go's ``lzw.NewWriter(w, lzw.LSB, 8)`` does.

    Codes start 9 bits wide and widen when the next code to assign reaches the width's
    limit; the stream opens with a clear code (256) and ends with the end code (257),
    the last partial byte padded with zero bits. When the next code would be 4095, a
    clear code is sent and the dictionary starts over.
    """
    out = bytearray()
    bits = 0
    nbits = 0
    width = 9

    def emit(code: int) -> None:
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    emit(_LZW_CLEAR)
    if data:
        hi = _LZW_EOF
        overflow = 1 << 9
        table: dict[int, int] = {}
        code = data[0]
        for byte in memoryview(data)[1:]:
            key = (code << 8) | byte
            found = table.get(key)
            if found is not None:
                code = found
                continue
            emit(code)
            code = byte
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == _LZW_MAX_CODE:
                emit(_LZW_CLEAR)
                width, hi, overflow = 9, _LZW_EOF, 1 << 9
                table.clear()
                continue
            table[key] = hi
        emit(code)
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _LZW_MAX_CODE:
            emit(_LZW_CLEAR)
            width = 9
    emit(_LZW_EOF)
    if nbits > 0:
        out.append(bits & 0xFF)
    return bytes(out)


def lzw_decompress(data: bytes, max_size: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """Decompress what Go's ``lzw.NewWriter(w, lzw.LSB, 8)`` wrote.

    Accepts exactly what Go's reader accepts: clear codes anywhere, a code at most one
    past the dictionary, and anything after the end code (ignored). Raises
    :class:`MalformedMessage` for an invalid code, for data that ends before the end
    code, and for output longer than ``max_size``.
    """
    out = bytearray()
    entries: list[bytes] = [bytes((i,)) for i in range(256)] + [b""] * (4096 - 256)
    width = 9
    hi = _LZW_EOF
    overflow = 1 << 9
    last = -1
    bits = 0
    nbits = 0
    pos = 0
    size = len(data)
    while True:
        while nbits < width:
            if pos >= size:
                raise MalformedMessage("LZW data is truncated: no end code")
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        nbits -= width
        if code < _LZW_CLEAR:
            entry = entries[code]
        elif code == _LZW_CLEAR:
            width, hi, overflow, last = 9, _LZW_EOF, 1 << 9, -1
            continue
        elif code == _LZW_EOF:
            return bytes(out)
        elif code <= hi:
            if code == hi and last >= 0:
                previous = entries[last]
                entry = previous + previous[:1]
            else:
                entry = entries[code]
        else:
            raise MalformedMessage(f"LZW data has an invalid code {code} (next is {hi})")
        if last >= 0:
            entries[hi] = entries[last] + entry[:1]
        out += entry
        if len(out) > max_size:
            raise MalformedMessage(
                f"decompressed data is larger than the limit of {max_size} bytes"
            )
        last = code
        hi += 1
        if hi >= overflow:
            if width == 12:
                last = -1
                hi -= 1
            else:
                width += 1
                overflow <<= 1


def compress_message(data: bytes) -> bytes:
    """``data`` (a whole message) wrapped in a ``compress`` message ``[9]{Algo: 0, Buf}``
    with :func:`lzw_compress`, as memberlist's ``compressPayload``."""
    body = {"algo": 0, "buf": lzw_compress(data)}
    return bytes((MessageType.COMPRESS,)) + _pack_fields(_COMPRESS_SPEC, body)


def _decompress_body(body: object, max_size: int) -> bytes:
    values = _read_struct(_COMPRESS_SPEC, body)
    if values["algo"] != 0:
        raise MalformedMessage(f"compress message: unknown algorithm {values['algo']}")
    return lzw_decompress(values["buf"], max_size)


def decompress_message(data: bytes, max_size: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """The message inside a ``compress`` message (only LZW, algorithm 0, exists)."""
    if not data or data[0] != MessageType.COMPRESS:
        raise MalformedMessage("not a compress message")
    return _decompress_body(_unpack_one(bytes(data[1:]), _COMPRESS_SPEC.what), max_size)


# -- encryption -------------------------------------------------------------------------


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) not in _KEY_SIZES:
        size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
        raise ValueError(
            f"an encryption key must be 16, 24 or 32 bytes (AES-128/192/256), not {size}"
        )
    return key


def _encrypted_length(version: int, plain_length: int) -> int:
    if version >= 1:
        return 1 + _NONCE_SIZE + plain_length + _TAG_SIZE
    return 1 + _NONCE_SIZE + plain_length + (16 - plain_length % 16) + _TAG_SIZE


def encrypt_payload(key: bytes, plaintext: bytes, additional_data: bytes = b"") -> bytes:
    """memberlist's ``encryptPayload`` at version 1: ``[1][12-byte random nonce]`` then
    the AES-GCM ciphertext and tag of ``plaintext``, authenticating ``additional_data``
    (a packet's label; a stream's ``[10][length]`` header and label)."""
    nonce = os.urandom(_NONCE_SIZE)
    sealed = AESGCM(_check_key(key)).encrypt(nonce, bytes(plaintext), additional_data or None)
    return bytes((ENCRYPTION_VERSION,)) + nonce + sealed


def decrypt_payload(keys: Iterable[bytes], data: bytes, additional_data: bytes = b"") -> bytes:
    """memberlist's ``decryptPayload``: try each key in turn; the first that
    authenticates the message gives the plaintext.

    Version 0 messages (PKCS#7-padded, protocol 1) are read too. Raises
    :class:`MalformedMessage` when the message is empty, too short, of an unknown
    version, badly padded, or when no key can decrypt it.
    """
    if not data:
        raise MalformedMessage("cannot decrypt an empty payload")
    version = data[0]
    if version > ENCRYPTION_VERSION:
        raise MalformedMessage(f"unsupported encryption version {version}")
    if len(data) < _encrypted_length(version, 0):
        raise MalformedMessage(f"payload is too small to decrypt: {len(data)} bytes")
    nonce = bytes(data[1 : 1 + _NONCE_SIZE])
    sealed = bytes(data[1 + _NONCE_SIZE :])
    for key in keys:
        try:
            plain = AESGCM(_check_key(key)).decrypt(nonce, sealed, additional_data or None)
        except InvalidTag:
            continue
        if version == 0:
            pad = plain[-1] if plain else 0
            if not 1 <= pad <= 16 or len(plain) < pad or plain[-pad:] != bytes((pad,)) * pad:
                raise MalformedMessage("decryption failed: bad PKCS#7 padding")
            plain = plain[:-pad]
        return plain
    raise MalformedMessage("decryption failed: no installed key could decrypt the message")


def _to_keys(keys: Iterable[bytes]) -> tuple[bytes, ...]:
    unique: list[bytes] = []
    for key in keys:
        _check_key(key)
        if key not in unique:
            unique.append(key)
    if not unique:
        raise ValueError("a keyring needs at least one key")
    return tuple(unique)


@attrs.frozen
class Keyring:
    """The encryption keys of a cluster: the first (primary) key encrypts, every key
    is tried to decrypt.

    A key is 16, 24 or 32 bytes, choosing AES-128, AES-192 or AES-256 (GCM). Duplicate
    keys are dropped. A keyring is a value: :meth:`add`, :meth:`use` and
    :meth:`remove` return new keyrings, for key rotation the way Serf does it (install
    the new key everywhere, use it, then remove the old one).

    Usage::

        keyring = Keyring([base64.b64decode(serf_encrypt_key)])
    """

    keys: tuple[bytes, ...] = attrs.field(converter=_to_keys)

    @property
    def primary(self) -> bytes:
        """The key that encrypts."""
        return self.keys[0]

    def __repr__(self) -> str:  # never show key material
        sizes = ", ".join(f"AES-{8 * len(key)}" for key in self.keys)
        return f"<Keyring of {len(self.keys)} keys: {sizes}>"

    def add(self, key: bytes) -> Keyring:
        """A keyring that can also decrypt with ``key`` (the primary stays)."""
        return Keyring((*self.keys, key))

    def use(self, key: bytes) -> Keyring:
        """A keyring whose primary key is ``key``, which must already be installed."""
        if key not in self.keys:
            raise ValueError("the key is not in the keyring: add it first")
        return Keyring((key, *(k for k in self.keys if k != key)))

    def remove(self, key: bytes) -> Keyring:
        """A keyring without ``key``, which must not be the primary key."""
        if key == self.primary:
            raise ValueError("cannot remove the primary key: use another key first")
        return Keyring(k for k in self.keys if k != key)

    def encrypt(self, plaintext: bytes, additional_data: bytes = b"") -> bytes:
        """:func:`encrypt_payload` with the primary key."""
        return encrypt_payload(self.primary, plaintext, additional_data)

    def decrypt(self, data: bytes, additional_data: bytes = b"") -> bytes:
        """:func:`decrypt_payload` with every key, primary first."""
        return decrypt_payload(self.keys, data, additional_data)


def encrypt_stream(keyring: Keyring, payload: bytes, label: str = "") -> bytes:
    """An encrypted stream message: ``[10]``, the encrypted length (uint32 big-endian),
    then the encrypted payload, whose additional data is those five bytes followed by
    the stream's label (memberlist's ``encryptLocalState``)."""
    header = bytes((MessageType.ENCRYPT,)) + _encrypted_length(
        ENCRYPTION_VERSION, len(payload)
    ).to_bytes(4, "big")
    return header + keyring.encrypt(payload, header + label.encode("utf-8"))


# -- Serf tags --------------------------------------------------------------------------


def encode_tags(tags: Mapping[str, str]) -> bytes:
    """Serf's node meta for ``tags``: byte 255, then a msgpack map of string to string.

    Keys are written in sorted order (Go writes a map in random order; any order
    decodes the same). Raises :class:`~tinyagents.cluster.MetaTooLarge` over 512 bytes.
    """
    parts = [bytes((TAG_MAGIC_BYTE,)), _pack_map_header(len(tags))]
    for key in sorted(tags):
        value = tags[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"tags map strings to strings, not {key!r}: {value!r}")
        parts.append(_pack_str(key) + _pack_str(value))
    meta = b"".join(parts)
    if len(meta) > META_MAX_SIZE:
        raise MetaTooLarge(len(meta), META_MAX_SIZE)
    return meta


def decode_tags(meta: bytes) -> dict[str, str]:
    """The tags in a node's meta, as Serf reads them.

    Meta that does not start with byte 255 is a bare role, from Serf protocol 2 and
    before: ``{"role": meta}`` (so empty meta reads as ``{"role": ""}``). Raises
    :class:`MalformedMessage` when tagged meta is not a map of UTF-8 strings.
    """
    if not meta or meta[0] != TAG_MAGIC_BYTE:
        return {"role": bytes(meta).decode("utf-8", errors="replace")}
    body = _unpack_one(bytes(meta[1:]), "serf tags", max_map_len=META_MAX_SIZE)
    if not isinstance(body, dict):
        raise MalformedMessage(f"serf tags: not a msgpack map but {type(body).__name__}")
    tags: dict[str, str] = {}
    for key, value in body.items():
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise MalformedMessage("serf tags: keys and values must be strings")
        try:
            tags[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("serf tags: a key or value is not valid UTF-8") from None
    return tags


# -- addresses --------------------------------------------------------------------------


def ip_to_bytes(host: str) -> bytes:
    """The raw bytes memberlist sends for an IP address: 4 for IPv4, 16 for IPv6."""
    return ipaddress.ip_address(host).packed


def ip_from_bytes(addr: bytes) -> str:
    """The text form of a raw IP address (an IPv4-mapped IPv6 address reads as IPv4,
    as Go prints it)."""
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        ip = ipaddress.IPv6Address(addr)
        return str(ip.ipv4_mapped or ip)
    raise ValueError(f"an IP address is 4 or 16 bytes, not {len(addr)}")


# -- packets ----------------------------------------------------------------------------

_PACKET_TYPES = frozenset(
    {
        MessageType.PING,
        MessageType.INDIRECT_PING,
        MessageType.ACK,
        MessageType.SUSPECT,
        MessageType.ALIVE,
        MessageType.DEAD,
        MessageType.USER,
        MessageType.NACK,
    }
)


@attrs.frozen
class Packet:
    """What :func:`decode_packet` found in a packet.

    ``messages`` are the messages that decoded, in order (compound and compressed
    envelopes opened). ``errors`` holds a :class:`MalformedMessage` for each part that
    did not (a truncated compound counts as one), since, as in memberlist, one bad part
    does not lose the others. ``label`` is the packet's label ("" if none),
    ``encrypted`` whether it was decrypted, ``crc`` whether it carried a checked CRC.
    """

    messages: tuple[Message, ...]
    label: str = ""
    encrypted: bool = False
    crc: bool = False
    errors: tuple[MalformedMessage, ...] = ()


def encode_packet(
    messages: Sequence[Message | bytes],
    *,
    compress: bool = False,
    crc: bool = False,
    keyring: Keyring | None = None,
    label: str = "",
) -> bytes:
    """One packet carrying ``messages`` (messages, or bytes already encoded), as
    memberlist's ``rawSendMsgPacket`` builds it.

    More than one message makes a compound. ``compress`` wraps it in a compress
    message when that is smaller; ``crc`` prefixes a CRC (memberlist does for nodes
    whose protocol max is 5 or more); ``keyring`` encrypts with the primary key, the
    label as additional data; ``label`` prefixes the label header.
    """
    if not messages:
        raise ValueError("a packet carries at least one message")
    encoded = [m if isinstance(m, bytes) else encode_message(m) for m in messages]
    data = encoded[0] if len(encoded) == 1 else encode_compound(encoded)
    if compress:
        compressed = compress_message(data)
        if len(compressed) < len(data):
            data = compressed
    if crc:
        data = add_crc(data)
    if keyring is not None:
        data = keyring.encrypt(data, label.encode("utf-8"))
    return add_label(data, label)


def _walk_packet(
    data: bytes, depth: int, messages: list[Message], errors: list[MalformedMessage]
) -> None:
    if depth > MAX_NESTING:
        errors.append(MalformedMessage(f"messages nested more than {MAX_NESTING} levels deep"))
        return
    if not data:
        errors.append(MalformedMessage("empty message: no type byte"))
        return
    code = data[0]
    try:
        if code == MessageType.COMPOUND:
            parts, truncated = split_compound(data)
            if truncated:
                errors.append(
                    MalformedMessage(f"compound message: {truncated} of {data[1]} parts truncated")
                )
            for part in parts:
                _walk_packet(part, depth + 1, messages, errors)
        elif code == MessageType.COMPRESS:
            _walk_packet(decompress_message(data, MAX_PACKET_SIZE), depth + 1, messages, errors)
        elif code in _PACKET_TYPES:
            messages.append(decode_message(data))
        elif code in MessageType._value2member_map_:
            raise MalformedMessage(f"{_type_name(code)} cannot be a message inside a packet")
        else:
            raise MalformedMessage(f"unknown message type {code}")
    except MalformedMessage as error:
        errors.append(error)


def decode_packet(
    data: bytes, *, keyring: Keyring | None = None, verify_incoming: bool = True
) -> Packet:
    """Open a packet as memberlist's ``ingestPacket`` does: remove the label header,
    decrypt, check and remove the CRC, then decode its messages, opening compound and
    compressed envelopes.

    With a ``keyring``, the packet is decrypted with the label as additional data; if
    no key can, it is an error when ``verify_incoming`` (memberlist's
    ``GossipVerifyIncoming``), and otherwise the packet is read as plaintext.

    Raises :class:`MalformedMessage` when the packet as a whole is unusable (oversized,
    bad label, decryption failed, bad CRC) or when none of its messages decoded; else
    returns a :class:`Packet`, whose ``errors`` lists the parts that did not decode.
    """
    data = bytes(data)
    if len(data) > MAX_PACKET_SIZE:
        raise MalformedMessage(
            f"packet of {len(data)} bytes is over the limit of {MAX_PACKET_SIZE}"
        )
    label, data = strip_label(data)
    encrypted = False
    if keyring is not None:
        try:
            data = keyring.decrypt(data, label.encode("utf-8"))
            encrypted = True
        except MalformedMessage:
            if verify_incoming:
                raise
    has_crc = False
    if data and data[0] == MessageType.HAS_CRC:
        data = strip_crc(data)
        has_crc = True
    messages: list[Message] = []
    errors: list[MalformedMessage] = []
    _walk_packet(data, 0, messages, errors)
    if errors and not messages:
        raise errors[0]
    return Packet(tuple(messages), label, encrypted, has_crc, tuple(errors))


# -- streams ----------------------------------------------------------------------------


@attrs.frozen
class StreamFrame:
    """The one message a stream carried, and how: its ``label`` ("" if none), whether
    it was ``encrypted`` and whether it was ``compressed``."""

    message: Message
    label: str = ""
    encrypted: bool = False
    compressed: bool = False


def encode_stream(
    message: Message, *, compress: bool = True, keyring: Keyring | None = None, label: str = ""
) -> bytes:
    """Everything a stream carries for ``message``, as memberlist's ``rawSendMsgStream``
    and its transport write it: the message (:func:`encode_stream_message`), always
    compressed when ``compress`` (memberlist's default ``EnableCompression``), then
    encrypted with :func:`encrypt_stream` when there is a ``keyring``, then the label
    header."""
    data = encode_stream_message(message)
    if compress:
        data = compress_message(data)
    if keyring is not None:
        data = encrypt_stream(keyring, data, label)
    return add_label(data, label)


class _Input:
    """Buffered stream bytes: raw reads and msgpack values, waiting (yielding) for more
    data until ``eof`` is set, after which a short read is a truncation."""

    def __init__(self, max_buffer: int, data: bytes | None = None) -> None:
        self._unpacker = _new_unpacker(max_buffer)
        self.eof = False
        if data is not None:
            self.feed(data)
            self.eof = True

    def feed(self, data: bytes) -> None:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise MalformedMessage(
                "stream is over the limit of bytes buffered while decoding"
            ) from None

    def read(self, n: int, what: str) -> Generator[None, None, bytes]:
        got = bytearray()
        while len(got) < n:
            chunk = self._unpacker.read_bytes(n - len(got))
            if chunk:
                got += chunk
                continue
            if self.eof:
                raise _malformed(what, f"truncated: {len(got)} of {n} bytes")
            yield
        return bytes(got)

    def value(self, what: str) -> Generator[None, None, object]:
        while True:
            try:
                return self._unpacker.unpack()
            except msgpack.OutOfData:
                if self.eof:
                    raise _malformed(what, "truncated msgpack") from None
            except Exception as exc:
                raise _malformed(what, f"bad msgpack ({type(exc).__name__}: {exc})") from None
            yield

    def remaining(self) -> int:
        return len(self._unpacker.read_bytes(MAX_STREAM_BUFFER))


def _complete(generator: Generator[None, None, _T]) -> _T:
    """Run a parser over an input that already has all its data."""
    try:
        generator.send(None)
    except StopIteration as stop:
        result: _T = stop.value
        return result
    raise MalformedMessage("truncated data")  # pragma: no cover - inputs are at eof


def _stream_message(source: _Input, code: int) -> Generator[None, None, Message]:
    if code == MessageType.PUSH_PULL:
        header = _read_struct(
            _PUSH_PULL_HEADER_SPEC, (yield from source.value(_PUSH_PULL_HEADER_SPEC.what))
        )
        if header["nodes"] > MAX_PUSH_PULL_NODES:
            raise MalformedMessage(
                f"push-pull header: {header['nodes']} nodes, over the limit of "
                f"{MAX_PUSH_PULL_NODES}"
            )
        if header["user_state_len"] > MAX_USER_STATE_SIZE:
            raise MalformedMessage(
                f"push-pull header: user state of {header['user_state_len']} bytes, "
                f"over the limit of {MAX_USER_STATE_SIZE}"
            )
        nodes = []
        for _ in range(header["nodes"]):
            nodes.append(_decode_push_node((yield from source.value(_PUSH_NODE_SPEC.what))))
        user_state = yield from source.read(header["user_state_len"], "push-pull user state")
        return PushPull(header["join"], tuple(nodes), user_state)
    if code == MessageType.USER:
        header = _read_struct(_USER_HEADER_SPEC, (yield from source.value(_USER_HEADER_SPEC.what)))
        if header["length"] > MAX_USER_STATE_SIZE:
            raise MalformedMessage(
                f"user message of {header['length']} bytes is over the limit of "
                f"{MAX_USER_STATE_SIZE}"
            )
        return User((yield from source.read(header["length"], "user message")))
    if code in (MessageType.PING, MessageType.ACK, MessageType.ERR):
        cls, spec = _DECODERS[code]
        message: Message = cls(**_read_struct(spec, (yield from source.value(spec.what))))
        return message
    if code in MessageType._value2member_map_:
        raise MalformedMessage(f"{_type_name(code)} cannot be the message of a stream")
    raise MalformedMessage(f"unknown message type {code} on a stream")


def _whole_message(data: bytes, what: str) -> Message:
    """The single stream message that a decrypted or decompressed buffer holds."""
    if not data:
        raise MalformedMessage(f"{what} is empty")
    source = _Input(len(data), data[1:])
    message = _complete(_stream_message(source, data[0]))
    extra = source.remaining()
    if extra:
        raise MalformedMessage(f"{what}: {extra} unexpected bytes after the message")
    return message


def _stream_body(source: _Input, code: int) -> Generator[None, None, tuple[Message, bool]]:
    if code == MessageType.COMPRESS:
        body = yield from source.value(_COMPRESS_SPEC.what)
        plain = _decompress_body(body, MAX_DECOMPRESSED_SIZE)
        return _whole_message(plain, "decompressed stream"), True
    return (yield from _stream_message(source, code)), False


def _stream(
    source: _Input, keyring: Keyring | None, verify_incoming: bool
) -> Generator[None, None, StreamFrame]:
    first = (yield from source.read(1, "stream"))[0]
    label = ""
    if first == MessageType.HAS_LABEL:
        size = (yield from source.read(1, "stream label header"))[0]
        if size == 0:
            raise MalformedMessage("label header cannot be empty when present")
        try:
            label = (yield from source.read(size, "stream label")).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("stream label is not valid UTF-8") from None
        first = (yield from source.read(1, "stream"))[0]
    if first == MessageType.ENCRYPT:
        if keyring is None:
            raise MalformedMessage("stream is encrypted and no keyring is configured")
        length_bytes = yield from source.read(4, "encrypted stream header")
        length = int.from_bytes(length_bytes, "big")
        if length > MAX_ENCRYPTED_STREAM_SIZE:
            raise MalformedMessage(
                f"encrypted stream of {length} bytes is over the limit of "
                f"{MAX_ENCRYPTED_STREAM_SIZE}"
            )
        sealed = yield from source.read(length, "encrypted stream")
        additional_data = bytes((first,)) + length_bytes + label.encode("utf-8")
        plain = keyring.decrypt(sealed, additional_data)
        if not plain:
            raise MalformedMessage("decrypted stream is empty")
        inner = _Input(len(plain), plain[1:])
        message, compressed = _complete(_stream_body(inner, plain[0]))
        extra = inner.remaining()
        if extra:
            raise MalformedMessage(f"decrypted stream: {extra} unexpected bytes after the message")
        return StreamFrame(message, label, True, compressed)
    if keyring is not None and verify_incoming:
        raise MalformedMessage("encryption is configured but the stream is not encrypted")
    message, compressed = yield from _stream_body(source, first)
    return StreamFrame(message, label, False, compressed)


class StreamDecoder:
    """Reads the one message that a memberlist stream carries, from bytes fed as they
    arrive (sans I/O, for a TCP connection that stays open for the reply).

    ::

        decoder = StreamDecoder(keyring)
        while (frame := decoder.feed(await stream.receive_some())) is None:
            pass
        # at end of file: decoder.feed_eof() raises if the message is incomplete

    The stream may have a label header, then be encrypted (``[10][length]...``),
    compressed, or plain. With a ``keyring``, an unencrypted stream is an error when
    ``verify_incoming``. Raises :class:`MalformedMessage`; a decoder that raised, or
    that returned its frame, takes no more data.
    """

    def __init__(self, keyring: Keyring | None = None, *, verify_incoming: bool = True) -> None:
        self._input = _Input(MAX_STREAM_BUFFER)
        self._parser = _stream(self._input, keyring, verify_incoming)
        self._done = False
        self.frame: StreamFrame | None = None
        """The decoded frame, once complete."""

    def feed(self, data: bytes) -> StreamFrame | None:
        """Add received bytes; the frame once the message is complete, else ``None``.
        Bytes after the message are ignored, as memberlist ignores them."""
        if self._done:
            raise RuntimeError("this stream decoder has finished: it takes no more data")
        try:
            self._input.feed(bytes(data))
        except MalformedMessage:
            self._done = True
            raise
        return self._resume()

    def feed_eof(self) -> StreamFrame:
        """The peer closed the stream: the frame, or :class:`MalformedMessage` if the
        message is incomplete."""
        if self.frame is not None:
            return self.frame
        if self._done:
            raise RuntimeError("this stream decoder has failed")
        self._input.eof = True
        frame = self._resume()
        assert frame is not None  # at eof the parser finishes or raises
        return frame

    def _resume(self) -> StreamFrame | None:
        try:
            self._parser.send(None)
        except StopIteration as stop:
            self._done = True
            self.frame = stop.value
            return self.frame
        except BaseException:
            self._done = True
            raise
        return None


def decode_stream(
    data: bytes, *, keyring: Keyring | None = None, verify_incoming: bool = True
) -> StreamFrame:
    """Decode a whole stream's bytes (see :class:`StreamDecoder`); bytes after the
    message are an error here."""
    data = bytes(data)
    if len(data) > MAX_STREAM_BUFFER:
        raise MalformedMessage(
            f"stream of {len(data)} bytes is over the limit of {MAX_STREAM_BUFFER}"
        )
    source = _Input(len(data), data)
    frame = _complete(_stream(source, keyring, verify_incoming))
    extra = source.remaining()
    if extra:
        raise MalformedMessage(f"stream: {extra} unexpected bytes after the message")
    return frame
