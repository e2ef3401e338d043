"""A cluster of one node, in-process: for tests and single-node applications."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import attrs
import trio

from .._address import Address, format_address, parse_address
from .._validate import check_optional
from ..actor import ActorSystem
from ..errors import SystemNotRunning
from ._arguments import check_system, member_id, member_meta
from ._errors import ClusterError, JoinFailed
from ._member import (
    Member,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberUpdated,
    ProtocolVersions,
)

__all__ = ["LocalCluster"]


class _Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    LEFT = "left"


class LocalCluster:
    """A one-node cluster that implements :class:`~tinyagents.cluster.Cluster`
    in-process, with no network: the local member is the only member.

    It is a service of an :class:`~tinyagents.ActorSystem`, used as an async context
    manager inside the system's block::

        async with ActorSystem("app") as system:
            async with LocalCluster(system, tags={"role": "worker"}) as cluster:
                print(cluster.members())     # [Member(id='app', ...)]

    Entering publishes :class:`~tinyagents.cluster.MemberJoined` for the local member
    on ``system.events``; :meth:`leave`, or leaving the block, publishes
    :class:`~tinyagents.cluster.MemberLeft` once. :meth:`update` publishes
    :class:`~tinyagents.cluster.MemberUpdated`.

    :meth:`join` with seeds raises :class:`~tinyagents.cluster.JoinFailed`: one node
    in-process cannot reach others, and saying so is better than a silent 0 that would
    hide a configuration mistake. ``join()`` without seeds is the usual bootstrap
    no-op and returns 0.

    **Parameters:**

    * ``system`` — the running actor system whose ``events`` receive member events.
    * ``id`` — the local member's id; the system's name by default.
    * ``address`` — the ``(host, port)`` the member presents; nothing is bound.
    * ``meta`` or ``tags`` — the member's meta, raw or as Serf's tags (not both).
    * ``versions`` — the protocol versions it presents (Serf's by default).
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        id: str | None = None,
        address: Address = ("127.0.0.1", 0),
        meta: bytes | None = None,
        tags: Mapping[str, str] | None = None,
        versions: ProtocolVersions | None = None,
    ) -> None:
        self._system = check_system(system, "LocalCluster")
        self._phase = _Phase.NEW
        self._member = Member(
            member_id(id, system),
            parse_address(address, what="address"),
            member_meta(meta, tags),
            versions=check_optional(versions, ProtocolVersions, "versions") or ProtocolVersions(),
        )

    def __repr__(self) -> str:
        return f"<LocalCluster {self._member.id!r} {self._phase.value}>"

    @property
    def local_member(self) -> Member:
        """This node: ``ALIVE`` until it leaves, ``LEFT`` after."""
        return self._member

    def members(self) -> list[Member]:
        """``[local_member]`` while the cluster runs and has not been left, else ``[]``."""
        return [self._member] if self._phase is _Phase.RUNNING else []

    async def __aenter__(self) -> Self:
        if self._phase is not _Phase.NEW:
            raise ClusterError(f"{self!r} was already started: a cluster starts once")
        if not self._system.running:
            raise SystemNotRunning(
                f"cannot start a cluster on actor system {self._system.name!r}: it is not running"
            )
        self._phase = _Phase.RUNNING
        self._publish(MemberJoined(self._member))
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.leave()

    async def join(self, *seeds: Address) -> int:
        """Return 0 when there are no seeds; raise
        :class:`~tinyagents.cluster.JoinFailed` when there are (a local cluster
        cannot contact other nodes), or :class:`~tinyagents.errors.InvalidAddress` when
        a seed is neither ``"host:port"`` nor ``(host, port)``."""
        await trio.lowlevel.checkpoint()
        names = [format_address(parse_address(seed, what="seed")) for seed in seeds]
        self._check_running("join")
        if seeds:
            raise JoinFailed(
                f"a LocalCluster is a single node in-process: it cannot join {', '.join(names)} "
                "(use a gossip cluster to join other nodes)",
                names,
            )
        return 0

    async def leave(self) -> None:
        """Mark the local member ``LEFT`` and publish
        :class:`~tinyagents.cluster.MemberLeft`; does nothing if it has already left
        or never started."""
        await trio.lowlevel.checkpoint()
        if self._phase is not _Phase.RUNNING:
            return
        self._phase = _Phase.LEFT
        self._member = attrs.evolve(self._member, state=MemberState.LEFT)
        self._publish(MemberLeft(self._member))

    async def update(
        self, *, meta: bytes | None = None, tags: Mapping[str, str] | None = None
    ) -> Member:
        """Give the local member new ``meta`` (or ``tags``), raising its incarnation as
        memberlist does, and publish :class:`~tinyagents.cluster.MemberUpdated`.
        Returns the updated member."""
        await trio.lowlevel.checkpoint()
        self._check_running("update")
        if meta is None and tags is None:
            raise TypeError("update() needs meta or tags")
        new_meta = member_meta(meta, tags)
        self._member = attrs.evolve(
            self._member, meta=new_meta, incarnation=(self._member.incarnation + 1) % (1 << 32)
        )
        self._publish(MemberUpdated(self._member))
        return self._member

    def _check_running(self, what: str) -> None:
        if self._phase is _Phase.NEW:
            raise ClusterError(f"cannot {what}: {self!r} has not been started (use async with)")
        if self._phase is _Phase.LEFT:
            raise ClusterError(f"cannot {what}: {self!r} has left the cluster, for good")

    def _publish(self, event: MemberEvent) -> None:
        self._system.events.publish(event)
