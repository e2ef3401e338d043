"""ScriptedProvider: a Provider that answers from a script, with no network."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import trio

from ..llm._http import close_stream
from ..llm._types import ChatRequest, ChatResponse, Chunk, Message, Usage

__all__ = ["ScriptedProvider"]

Step = ChatResponse | str | BaseException | Callable[[ChatRequest], "ChatResponse | str"]


class ScriptedProvider:
    """A :class:`~tinyagents.llm.Provider` that plays a script, for tests.

    Each call takes the next step: a :class:`ChatResponse`, a string (an assistant
    text answer), an exception (raised), or a function of the request returning either.
    When the script runs out, ``default`` answers (by default it raises
    ``AssertionError``, so a test notices an unexpected call). Streaming sends the
    answer's text in ``chunk_size`` pieces, then its tool calls, then a final chunk
    with the finish reason and usage. ``delay`` seconds pass before a whole answer, or
    before each chunk of a streamed one. Every request is kept in :attr:`requests`.
    """

    def __init__(
        self,
        steps: Iterable[Step] = (),
        *,
        name: str = "scripted",
        default: Step | None = None,
        chunk_size: int = 4,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.requests: list[ChatRequest] = []
        self._steps: deque[Step] = deque(steps)
        self._default = default
        self._chunk_size = max(1, chunk_size)
        self._delay = delay

    def add(self, *steps: Step) -> None:
        """Append steps to the script."""
        self._steps.extend(steps)

    @property
    def remaining(self) -> int:
        """Steps not yet played."""
        return len(self._steps)

    def _next(self, request: ChatRequest) -> ChatResponse:
        if self._steps:
            step = self._steps.popleft()
        elif self._default is not None:
            step = self._default
        else:
            raise AssertionError(f"ScriptedProvider {self.name!r}: the script is exhausted")
        if isinstance(step, BaseException):
            raise step
        if callable(step) and not isinstance(step, ChatResponse):
            step = step(request)
        if isinstance(step, str):
            words = sum(len(m.content.split()) for m in request.messages)
            return ChatResponse(
                Message.assistant(step),
                Usage(words, len(step.split())),
                "stop",
                request.model,
            )
        return step

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Play the next step; see :class:`~tinyagents.llm.Provider`."""
        try:
            self.requests.append(request)
            await trio.lowlevel.checkpoint()
            response = self._next(request)
            if stream is None and self._delay:
                await trio.sleep(self._delay)
            if stream is not None:
                text = response.message.content
                for i in range(0, len(text), self._chunk_size):
                    if self._delay:
                        await trio.sleep(self._delay)
                    await stream.send(Chunk(delta=text[i : i + self._chunk_size]))
                for call in response.message.tool_calls:
                    await stream.send(Chunk(tool_call=call))
                await stream.send(Chunk(finish_reason=response.finish_reason, usage=response.usage))
            return response
        finally:
            await close_stream(stream)
