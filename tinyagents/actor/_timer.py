"""Ask deadlines: one timer task per system instead of a cancel scope per ask."""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from ..errors import AskTimeout

if TYPE_CHECKING:
    from ._base import Reply
    from ._cell import ActorCell

__all__ = ["AskTimer"]

_COMPACT_AT = 256


class AskTimer:
    """Ends waiting asks with ``AskTimeout`` at their deadlines.

    Asks whose timeout is ``lane_timeout`` (the system's default, so the usual case) go
    to a FIFO lane of ``(reply, cell)`` pairs: their deadlines come in the order they
    are made, so the lane needs no sorting. Asks with any other timeout go to a heap of
    ``[deadline, seq, reply, cell, timeout]`` entries. A settled reply leaves its place
    dead (its ``_timer`` is cleared, or its heap entry's ``reply``); dead places at the
    front of either queue are dropped at once (asks are mostly answered in the order
    they were made), the others lazily, and a queue is compacted once most of it is
    dead, so memory stays proportional to the asks in flight. Opening and closing a
    cancel scope per ask would cost about a third of an ask's time; this does not.
    """

    __slots__ = ("_dead_heap", "_dead_lane", "_heap", "_lane", "_lane_timeout", "_scope", "_seq")

    def __init__(self, lane_timeout: float = math.inf) -> None:
        self._heap: list[list[Any]] = []
        self._lane: deque[tuple[Reply, ActorCell]] = deque()
        self._lane_timeout = lane_timeout
        self._seq = 0
        self._dead_heap = 0
        self._dead_lane = 0
        self._scope: trio.CancelScope | None = None

    def watch(self, reply: Reply, deadline: float, cell: ActorCell, timeout: float) -> None:
        """End ``reply``'s wait with ``AskTimeout`` at ``deadline`` (its ``deadline``)
        unless it is settled first."""
        reply._timer = self
        if timeout == self._lane_timeout:
            lane = self._lane
            lane.append((reply, cell))
            if len(lane) > 1:
                return  # not the earliest in the lane: no sooner than the timer's wake-up
        else:
            self._seq += 1
            entry = [deadline, self._seq, reply, cell, timeout]
            heapq.heappush(self._heap, entry)
            reply._entry = entry
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def forget(self, reply: Reply) -> None:
        """``reply`` was settled (its ``_timer`` cleared): it needs no timeout any more."""
        entry = reply._entry
        if entry is None:
            lane = self._lane
            if lane[0][0] is reply:
                lane.popleft()
                while lane and lane[0][0]._timer is None:
                    lane.popleft()
                    self._dead_lane -= 1
                return
            self._dead_lane += 1
            if self._dead_lane >= _COMPACT_AT and self._dead_lane * 2 > len(lane):
                self._lane = deque(pair for pair in lane if pair[0]._timer is not None)
                self._dead_lane = 0
            return
        reply._entry = None
        entry[2] = None
        heap = self._heap
        if heap[0] is entry:
            heapq.heappop(heap)
            while heap and heap[0][2] is None:
                heapq.heappop(heap)
                self._dead_heap -= 1
            return
        self._dead_heap += 1
        if self._dead_heap >= _COMPACT_AT and self._dead_heap * 2 > len(heap):
            self._heap = [e for e in heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._dead_heap = 0

    def _expire_due(self, now: float) -> float:
        """End the asks due by ``now``; return the next deadline (``math.inf``: none)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, reply, cell, timeout = heapq.heappop(heap)
            if reply is None:
                self._dead_heap -= 1
            else:
                reply._entry = None
                reply._expire(AskTimeout(cell.path, timeout, reply.message))
        lane = self._lane
        while lane and lane[0][0].deadline <= now:
            reply, cell = lane.popleft()
            if reply._timer is None:
                self._dead_lane -= 1
            else:
                reply._expire(AskTimeout(cell.path, self._lane_timeout, reply.message))
        return min(heap[0][0] if heap else math.inf, lane[0][0].deadline if lane else math.inf)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire asks forever (until cancelled with the system)."""
        started = False
        while True:
            deadline = self._expire_due(trio.current_time())
            try:
                with trio.CancelScope(deadline=deadline) as scope:
                    self._scope = scope
                    if not started:
                        started = True
                        task_status.started()
                    await trio.sleep_forever()
            finally:
                self._scope = None
