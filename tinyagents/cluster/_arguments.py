"""Argument checks shared by the cluster services' constructors (internal)."""

from __future__ import annotations

from collections.abc import Mapping

from ..actor import ActorSystem
from ._errors import MetaTooLarge
from ._wire import META_MAX_SIZE, encode_tags

__all__ = ["check_system", "member_id", "member_meta"]


def check_system(system: object, service: str) -> ActorSystem:
    """``system`` if it is an :class:`~tinyagents.ActorSystem`, else ``TypeError``."""
    if not isinstance(system, ActorSystem):
        raise TypeError(f"{service} runs on an ActorSystem, not {system!r}")
    return system


def member_id(value: object, system: ActorSystem) -> str:
    """The local member's id: ``value``, or when it is ``None`` the system's node id
    (its transport's ``node`` while one runs, else its name)."""
    if value is None:
        return system.node_id
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"id must be a non-empty str (or None for the system's name), not {value!r}"
        )
    return value


def member_meta(meta: object, tags: object) -> bytes:
    """The member's meta from raw ``meta`` bytes or Serf's ``tags`` (not both)."""
    if meta is not None and tags is not None:
        raise TypeError("give meta or tags, not both")
    if tags is not None:
        if not isinstance(tags, Mapping):
            raise TypeError(f"tags must be a mapping of str to str, not {tags!r}")
        return encode_tags(tags)
    if meta is None:
        return b""
    if not isinstance(meta, bytes):
        raise TypeError(f"meta must be bytes (or give tags=...), not {meta!r}")
    if len(meta) > META_MAX_SIZE:
        raise MetaTooLarge(len(meta), META_MAX_SIZE)
    return meta
