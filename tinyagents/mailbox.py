"""Mailboxes: the queue in front of every actor.

A mailbox is chosen when an actor is spawned::

    await system.spawn(Worker, mailbox=Bounded(100, overflow=Overflow.DROP_OLDEST))

``Unbounded()`` (the default) never refuses a message. ``Bounded(capacity, overflow)``
holds at most ``capacity`` user messages and applies ``overflow`` when full:

* ``BLOCK`` — ``tell``/``ask`` wait for room (``tell_nowait`` raises ``MailboxFull``);
* ``DROP_NEWEST`` — the incoming message is dropped;
* ``DROP_OLDEST`` — the oldest queued message is evicted to make room;
* ``FAIL`` — the sender gets :class:`~tinyagents.errors.MailboxFull`.

A dropped message is a dead letter, and an asked message that is dropped fails its
ask at once with :class:`~tinyagents.errors.MessageDropped`. System messages (stop,
watch notifications, restarts) have their own queue: they bypass capacity, are
never dropped, and are handled before user messages.

The mailbox is single-consumer: only its actor takes from it, one message at a time,
in FIFO order. Messages from one sender are kept in the order that sender sent them.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any

import attrs

from . import _validate

if TYPE_CHECKING:
    from ._queue import Mailbox

__all__ = ["Bounded", "MailboxSpec", "MailboxStatistics", "Overflow", "Unbounded"]


class Overflow(enum.Enum):
    """What a full :class:`Bounded` mailbox does with one more message."""

    BLOCK = "block"
    """Wait for room (``tell_nowait`` raises ``MailboxFull`` instead of waiting)."""
    DROP_NEWEST = "drop_newest"
    """Drop the incoming message (a dead letter)."""
    DROP_OLDEST = "drop_oldest"
    """Evict the oldest queued message (a dead letter) and enqueue the new one."""
    FAIL = "fail"
    """Raise :class:`~tinyagents.errors.MailboxFull` to the sender."""


@attrs.frozen
class Unbounded:
    """A mailbox without a capacity limit (the default). It never drops or blocks."""

    def create(self) -> Mailbox[Any]:
        """Make an empty mailbox of this kind."""
        from ._queue import Mailbox

        return Mailbox(math.inf, Overflow.FAIL)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _validate.check_int(value, "mailbox capacity (a positive int)", minimum=1)


def _overflow(instance: object, attribute: attrs.Attribute[Overflow], value: Overflow) -> None:
    _validate.check_enum(value, Overflow, "overflow")


@attrs.frozen
class Bounded:
    """A mailbox holding at most ``capacity`` user messages; ``overflow`` says what happens
    to one more."""

    capacity: int = attrs.field(validator=_positive)
    overflow: Overflow = attrs.field(default=Overflow.BLOCK, validator=_overflow)

    def create(self) -> Mailbox[Any]:
        """Make an empty mailbox of this kind."""
        from ._queue import Mailbox

        return Mailbox(self.capacity, self.overflow)


MailboxSpec = Unbounded | Bounded
"""Either mailbox kind, as accepted by ``spawn(..., mailbox=...)``."""


@attrs.frozen
class MailboxStatistics:
    """A snapshot of one mailbox's counters.

    ``length`` counts queued user messages, not the one being handled; ``busy`` tells
    whether one is being handled now. ``enqueued``, ``processed`` and ``dropped`` count
    since the actor was spawned (a restart keeps the mailbox and its counts).
    """

    length: int
    capacity: float
    enqueued: int
    processed: int
    dropped: int
    busy: bool
