"""Replicated data types (CRDTs): values that replicas change independently and merge
into the same state, whatever the order in which they see each other's changes.

::

    counter, delta = GCounter().increment("a")     # on node a
    elsewhere = GCounter().merge(delta)            # on any node, in any order, any times

* :class:`GCounter` and :class:`PNCounter` — a counter that only grows, and one that
  goes up and down.
* :class:`LWWRegister` — one value, the last write winning (on equal timestamps, the
  lower node id).
* :class:`ORSet` — a set whose adds win over concurrent removes, with no tombstones.
* :class:`ORMap` — keys to replicated values; :class:`LWWMap` — keys to last-write-wins
  values.
* :class:`ReplicatedData` — what they all are: ``merge`` (commutative, associative,
  idempotent) and an empty state (the class called with no arguments, or ``empty()``).
  :class:`CausalContext` is the record of seen dots inside an ORSet and an ORMap.

Every value is immutable. A mutator takes the id of the node making the change and
returns ``(new state, delta)``: the delta is a value of the same type, small, that
merges like a state (``state.merge(delta)`` applies it; ``delta1.merge(delta2)``
combines two). Every type crosses nodes through :mod:`tinyagents.transport` with no
registration. Merging values of two types raises ``TypeError``; a bad argument raises
``TypeError`` or ``ValueError`` naming what was expected.
"""

from ._base import CausalContext as CausalContext
from ._base import ReplicatedData as ReplicatedData
from ._counters import GCounter as GCounter
from ._counters import PNCounter as PNCounter
from ._maps import LWWMap as LWWMap
from ._maps import ORMap as ORMap
from ._orset import ORSet as ORSet
from ._register import LWWRegister as LWWRegister
from ._replicator import Key as Key
from ._replicator import ReadAll as ReadAll
from ._replicator import ReadConsistency as ReadConsistency
from ._replicator import ReadFrom as ReadFrom
from ._replicator import ReadLocal as ReadLocal
from ._replicator import ReadMajority as ReadMajority
from ._replicator import Replicator as Replicator
from ._replicator import ReplicatorConfig as ReplicatorConfig
from ._replicator import ReplicatorStats as ReplicatorStats
from ._replicator import Subscription as Subscription
from ._replicator import WriteAll as WriteAll
from ._replicator import WriteConsistency as WriteConsistency
from ._replicator import WriteLocal as WriteLocal
from ._replicator import WriteMajority as WriteMajority
from ._replicator import WriteTo as WriteTo
from ._replicator import digest as digest

__all__ = [
    "CausalContext",
    "GCounter",
    "Key",
    "LWWMap",
    "LWWRegister",
    "ORMap",
    "ORSet",
    "PNCounter",
    "ReadAll",
    "ReadConsistency",
    "ReadFrom",
    "ReadLocal",
    "ReadMajority",
    "ReplicatedData",
    "Replicator",
    "ReplicatorConfig",
    "ReplicatorStats",
    "Subscription",
    "WriteAll",
    "WriteConsistency",
    "WriteLocal",
    "WriteMajority",
    "WriteTo",
    "digest",
]
