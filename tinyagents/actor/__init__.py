"""The actor runtime: systems, refs, contexts, lifecycle events, dead letters, watch."""

from ._base import Actor as Actor
from ._base import ActorSpec as ActorSpec
from ._base import Reply as Reply
from ._base import Terminated as Terminated
from ._cell import Context as Context
from ._events import EventStream as EventStream
from ._events import StopReason as StopReason
from ._events import Subscription as Subscription
from ._ref import ActorRef as ActorRef
from ._system import ActorSystem as ActorSystem

__all__ = [
    "Actor",
    "ActorRef",
    "ActorSpec",
    "ActorSystem",
    "Context",
    "EventStream",
    "Reply",
    "StopReason",
    "Subscription",
    "Terminated",
]
