"""Events published on ``system.events``.

Subscribe with ``async with system.events.subscribe(*kinds) as events``. Each event is a
frozen attrs class; the lifecycle ones carry the actor's ``ref``. These names share
words with exceptions in :mod:`tinyagents.errors` (``ActorStopped``, ``ActorFailed``):
the events say that something happened, the errors are what an ask raises.
"""

from .actor._events import ActorFailed as ActorFailed
from .actor._events import ActorRestarted as ActorRestarted
from .actor._events import ActorStarted as ActorStarted
from .actor._events import ActorStopped as ActorStopped
from .actor._events import DeadLetter as DeadLetter
from .actor._events import DeadLetterReason as DeadLetterReason
from .actor._events import Event as Event
from .actor._events import StopReason as StopReason

__all__ = [
    "ActorFailed",
    "ActorRestarted",
    "ActorStarted",
    "ActorStopped",
    "DeadLetter",
    "DeadLetterReason",
    "Event",
    "StopReason",
]
