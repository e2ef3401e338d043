"""Members, their states and events, and the :class:`Cluster` protocol."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, Self, runtime_checkable

import attrs

from ._errors import MalformedMessage, MetaTooLarge
from ._wire import META_MAX_SIZE, decode_tags, encode_tags

__all__ = [
    "Cluster",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MemberSuspect",
    "MemberUpdated",
    "ProtocolVersions",
]


class MemberState(enum.Enum):
    """Where a member stands, as memberlist's ``NodeStateType`` (the values are its wire
    codes)."""

    ALIVE = 0
    """It answers probes (or its refutation of a suspicion arrived)."""
    SUSPECT = 1
    """A probe failed; unless it refutes the suspicion in time, it will be declared dead."""
    DEAD = 2
    """Declared dead after an unrefuted suspicion: Serf lists it as ``failed``."""
    LEFT = 3
    """It left gracefully (it announced its own death)."""
    FAILED = 2  # noqa: PIE796 - an alias: MemberState.FAILED is MemberState.DEAD
    """Another name for :attr:`DEAD`, Serf's."""

    @property
    def label(self) -> str:
        """The word Serf shows for it: ``alive``, ``suspect``, ``failed`` or ``left``."""
        return _LABELS[self]


_LABELS = {
    MemberState.ALIVE: "alive",
    MemberState.SUSPECT: "suspect",
    MemberState.DEAD: "failed",
    MemberState.LEFT: "left",
}


