"""The local name registry: ``system.registry`` maps unique names to live actors.

::

    system.registry.register("billing", ref)
    ref = system.registry.lookup("billing")      # None once the actor has stopped

A name is taken by one live actor at a time; an actor may hold several names. When an
actor stops, all its names are forgotten.

Across a cluster, :class:`RingRegistry` places keys on the members with the same
:class:`~tinyagents.router.HashRing` as the ``ConsistentHash`` router, and gives the ref
of the actor that owns a key there (remote refs through the node's transport)::

    shards = RingRegistry(system, cluster, "/user/shard")
    await shards.ref_for("customer-42").tell(order)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .errors import ActorStopped, NameRegistered, NoMembers

if TYPE_CHECKING:
    from .actor import ActorRef, ActorSystem
    from .cluster import Cluster, Member
    from .router import HashRing

__all__ = ["Registry", "RingRegistry"]


class Registry:
    """Unique names for live actors of one system. Obtained as ``system.registry``.

    All methods are synchronous and never block; the registry is only touched from the
    system's trio thread.
    """

    __slots__ = ("_by_name", "_by_ref")

    def __init__(self) -> None:
        self._by_name: dict[str, ActorRef] = {}
        self._by_ref: dict[ActorRef, set[str]] = {}

    def __repr__(self) -> str:
        return f"<Registry of {len(self._by_name)} names>"

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_name))

    def register(self, name: str, ref: ActorRef) -> None:
        """Give ``ref`` the name ``name``. Registering the same pair again does nothing.

        Raises:
            NameRegistered: another actor holds the name.
            ActorStopped: ``ref`` has already stopped.
            ValueError: ``name`` is not a non-empty string.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a registered name must be a non-empty str, not {name!r}")
        holder = self._by_name.get(name)
        if holder is not None:
            if holder == ref:
                return
            raise NameRegistered(name, holder.path)
        if not ref.is_alive:
            raise ActorStopped(
                ref.path, detail=f"cannot register {name!r}: actor {ref.path} has stopped"
            )
        self._by_name[name] = ref
        self._by_ref.setdefault(ref, set()).add(name)

    def unregister(self, name: str) -> ActorRef | None:
        """Forget ``name``; return the ref it named, or ``None`` if it was not registered."""
        ref = self._by_name.pop(name, None)
        if ref is not None:
            names = self._by_ref[ref]
            names.discard(name)
            if not names:
                del self._by_ref[ref]
        return ref

    def lookup(self, name: str) -> ActorRef | None:
        """The live actor registered as ``name``, or ``None``."""
        return self._by_name.get(name)

    def names_of(self, ref: ActorRef) -> list[str]:
        """The names ``ref`` holds, sorted."""
        return sorted(self._by_ref.get(ref, ()))

    def items(self) -> list[tuple[str, ActorRef]]:
        """Every (name, ref) pair, sorted by name."""
        return sorted(self._by_name.items(), key=lambda item: item[0])

    def _forget(self, ref: ActorRef) -> None:
        """The actor stopped: drop all its names."""
        names = self._by_ref.pop(ref, None)
        if names:
            for name in names:
                del self._by_name[name]


class RingRegistry:
    """Keys placed on the members of a cluster by consistent hashing, each key owned by
    the actor at ``path`` on its member's node.

    The ring holds the members of ``cluster`` (alive or suspect, as
    ``cluster.members()`` lists them) that ``select`` accepts (default: all), each at
    ``virtual_nodes`` points of a :class:`~tinyagents.router.HashRing`; it follows the
    membership on every lookup, so a member that joins takes over about ``1/N`` of the
    keys and one that fails or leaves hands its keys to the others, and nothing else
    moves. Every node with the same members computes the same owners.

    Lookups are synchronous and never block. For another node, :meth:`ref_for` gives a
    remote ref through the system's transport (a
    :class:`~tinyagents.transport.Transport` must run, and the node's transport address
    comes from its gossip tags); a ref to a node where nothing lives at ``path`` fails
    as a stopped actor does.
    """

    def __init__(
        self,
        system: ActorSystem,
        cluster: Cluster,
        path: str,
        *,
        virtual_nodes: int = 100,
        select: Callable[[Member], bool] | None = None,
    ) -> None:
        from .actor import ActorSystem
        from .cluster import Cluster
        from .router import HashRing

        if not isinstance(system, ActorSystem):
            raise TypeError(f"RingRegistry needs an ActorSystem, not {system!r:.80}")
        if not isinstance(cluster, Cluster):
            raise TypeError(f"RingRegistry needs a cluster (GossipCluster...), not {cluster!r:.80}")
        if not isinstance(path, str) or not path.startswith("/user/") or path.endswith("/"):
            raise ValueError(f"path must be an actor path such as '/user/shard', not {path!r}")
        if select is not None and not callable(select):
            raise TypeError(f"select must be a callable taking a Member, not {select!r:.80}")
        self._system = system
        self._cluster = cluster
        self.path = path
        self._select = select
        self._ring = HashRing(virtual_nodes=virtual_nodes)
        self._members: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<RingRegistry {self.path} on {len(self._current())} members>"

    def _current(self) -> HashRing:
        select = self._select
        members = tuple(
            member.id for member in self._cluster.members() if select is None or select(member)
        )
        if members != self._members:
            ring = self._ring
            for gone in set(self._members) - set(members):
                ring.remove(gone)
            for new in members:
                ring.add(new)
            self._members = members
        return self._ring

    @property
    def members(self) -> list[str]:
        """The ids of the members on the ring now, sorted."""
        return self._current().nodes

    def node_for(self, key: str | bytes) -> str:
        """The id of the member that owns ``key``.

        Raises:
            NoMembers: no member qualifies.
        """
        node = self._current().node_for(key)
        if node is None:
            raise NoMembers(f"no cluster member to place {key!r:.60} on")
        return node

    def ref_for(self, key: str | bytes) -> ActorRef:
        """The ref of the actor at :attr:`path` on the member that owns ``key``: a
        local ref on this node, else a remote one.

        Raises:
            NoMembers: no member qualifies.
            ActorStopped: the key is this node's and nothing lives at :attr:`path`.
            TransportError: the key is another node's and this system has no transport.
        """
        return self._system.ref_for(f"tinyagents://{self.node_for(key)}{self.path}")
