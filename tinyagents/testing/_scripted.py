"""ScriptedProvider: a Provider that answers from a script, with no network."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import trio

from .. import _tracing
from .._validate import check_seconds
from ..llm._http import close_stream
from ..llm._types import ChatRequest, ChatResponse, Chunk, Message, Usage

__all__ = ["ScriptedProvider"]

Step = ChatResponse | str | BaseException | Callable[[ChatRequest], "ChatResponse | str"]


class _Copier:
    """Fresh copies of an exception as it was when it was scripted: the same type,
    ``args``, attributes, notes and ``__cause__``, but its own ``__notes__`` list and no
    traceback, so that what one raise collects (middleware notes) never shows on the
    next."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.raised = False
        self._state = {k: v for k, v in vars(error).items() if k != "__notes__"}
        self._notes = list(getattr(error, "__notes__", ()))
        self._cause = error.__cause__
        self._suppress = error.__suppress_context__
        try:
            self.copy()
        except Exception:  # an exception that cannot be rebuilt: raise the instance
            self._copyable = False
        else:
            self._copyable = True

    def copy(self) -> BaseException:
        cls = type(self.error)
        fresh = cls.__new__(cls, *self.error.args)
        fresh.args = self.error.args
        fresh.__dict__.update(self._state)
        if self._notes:
            fresh.__notes__ = list(self._notes)
        fresh.__cause__ = self._cause
        fresh.__suppress_context__ = self._suppress
        return fresh

    def next(self) -> BaseException:
        """The instance itself the first time, a fresh copy every later time."""
        if self.raised and self._copyable:
            return self.copy()
        self.raised = True
        return self.error


def _check_step(step: object, what: str) -> None:
    if isinstance(step, type) and issubclass(step, BaseException):
        raise TypeError(
            f"{what} is the exception class {step.__name__}; give an instance, "
            f"such as {step.__name__}(...)"
        )
    if isinstance(step, ChatResponse | str | BaseException) or callable(step):
        return
    raise TypeError(
        f"{what} must be a ChatResponse, a str, an exception or a function of the "
        f"ChatRequest, not {step!r}"
    )


class ScriptedProvider:
    """A :class:`~tinyagents.llm.Provider` that plays a script, for tests.

    Each call takes the next step: a :class:`ChatResponse`, a string (an assistant
    text answer), an exception (raised), or a function of the request returning either.
    When the script runs out, ``default`` answers (by default it raises
    ``AssertionError``, so a test notices an unexpected call). Streaming sends the
    answer's text in ``chunk_size`` pieces, then its tool calls, then a final chunk
    with the finish reason and usage. ``delay`` seconds pass before a whole answer, or
    before each chunk of a streamed one. Every request is kept in :attr:`requests`.

    An exception step raises the very instance given the first time it is played, and
    a fresh copy of it (same type, arguments, attributes, notes and cause, as it was
    when scripted) every later time: the same instance may stand for several failures
    (``[busy, busy, "ok"]``, or ``default=busy``) without the notes that ``Retry`` or
    ``Fallback`` add to one failure piling up on the next. (An exception that cannot be
    rebuilt that way is raised as the same instance each time.)

    The constructor and :meth:`add` check the steps: an exception *class* instead of an
    instance, or anything that is not a step, raises ``TypeError`` at once; so do a
    ``chunk_size`` that is not an int >= 1 and a ``delay`` that is not seconds >= 0
    (``ValueError`` for a wrong value).
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
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        if isinstance(steps, str | ChatResponse | BaseException) or not isinstance(steps, Iterable):
            raise TypeError(
                f"steps must be a sequence of steps (wrap a single one in a list), not {steps!r}"
            )
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be an int >= 1, not {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, not {chunk_size!r}")
        delay = check_seconds(delay, "delay", inf=False)
        if default is not None:
            _check_step(default, "default")
        self.name = name
        self.requests: list[ChatRequest] = []
        self._steps: deque[Step] = deque()
        self._copiers: dict[int, _Copier] = {}
        self._default = default
        self._chunk_size = chunk_size
        self._delay = float(delay)
        self.add(*steps)
        if isinstance(default, BaseException):
            self._copier(default)

    def add(self, *steps: Step) -> None:
        """Append steps to the script (``TypeError`` for one that is not a step; then
        none is added)."""
        for position, step in enumerate(steps):
            _check_step(step, f"step {position}")
        for step in steps:
            if isinstance(step, BaseException):
                self._copier(step)
        self._steps.extend(steps)

    def _copier(self, error: BaseException) -> _Copier:
        copier = self._copiers.get(id(error))
        if copier is None or copier.error is not error:
            copier = self._copiers[id(error)] = _Copier(error)
        return copier

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
            raise self._copier(step).next()
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
        if not isinstance(step, ChatResponse):
            raise TypeError(
                f"ScriptedProvider {self.name!r}: a step function returned {step!r}, "
                "not a ChatResponse or a str"
            )
        return step

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Play the next step; see :class:`~tinyagents.llm.Provider`. Like the HTTP
        providers, it counts the call in the calling actor's metrics and, while tracing
        is on, traces it as a ``chat`` span (``gen_ai.provider.name``
        ``"tinyagents.scripted"``)."""
        with _tracing.LLMCall(self.name, "tinyagents.scripted", request) as traced:
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
                    await stream.send(
                        Chunk(finish_reason=response.finish_reason, usage=response.usage)
                    )
                return traced.done(response)
            finally:
                await close_stream(stream)