def _version_byte(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise ValueError(f"{attribute.name} must be an integer in [0, 255], not {value!r}")


@attrs.frozen
class ProtocolVersions:
    """The protocol versions a member speaks and understands, as memberlist's ``Vsn``:
    memberlist's own (``pmin``, ``pmax``, ``pcur``) and its delegate's (``dmin``,
    ``dmax``, ``dcur``; Serf's protocol).

    The defaults are what a Serf 0.9/0.10 agent announces, ``[1, 5, 2, 2, 5, 5]``:
    memberlist protocol 1 to 5, speaking 2; Serf protocol 2 to 5, speaking 5.
    """

    pmin: int = attrs.field(default=1, validator=_version_byte)
    pmax: int = attrs.field(default=5, validator=_version_byte)
    pcur: int = attrs.field(default=2, validator=_version_byte)
    dmin: int = attrs.field(default=2, validator=_version_byte)
    dmax: int = attrs.field(default=5, validator=_version_byte)
    dcur: int = attrs.field(default=5, validator=_version_byte)

    def to_vsn(self) -> bytes:
        """The six ``Vsn`` bytes, in memberlist's order."""
        return bytes((self.pmin, self.pmax, self.pcur, self.dmin, self.dmax, self.dcur))

    @classmethod
    def from_vsn(cls, vsn: bytes) -> Self:
        """Read six ``Vsn`` bytes; raises :class:`MalformedMessage` for another length."""
        if len(vsn) != 6:
            raise MalformedMessage(f"a Vsn is 6 bytes of protocol versions, not {len(vsn)}")
        return cls(*vsn)


def _to_address(value: Any) -> tuple[str, int]:
    host, port = value
    return (host, port)


def _check_address(_: Any, __: attrs.Attribute[Any], value: tuple[str, int]) -> None:
    host, port = value
    if not isinstance(host, str) or not host:
        raise ValueError(f"a member's host must be a non-empty string, not {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"a member's port must be in [0, 65535], not {port!r}")


def _check_id(_: Any, __: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a member's id must be a non-empty string, not {value!r}")


def _check_meta(_: Any, __: attrs.Attribute[Any], value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"a member's meta must be bytes, not {type(value).__name__}")
    if len(value) > META_MAX_SIZE:
        raise MetaTooLarge(len(value), META_MAX_SIZE)


def _check_incarnation(_: Any, __: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise ValueError(f"an incarnation is an unsigned 32-bit integer, not {value!r}")


def _read_tags(meta: bytes) -> Mapping[str, str]:
    if not isinstance(meta, bytes):  # the validator, which runs after defaults, says so
        return MappingProxyType({})
    try:
        return MappingProxyType(decode_tags(meta))
    except MalformedMessage:
        return MappingProxyType({})


@attrs.frozen
class Member:
    """One node of the cluster, as this node knows it: a value.

    * ``id`` — its unique name (memberlist's ``Name``, Serf's node name).
    * ``address`` — ``(host, port)`` where it gossips.
    * ``meta`` — its opaque metadata, at most 512 bytes
      (:class:`~tinyagents.cluster.MetaTooLarge` otherwise).
    * ``state`` and ``incarnation`` — its :class:`MemberState`, and the counter it
      raises to refute suspicion or announce a change.
    * ``versions`` — the protocol versions it announced.
    * ``tags`` — ``meta`` read as Serf's tags: a read-only mapping. Meta that does not
      start with Serf's magic byte 255 is a bare role (``{"role": meta}``, so empty meta
      reads as ``{"role": ""}``, as Serf reads it); tagged meta that does not decode
      gives an empty mapping. Not part of equality (``meta`` is).
    """

    id: str = attrs.field(validator=_check_id)
    address: tuple[str, int] = attrs.field(converter=_to_address, validator=_check_address)
    meta: bytes = attrs.field(default=b"", validator=_check_meta)
    state: MemberState = attrs.field(
        default=MemberState.ALIVE, validator=attrs.validators.instance_of(MemberState)
    )
    incarnation: int = attrs.field(default=0, validator=_check_incarnation)
    versions: ProtocolVersions = attrs.field(
        factory=ProtocolVersions, validator=attrs.validators.instance_of(ProtocolVersions)
    )
    tags: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)

    @tags.default
    def _tags_from_meta(self) -> Mapping[str, str]:
        return _read_tags(self.meta)

    @classmethod
    def with_tags(
        cls,
        id: str,
        address: tuple[str, int],
        tags: Mapping[str, str],
        **fields: Any,
    ) -> Self:
        """A member whose meta is ``tags`` in Serf's encoding (see
        :func:`~tinyagents.cluster.encode_tags`)."""
        return cls(id, address, encode_tags(tags), **fields)

    @property
    def host(self) -> str:
        """The host of :attr:`address`."""
        return self.address[0]

    @property
    def port(self) -> int:
        """The port of :attr:`address`."""
        return self.address[1]


# -- events -----------------------------------------------------------------------------


@attrs.frozen
class MemberEvent:
    """A change in the cluster's membership, published on ``system.events``.

    Subscribe to this class for all of them::

        async with system.events.subscribe(MemberEvent) as events:
            async for event in events:
                print(type(event).__name__, event.member.id, event.member.state.label)
    """

    member: Member
    """The member as it is after the change."""


@attrs.frozen
class MemberJoined(MemberEvent):
    """A member joined (the local member too, when its cluster starts)."""


@attrs.frozen
class MemberUpdated(MemberEvent):
    """A member's meta (its tags) or address changed."""


@attrs.frozen
class MemberSuspect(MemberEvent):
    """A member is suspected to have failed; it may still refute the suspicion."""


@attrs.frozen
class MemberFailed(MemberEvent):
    """A member was declared dead without leaving (Serf's ``failed``)."""


@attrs.frozen
class MemberLeft(MemberEvent):
    """A member left gracefully (the local member too, on ``leave``)."""


# -- the protocol -----------------------------------------------------------------------


@runtime_checkable
class Cluster(Protocol):
    """A view of the cluster's membership, from one node.

    Implementations publish :class:`MemberJoined`, :class:`MemberUpdated`,
    :class:`MemberSuspect`, :class:`MemberFailed` and :class:`MemberLeft` (each a
    :class:`MemberEvent`) on their actor system's ``system.events`` as they learn of
    changes, the local member's own joining and leaving included.
    """

    @property
    def local_member(self) -> Member:
        """This node, as it presents itself to the others."""
        ...

    def members(self) -> list[Member]:
        """The members now in the cluster — alive or suspect, this node included while
        it is in — sorted by id. Members that failed or left are not in it."""
        ...

    async def join(self, *seeds: str | tuple[str, int]) -> int:
        """Join the cluster through ``seeds`` (``"host:port"`` or ``(host, port)``).

        Returns how many seeds were contacted; with no seeds, returns 0 and changes
        nothing. Raises :class:`~tinyagents.cluster.JoinFailed` when seeds were given
        and none could be contacted.
        """
        ...

    async def leave(self) -> None:
        """Leave the cluster gracefully, telling the others; idempotent. A node that
        left cannot join again."""
        ...
