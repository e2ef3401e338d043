"""Cluster membership: members, their events, and the :class:`Cluster` protocol.

* :class:`Cluster` — the protocol: ``local_member``, ``members()``, ``join(*seeds)``,
  ``leave()``; member events are published on ``system.events``.
* :class:`LocalCluster` — a one-node cluster in-process, for tests and single-node apps.
* :class:`GossipCluster` — SWIM with the Lifeguard refinements over memberlist's wire
  protocol (:class:`GossipConfig` holds its timings; :class:`GossipStats` its counters).
* :class:`Member`, :class:`MemberState`, :class:`ProtocolVersions` — member values.
* :class:`MemberEvent` and its kinds :class:`MemberJoined`, :class:`MemberUpdated`,
  :class:`MemberSuspect`, :class:`MemberFailed`, :class:`MemberLeft`.
* :class:`Keyring`, :func:`encode_tags`, :func:`decode_tags` — memberlist encryption keys
  and Serf's tag encoding of node meta.

The gossip cluster speaks HashiCorp memberlist's wire protocol; its codec lives in
``tinyagents.cluster._wire``.
"""

from ._errors import ClusterError as ClusterError
from ._errors import JoinFailed as JoinFailed
from ._errors import MalformedMessage as MalformedMessage
from ._errors import MetaTooLarge as MetaTooLarge
from ._gossip import GossipCluster as GossipCluster
from ._gossip import GossipConfig as GossipConfig
from ._gossip import GossipStats as GossipStats
from ._local import LocalCluster as LocalCluster
from ._member import Cluster as Cluster
from ._member import Member as Member
from ._member import MemberEvent as MemberEvent
from ._member import MemberFailed as MemberFailed
from ._member import MemberJoined as MemberJoined
from ._member import MemberLeft as MemberLeft
from ._member import MemberState as MemberState
from ._member import MemberSuspect as MemberSuspect
from ._member import MemberUpdated as MemberUpdated
from ._member import ProtocolVersions as ProtocolVersions
from ._wire import META_MAX_SIZE as META_MAX_SIZE
from ._wire import Keyring as Keyring
from ._wire import decode_tags as decode_tags
from ._wire import encode_tags as encode_tags

__all__ = [
    "META_MAX_SIZE",
    "Cluster",
    "ClusterError",
    "GossipCluster",
    "GossipConfig",
    "GossipStats",
    "JoinFailed",
    "Keyring",
    "LocalCluster",
    "MalformedMessage",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MemberSuspect",
    "MemberUpdated",
    "MetaTooLarge",
    "ProtocolVersions",
    "decode_tags",
    "encode_tags",
]
