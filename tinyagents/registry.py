"""The local name registry: ``system.registry`` maps unique names to live actors.

::

    system.registry.register("billing", ref)
    ref = system.registry.lookup("billing")      # None once the actor has stopped

A name is taken by one live actor at a time; an actor may hold several names. When an
actor stops, all its names are forgotten. (A cluster-wide ``RingRegistry``, placing keys
on members with the same :class:`~tinyagents.router.HashRing`, comes with clustering.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import ActorStopped, NameRegistered

if TYPE_CHECKING:
    from .actor import ActorRef

__all__ = ["Registry"]


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
