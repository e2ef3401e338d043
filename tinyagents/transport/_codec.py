"""The message codec: what a value becomes on the wire, and back.

A message travels as a *type id* and a *payload* (msgpack bytes):

* the built-in kinds — ``None``, bools, ints, floats, str, bytes, lists, tuples
  (arriving as lists) and dicts of them — have the type id ``""``;
* attrs classes registered with :func:`message`, and the LLM and agent value types
  (``Prompt``, ``Response``, ``Message``, ``Usage``..., and ``Resume`` with its
  ``Approve`` / ``Deny`` decisions), have their registered id, and
  their payload is what cattrs unstructures them to.

Inside a payload, msgpack extension types carry what plain msgpack cannot:

====  =============================================================================
ext   value
====  =============================================================================
1     an :class:`~tinyagents.ActorRef` (``[node, host, port, node uid, path, uid]``)
2     a trio send channel, such as ``Prompt.stream`` (a stream id of the connection)
4     a registered value inside a built-in one (``[type id, payload]``)
5     an exception (``[type name, text]``), arriving as a ``RemoteError``
====  =============================================================================

What refs and channels become depends on the connection, so packing and unpacking
take *hooks* (:class:`WireHooks`), which the transport gives per peer.

Fields typed ``Any`` carry built-in kinds: a registered value there arrives as the
dict it unstructures to.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

import attrs
import cattrs
import msgpack  # type: ignore[import-untyped]
import trio
from cattrs.preconf.msgpack import make_converter

from ..actor._ref import ActorRef
from ..errors import CodecError, MalformedFrame, NotSerializable, RemoteError, UnknownMessageType

__all__ = ["Codec", "MessageRegistry", "WireHooks", "message"]

T = TypeVar("T")

EXT_REF = 1
EXT_CHANNEL = 2
EXT_VALUE = 4
EXT_ERROR = 5

_PLAIN = (str, bytes, int, float, bool, type(None))
_PASSTHROUGH = (ActorRef, trio.abc.SendChannel, BaseException)


class WireHooks(Protocol):
    """What the codec asks of a connection (the transport's peer)."""

    @property
    def peer(self) -> str:
        """The other node's id (for ``RemoteError.node``)."""
        ...

    def ref_to_wire(self, ref: ActorRef) -> list[object]: ...

    def ref_from_wire(self, data: list[object]) -> ActorRef: ...

    def channel_to_wire(self, channel: trio.abc.SendChannel[Any]) -> int: ...

    def channel_from_wire(self, stream_id: int) -> trio.abc.SendChannel[Any]: ...


class MessageRegistry:
    """Message types by type id, and type ids by type.

    A type id names a message type on every node: nodes that exchange a type must
    register it under the same id. A new registry knows the built-in LLM and agent
    types (``tinyagents.Prompt``, ``tinyagents.Response``, ``tinyagents.Message``...).
    :func:`message` registers in the process-wide registry, which every transport uses
    unless given its own (``Transport(..., registry=...)``).
    """

    def __init__(self) -> None:
        self._by_id: dict[str, type[Any]] = {}
        self._by_type: dict[type[Any], str] = {}
        self._lock = threading.Lock()
        for cls in _builtin_types():
            self.register(cls, f"tinyagents.{cls.__name__}")

    def register(self, cls: type[Any], type_id: str | None = None) -> str:
        """Register attrs class ``cls`` under ``type_id`` (default: its module and
        qualified name); the id. Registering the same class under the same id again
        does nothing.

        Raises:
            TypeError: ``cls`` is not an attrs class.
            ValueError: the id is empty, or taken by another class, or ``cls`` has
                another id already.
        """
        if not (isinstance(cls, type) and attrs.has(cls)):
            raise TypeError(f"a message type must be an attrs class, not {cls!r:.80}")
        if type_id is None:
            type_id = f"{cls.__module__}.{cls.__qualname__}"
        if not isinstance(type_id, str) or not type_id:
            raise ValueError(f"a message type id must be a non-empty str, not {type_id!r}")
        with self._lock:
            owner = self._by_id.get(type_id)
            if owner is not None and owner is not cls:
                raise ValueError(
                    f"message type id {type_id!r} is taken by {owner.__module__}."
                    f"{owner.__qualname__}"
                )
            known = self._by_type.get(cls)
            if known is not None and known != type_id:
                raise ValueError(f"{cls.__qualname__} is already registered as {known!r}")
            self._by_id[type_id] = cls
            self._by_type[cls] = type_id
        return type_id

    def unregister(self, cls: type[Any]) -> None:
        """Forget ``cls`` (nothing happens if it was not registered)."""
        with self._lock:
            type_id = self._by_type.pop(cls, None)
            if type_id is not None:
                self._by_id.pop(type_id, None)

    def type_id(self, cls: type[Any]) -> str | None:
        """The id of ``cls``, or ``None`` if it is not registered."""
        return self._by_type.get(cls)

    def get(self, type_id: str) -> type[Any] | None:
        """The class registered as ``type_id``, or ``None``."""
        return self._by_id.get(type_id)

    def __contains__(self, cls: object) -> bool:
        return cls in self._by_type


def _builtin_types() -> tuple[type[Any], ...]:
    from .. import agent, approval, crdt
    from ..llm import _types as llm

    return (
        agent.Prompt,
        approval.Resume,
        approval.Approve,
        approval.Deny,
        agent.Response,
        agent.MemberReply,
        llm.Message,
        llm.ToolCall,
        llm.ToolSpec,
        llm.Usage,
        llm.ChatRequest,
        llm.ChatResponse,
        llm.Chunk,
        crdt.GCounter,
        crdt.PNCounter,
        crdt.LWWRegister,
        crdt.ORSet,
        crdt.ORMap,
        crdt.LWWMap,
    )


_default_registry: MessageRegistry | None = None


def default_registry() -> MessageRegistry:
    """The process-wide registry that :func:`message` fills (with the built-in LLM and
    agent types in it)."""
    global _default_registry
    if _default_registry is None:
        _default_registry = MessageRegistry()
    return _default_registry


@overload
def message(cls: type[T], /) -> type[T]: ...


@overload
def message(*, type_id: str | None = None) -> Callable[[type[T]], type[T]]: ...


def message(
    cls: type[T] | None = None, /, *, type_id: str | None = None
) -> type[T] | Callable[[type[T]], type[T]]:
    """Register an attrs class as a message type that can cross nodes::

        @message
        @attrs.frozen
        class Order:
            item: str
            quantity: int

        @message(type_id="shop.Refund")   # an id that survives renaming the class
        @attrs.frozen
        class Refund: ...

    Values are unstructured and structured by cattrs from the class's type hints, so
    fields of registered types, refs, lists, dicts and optionals all travel; the
    receiving node must register the class under the same id.

    Raises:
        TypeError: the class is not an attrs class (put ``@message`` above
            ``@attrs.define``).
        ValueError: the id is taken by another class.
    """

    def register(target: type[T]) -> type[T]:
        default_registry().register(target, type_id)
        return target

    if cls is not None:
        return register(cls)
    return register


def _origin(t: Any) -> Any:
    return typing.get_origin(t) or t


def _is_passthrough(t: Any) -> bool:
    origin = _origin(t)
    return isinstance(origin, type) and issubclass(origin, _PASSTHROUGH)


def _check_instance(value: Any, t: Any) -> Any:
    origin = _origin(t)
    if not isinstance(value, origin):
        raise TypeError(f"expected a {origin.__name__}, not {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    from cattrs.strategies import configure_tagged_union

    from ..approval import Approve, Deny

    converter = make_converter()
    converter.register_unstructure_hook_func(_is_passthrough, lambda value: value)
    converter.register_structure_hook_func(_is_passthrough, _check_instance)
    # a Resume's decisions: both kinds have only optional fields, so they carry a tag
    configure_tagged_union(Approve | Deny, converter)
    return converter


class Codec:
    """Turns messages into ``(type id, payload)`` and back, with ``registry`` (default:
    the process-wide one that :func:`message` fills).

    Encoding raises :class:`~tinyagents.errors.NotSerializable` for a value that cannot
    cross; decoding raises :class:`~tinyagents.errors.CodecError` (or
    :class:`~tinyagents.errors.UnknownMessageType`) for anything that does not decode,
    never another exception.
    """

    def __init__(self, registry: MessageRegistry | None = None) -> None:
        if registry is not None and not isinstance(registry, MessageRegistry):
            raise TypeError(f"registry must be a MessageRegistry, not {registry!r:.80}")
        self.registry = default_registry() if registry is None else registry
        self._converter = _make_converter()

    # -- envelopes -------------------------------------------------------------------

    def packer(self, hooks: WireHooks) -> Callable[[object], bytes]:
        """A function packing an envelope (whose payloads are already bytes); refs in
        it (a sender) become ext 1."""

        def default(value: object) -> msgpack.ExtType:
            if isinstance(value, ActorRef):
                return msgpack.ExtType(EXT_REF, msgpack.packb(hooks.ref_to_wire(value)))
            raise NotSerializable(f"an envelope cannot hold a {type(value).__qualname__}")

        pack: Callable[[object], bytes] = msgpack.Packer(default=default).pack
        return pack

    def unpacker(self, hooks: WireHooks) -> Callable[[bytes], object]:
        """A function unpacking an envelope; raises only ``MalformedFrame``."""

        def ext_hook(code: int, data: bytes) -> object:
            if code != EXT_REF:
                raise MalformedFrame(f"an envelope cannot hold extension type {code}")
            return hooks.ref_from_wire(msgpack.unpackb(data, raw=False))

        def unpack(frame: bytes) -> object:
            try:
                return msgpack.unpackb(frame, raw=False, ext_hook=ext_hook)
            except MalformedFrame:
                raise
            except Exception as error:
                raise MalformedFrame(f"an undecodable envelope: {error!r:.200}") from None

        return unpack

    # -- payloads --------------------------------------------------------------------

    def to_wire(self, value: object, hooks: WireHooks) -> tuple[str, bytes]:
        """``(type id, payload)`` of ``value``.

        Raises:
            NotSerializable: ``value`` (or something inside it) cannot cross nodes.
        """
        cls = type(value)
        if cls in _PLAIN:
            return "", msgpack.packb(value)
        default = self._default(hooks)
        try:
            type_id = self.registry.type_id(cls)
            if type_id is not None:
                return type_id, msgpack.packb(self._converter.unstructure(value), default=default)
            return "", msgpack.packb(value, default=default)
        except NotSerializable:
            raise
        except (TypeError, ValueError, OverflowError) as error:
            raise NotSerializable(
                f"a {cls.__qualname__} cannot be sent to another node: {error}"
            ) from None

    def _default(self, hooks: WireHooks) -> Callable[[object], msgpack.ExtType]:
        unstructure = self._converter.unstructure
        registry = self.registry

        def default(value: object) -> msgpack.ExtType:
            if isinstance(value, ActorRef):
                return msgpack.ExtType(EXT_REF, msgpack.packb(hooks.ref_to_wire(value)))
            if isinstance(value, trio.abc.SendChannel):
                return msgpack.ExtType(EXT_CHANNEL, msgpack.packb(hooks.channel_to_wire(value)))
            if isinstance(value, BaseException):
                if isinstance(value, RemoteError):
                    name, text = value.type_name, value.text
                else:
                    name, text = type(value).__qualname__, str(value)
                return msgpack.ExtType(EXT_ERROR, msgpack.packb([name, text]))
            type_id = registry.type_id(type(value))
            if type_id is not None:
                inner = msgpack.packb([type_id, unstructure(value)], default=default)
                return msgpack.ExtType(EXT_VALUE, inner)
            if attrs.has(type(value)):
                raise NotSerializable(
                    f"{type(value).__qualname__} is not a message type: register it with "
                    "@tinyagents.transport.message"
                )
            raise NotSerializable(
                f"a {type(value).__qualname__} cannot be sent to another node (send built-in "
                "kinds, refs, or attrs classes registered with @message)"
            )

        return default

    def from_wire(self, type_id: object, payload: object, hooks: WireHooks) -> Any:
        """The value that ``to_wire`` gave ``(type_id, payload)`` for.

        Raises:
            UnknownMessageType: ``type_id`` is not registered here.
            CodecError: the payload does not decode, or does not structure as its type.
        """
        if not isinstance(type_id, str) or not isinstance(payload, bytes):
            raise CodecError("a message must be a type id (str) and a payload (bytes)")
        cls: type[Any] | None = None
        if type_id:
            cls = self.registry.get(type_id)
            if cls is None:
                raise UnknownMessageType(type_id)
        try:
            data = msgpack.unpackb(
                payload, raw=False, strict_map_key=False, ext_hook=self._ext_hook(hooks)
            )
            if cls is None:
                return data
            return self._converter.structure(data, cls)
        except CodecError:
            raise
        except Exception as error:
            what = f"a {type_id}" if type_id else "a message"
            detail = _describe(error)
            raise CodecError(f"{what} from node {hooks.peer!r} does not decode: {detail}") from None

    def _ext_hook(self, hooks: WireHooks) -> Callable[[int, bytes], object]:
        structure = self._converter.structure
        registry = self.registry

        def ext_hook(code: int, data: bytes) -> object:
            if code == EXT_REF:
                return hooks.ref_from_wire(msgpack.unpackb(data, raw=False))
            if code == EXT_CHANNEL:
                stream_id = msgpack.unpackb(data)
                if type(stream_id) is not int:
                    raise CodecError("a stream id must be an int")
                return hooks.channel_from_wire(stream_id)
            if code == EXT_ERROR:
                name, text = msgpack.unpackb(data, raw=False)
                return RemoteError(str(name), str(text), node=hooks.peer)
            if code == EXT_VALUE:
                type_id, inner = msgpack.unpackb(
                    data, raw=False, strict_map_key=False, ext_hook=ext_hook
                )
                cls = registry.get(type_id) if isinstance(type_id, str) else None
                if cls is None:
                    raise UnknownMessageType(str(type_id))
                return structure(inner, cls)
            raise CodecError(f"unknown extension type {code}")

        return ext_hook


def _describe(error: BaseException) -> str:
    """A one-line account of a structuring failure (cattrs groups its causes)."""
    if isinstance(error, BaseExceptionGroup):
        notes = getattr(error, "__notes__", None) or []
        parts = [_describe(inner) for inner in error.exceptions]
        head = f"{error.message}" if not notes else f"{error.message} ({'; '.join(notes)})"
        return f"{head}: {'; '.join(parts)}"
    notes = getattr(error, "__notes__", None)
    text = f"{type(error).__name__}: {error}"
    return f"{text} ({'; '.join(notes)})" if notes else text
