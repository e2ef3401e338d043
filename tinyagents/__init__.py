"""tinyagents: a trio-native actor system for orchestrating LLM agents.

The actor core is re-exported here; errors live in :mod:`tinyagents.errors`, lifecycle
events in :mod:`tinyagents.events`, routers in :mod:`tinyagents.router`.
"""

from . import errors as errors
from . import events as events
from ._version import __version__ as __version__
from .actor import Actor as Actor
from .actor import ActorRef as ActorRef
from .actor import ActorSpec as ActorSpec
from .actor import ActorSystem as ActorSystem
from .actor import Context as Context
from .actor import Reply as Reply
from .actor import StopReason as StopReason
from .actor import Terminated as Terminated
from .events import DeadLetter as DeadLetter
from .events import DeadLetterReason as DeadLetterReason
from .mailbox import Bounded as Bounded
from .mailbox import MailboxStatistics as MailboxStatistics
from .mailbox import Overflow as Overflow
from .mailbox import Unbounded as Unbounded
from .supervisor import AllForOne as AllForOne
from .supervisor import Backoff as Backoff
from .supervisor import Escalate as Escalate
from .supervisor import OneForOne as OneForOne
from .supervisor import Stop as Stop

__all__ = [
    "Actor",
    "ActorRef",
    "ActorSpec",
    "ActorSystem",
    "AllForOne",
    "Backoff",
    "Bounded",
    "Context",
    "DeadLetter",
    "DeadLetterReason",
    "Escalate",
    "MailboxStatistics",
    "OneForOne",
    "Overflow",
    "Reply",
    "Stop",
    "StopReason",
    "Terminated",
    "Unbounded",
    "__version__",
    "errors",
    "events",
]
