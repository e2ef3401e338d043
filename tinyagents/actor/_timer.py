"""Ask deadlines: one timer task per system instead of a cancel scope per ask."""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING, Any

import trio

from ..errors import AskTimeout

if TYPE_CHECKING:
    from ._base import Reply

__all__ = ["AskTimer"]

_COMPACT_AT = 256


class AskTimer:
    """Ends waiting asks with ``AskTimeout`` at their deadlines.

    An entry is ``[deadline, seq, reply, path, timeout, timer]``; a settled reply clears its
    entry's ``reply`` (lazy deletion) and the heap is compacted once most entries are
    dead, so memory stays proportional to the asks in flight. Opening and closing a
    cancel scope per ask costs about a third of an ask's time; a heap push does not.
    """

    __slots__ = ("_dead", "_heap", "_scope", "_seq")

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []
        self._seq = 0
        self._dead = 0
        self._scope: trio.CancelScope | None = None

    def watch(self, reply: Reply, deadline: float, path: str, timeout: float) -> None:
        """End ``reply``'s wait with ``AskTimeout`` at ``deadline`` unless settled first."""
        self._seq += 1
        entry = [deadline, self._seq, reply, path, timeout, self]
        heapq.heappush(self._heap, entry)
        reply._entry = entry
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def forget(self, entry: list[Any]) -> None:
        """The entry's reply was settled: it needs no timeout any more."""
        entry[2] = None
        self._dead += 1
        if self._dead >= _COMPACT_AT and self._dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire asks forever (until cancelled with the system)."""
        started = False
        while True:
            heap = self._heap
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, reply, path, timeout, _ = heapq.heappop(heap)
                if reply is None:
                    self._dead -= 1
                else:
                    reply._expire(AskTimeout(path, timeout, reply.message))
            try:
                with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                    self._scope = scope
                    if not started:
                        started = True
                        task_status.started()
                    await trio.sleep_forever()
            finally:
                self._scope = None
