"""Every exception tinyagents raises, in one hierarchy.

Catch :class:`TinyAgentsError` to handle anything the library raises on purpose::

    TinyAgentsError
    ├── ActorError                    something about one actor
    │   ├── ActorStopped              the target stopped before or while your message waited
    │   ├── ActorFailed               the handler raised; ``__cause__`` is its exception
    │   ├── ActorStartFailed          the actor's ``started`` hook raised during spawn
    │   ├── HookTimeout               a ``stopped`` hook overran the stop's grace (a TimeoutError)
    │   ├── ActorNameTaken            a sibling already has that name
    │   ├── InvalidActorName          empty, or has ``/`` or whitespace, or starts with ``$``
    │   └── NoRoutees                 a router had nobody to pass an asked message to
    ├── MailboxError
    │   ├── MailboxFull               a FAIL mailbox (or BLOCK, from ``tell_nowait``) had no room
    │   └── MessageDropped            an asked message was dropped by an overflow policy
    ├── AskTimeout                    no reply within the timeout (also a ``TimeoutError``)
    ├── ReplyError                    a reply was given twice, or outside an ask
    ├── AgentError                    an agent's turn could not complete
    │   ├── ToolRoundsExceeded        the model kept calling tools past ``max_tool_rounds``
    │   ├── BudgetExceeded            the shared token budget is spent
    │   ├── OutputValidationError     the answer never matched the agent's ``output_type``
    │   ├── TurnSuspended             a turn waits for a person's decision on tool calls
    │   ├── NoSuspendedTurn           ``Resume`` sent to an agent with no suspended turn
    │   └── TurnDeadlineExceeded      the asker's deadline passed (also a ``TimeoutError``)
    ├── ToolError                     a tool was registered, looked up or called wrongly (``tool``)
    │   ├── ToolNameTaken             ``ToolRegistry.register`` with a name another tool has
    │   ├── UnknownTool               no tool of that name (also a ``KeyError``)
    │   ├── InvalidToolArguments      the arguments do not fit the tool's schema (``problems``)
    │   └── ToolTimeout               the tool did not finish within its timeout
    ├── MCPError                      an MCP server could not serve a request (``server``)
    │   ├── MCPConnectionLost         the server could not be started or reached, or died
    │   ├── MCPTimeout                no answer within the request's deadline (a TimeoutError)
    │   ├── MCPProtocolError          the server broke the protocol (malformed or unexpected)
    │   │   └── MCPVersionMismatch    no protocol revision both sides speak
    │   ├── MCPRequestError           the server answered with a JSON-RPC error (``code``)
    │   └── MCPToolError              a tool's result was an error (also a ``ToolError``)
    ├── RegistryError
    │   ├── NameRegistered            ``registry.register`` with a name already taken
    │   └── NoMembers                 a ``RingRegistry`` lookup while no member qualifies
    ├── ActorSystemError              misuse of an :class:`~tinyagents.ActorSystem`
    │   └── SystemNotRunning          the system is not open, or is shutting down
    ├── InvalidAddress                not ``"host:port"`` nor ``(host, port)`` (a ``ValueError``)
    ├── TransportError                cross-node messaging (``tinyagents.transport``)
    │   ├── FrameTooLarge             a frame over the limit: that connection is closed
    │   ├── MalformedFrame            bytes that are not a frame or envelope (a ``ValueError``)
    │   ├── HandshakeFailed           a peer was refused: wrong secret, cluster or version
    │   ├── NodeUnreachable           the target's node cannot be reached, or has died
    │   ├── RemoteError               a remote handler's exception, as its type and text
    │   └── CodecError                a message could not be encoded or decoded (a ``ValueError``)
    │       ├── NotSerializable       its type is not registered with ``@message``
    │       └── UnknownMessageType    the receiver does not know the message's type id
    ├── ReplicatorError               replicated data (``tinyagents.crdt.Replicator``)
    │   ├── UpdateIncomplete          too few replicas confirmed a write (it still stands locally)
    │   ├── ReadIncomplete            too few replicas answered a read
    │   ├── KeyDeleted                the key was deleted: it cannot be read or updated again
    │   └── KeyTypeMismatch           the key holds another data type (a ``TypeError``)
    └── ProviderError                 an LLM provider call failed (``provider``, ``status``)
        ├── AuthenticationError       401/403: the key is missing, wrong or not allowed
        ├── BadRequest                400/404/409/413/422: the request itself is wrong
        ├── RateLimited               429 (``retry_after``; ``quota_exhausted``: do not retry)
        ├── Overloaded                Anthropic's 529, or an overloaded error in a stream
        ├── ServerError               5xx, or an error reported inside a 200 stream
        ├── ProviderTimeout           408, or no answer within the HTTP timeouts
        ├── ProviderConnectionError   the connection failed or broke
        └── ProtocolError             a malformed or truncated reply

Every error says what happened and to which actor; the actor's path is also kept
in the ``path`` attribute where one applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ActorError",
    "ActorFailed",
    "ActorNameTaken",
    "ActorStartFailed",
    "ActorStopped",
    "ActorSystemError",
    "AgentError",
    "AskTimeout",
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "CodecError",
    "FrameTooLarge",
    "HandshakeFailed",
    "HookTimeout",
    "InvalidActorName",
    "InvalidAddress",
    "InvalidToolArguments",
    "KeyDeleted",
    "KeyTypeMismatch",
    "MCPConnectionLost",
    "MCPError",
    "MCPProtocolError",
    "MCPRequestError",
    "MCPTimeout",
    "MCPToolError",
    "MCPVersionMismatch",
    "MailboxError",
    "MailboxFull",
    "MalformedFrame",
    "MessageDropped",
    "NameRegistered",
    "NoMembers",
    "NoRoutees",
    "NoSuspendedTurn",
    "NodeUnreachable",
    "NotSerializable",
    "OutputValidationError",
    "Overloaded",
    "ProtocolError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "ReadIncomplete",
    "RegistryError",
    "RemoteError",
    "ReplicatorError",
    "ReplyError",
    "ServerError",
    "SystemNotRunning",
    "TinyAgentsError",
    "ToolError",
    "ToolNameTaken",
    "ToolRoundsExceeded",
    "ToolTimeout",
    "TransportError",
    "TurnDeadlineExceeded",
    "TurnSuspended",
    "UnknownMessageType",
    "UnknownTool",
    "UpdateIncomplete",
]


def _type_name(message: object) -> str:
    return f"{type(message).__qualname__!r}"


class TinyAgentsError(Exception):
    """The base class of every exception raised by tinyagents."""


class ActorError(TinyAgentsError):
    """Something went wrong with one actor; ``path`` names it."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class ActorStopped(ActorError):
    """The target actor stopped before your message was handled.

    Raised by :meth:`~tinyagents.ActorRef.ask` when the actor was already stopped,
    or stopped while the message waited in its mailbox or was being handled.
    """

    def __init__(self, path: str, message: object = None, *, detail: str | None = None) -> None:
        what = f"a message of type {_type_name(message)}" if message is not None else "the message"
        super().__init__(detail or f"actor {path} stopped before it handled {what}", path)


class ActorFailed(ActorError):
    """The actor's handler raised while handling the asked message.

    ``error`` (and ``__cause__``) is the handler's exception. The actor itself is
    then supervised as its parent chose (restarted, stopped or escalated).
    """

    def __init__(self, path: str, error: BaseException, message: object = None) -> None:
        what = f" handling a message of type {_type_name(message)}" if message is not None else ""
        super().__init__(f"actor {path} failed{what}: {error!r}", path)
        self.error = error


class ActorStartFailed(ActorError):
    """The actor's ``started`` hook raised, so :meth:`spawn` did not start it."""

    def __init__(self, path: str, error: BaseException) -> None:
        super().__init__(f"actor {path} failed to start: {error!r}", path)
        self.error = error


class HookTimeout(ActorError, TimeoutError):
    """An actor's lifecycle hook did not return within the stop's grace and was cancelled.

    Not raised to anyone: it is reported as the ``error`` of an
    :class:`~tinyagents.events.ActorFailed` event (directive ``"stop"``) and logged.
    ``hook`` names the hook (``"stopped"``), ``grace`` is the limit in seconds.
    """

    def __init__(self, path: str, hook: str, grace: float) -> None:
        super().__init__(
            f"actor {path}: its {hook} hook did not return within {grace:g}s and was cancelled",
            path,
        )
        self.hook = hook
        self.grace = grace


class ActorNameTaken(ActorError):
    """``spawn`` was given a name that a live sibling already has."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cannot spawn {path}: the name is taken by a live sibling", path)


class InvalidActorName(ActorError):
    """``spawn`` was given a name that is empty, contains ``/`` or starts with ``$``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid actor name {name!r}: {reason}", name)


class NoRoutees(ActorError):
    """A router had no routee for an asked message, so nobody can answer it."""

    def __init__(self, path: str, message: object = None) -> None:
        what = f" for a message of type {_type_name(message)}" if message is not None else ""
        super().__init__(f"router {path} has no routees{what}", path)


class MailboxError(TinyAgentsError):
    """A message could not be put into a mailbox; ``path`` names its actor."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class MailboxFull(MailboxError):
    """The mailbox had no room and its policy says to fail rather than wait.

    Raised by ``tell``/``ask`` on a ``Bounded(..., overflow=FAIL)`` mailbox, and by
    ``tell_nowait`` on a full ``BLOCK`` mailbox (``tell_nowait`` never waits).
    """

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full (capacity {capacity})", path)
        self.capacity = capacity


class MessageDropped(MailboxError):
    """An asked message was dropped by its mailbox's overflow policy, so no reply will come.

    ``policy`` is the name of the overflow policy that dropped it (``DROP_NEWEST`` or
    ``DROP_OLDEST``).
    """

    def __init__(self, path: str, policy: str, message: object = None) -> None:
        what = f"a message of type {_type_name(message)}" if message is not None else "the message"
        super().__init__(f"mailbox of {path} dropped {what} ({policy})", path)
        self.policy = policy


class AskTimeout(TinyAgentsError, TimeoutError):
    """No reply arrived within the ask's timeout.

    A reply that arrives later becomes a dead letter.
    """

    def __init__(self, path: str, timeout: float, message: object = None) -> None:
        what = f" to a message of type {_type_name(message)}" if message is not None else ""
        super().__init__(f"ask to {path} timed out after {timeout:g}s waiting for a reply{what}")
        self.path = path
        self.timeout = timeout


class ReplyError(TinyAgentsError):
    """A reply was attempted where none is possible: twice, or for a message not asked."""


class AgentError(TinyAgentsError):
    """An agent's (or a team's) turn could not complete; ``agent`` names it."""

    def __init__(self, message: str, agent: str) -> None:
        super().__init__(message)
        self.agent = agent


class ToolRoundsExceeded(AgentError):
    """The model still called tools after ``max_tool_rounds`` rounds."""

    def __init__(self, agent: str, max_rounds: int) -> None:
        super().__init__(
            f"agent {agent!r} stopped its turn: the model still called tools after "
            f"{max_rounds} rounds (max_tool_rounds={max_rounds})",
            agent,
        )
        self.max_rounds = max_rounds


class BudgetExceeded(AgentError):
    """The token budget shared by agents is spent, so no further model call is made."""

    def __init__(self, agent: str, tokens: int, spent: int) -> None:
        super().__init__(
            f"agent {agent!r} cannot call its model: the token budget of {tokens} is spent "
            f"({spent} used)",
            agent,
        )
        self.tokens = tokens
        self.spent = spent


class OutputValidationError(AgentError, ValueError):
    """The model's answer did not match the agent's ``output_type``, also after the
    retries in which it was shown what was wrong.

    ``raw`` is the text of the last answer, ``problems`` what was wrong with it, and
    ``attempts`` how many answers were checked."""

    def __init__(self, agent: str, raw: str, problems: str, attempts: int) -> None:
        super().__init__(
            f"agent {agent!r}: the answer does not match its output type after {attempts} "
            f"attempt{'s' if attempts != 1 else ''}: {problems}",
            agent,
        )
        self.raw = raw
        self.problems = problems
        self.attempts = attempts


class TurnSuspended(AgentError):
    """The agent's turn is suspended until tool calls that need approval are decided
    (see :mod:`tinyagents.approval`): nobody could be asked (no ``approver``, no
    stream), or a new prompt came while a turn was suspended. The turn is kept (with an
    ``SQLiteMemory``, across restarts); send the agent a
    :class:`~tinyagents.approval.Resume` to continue it.

    ``waiting`` holds the undecided :class:`~tinyagents.llm.ToolCall`\\s."""

    def __init__(self, agent: str, waiting: tuple[Any, ...], detail: str) -> None:
        names = ", ".join(f"{call.name} ({call.id})" for call in waiting) or "none"
        super().__init__(
            f"agent {agent!r} has a suspended turn ({detail}); waiting for a decision on: "
            f"{names}; send it Resume(decisions=...) to continue",
            agent,
        )
        self.waiting = waiting
        self.detail = detail


class NoSuspendedTurn(AgentError, LookupError):
    """A :class:`~tinyagents.approval.Resume` reached an agent that has no suspended
    turn (it was never suspended, or its turn was resumed and finished already)."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"agent {agent!r} has no suspended turn to resume", agent)


class TurnDeadlineExceeded(AgentError, TimeoutError):
    """The asker's deadline passed before the turn completed; the turn was cancelled."""

    def __init__(self, agent: str, deadline: float) -> None:
        super().__init__(f"agent {agent!r} did not finish its turn by the asker's deadline", agent)
        self.deadline = deadline


class ToolError(TinyAgentsError):
    """A tool was registered, looked up or called the wrong way; ``tool`` names it."""

    def __init__(self, message: str, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class ToolNameTaken(ToolError, ValueError):
    """``ToolRegistry.register`` was given a tool whose name another tool has."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"a different tool named {tool!r} is already registered", tool)


class UnknownTool(ToolError, KeyError):
    """No tool of that name is registered (``registry[name]``, or a model's call).

    ``available`` lists the registered names, which the message also gives, so that a
    model told about its mistake can pick a real tool.
    """

    def __init__(self, tool: str, available: Iterable[str] = ()) -> None:
        self.available = tuple(available)
        names = ", ".join(self.available) if self.available else "none"
        super().__init__(f"unknown tool {tool!r} (the tools are: {names})", tool)

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


class InvalidToolArguments(ToolError, ValueError):
    """The arguments of a call do not fit the tool's schema; ``problems`` says how,
    one short sentence per problem (``"missing 'city'"``)."""

    def __init__(self, tool: str, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"invalid arguments for {tool}: {'; '.join(self.problems)}", tool)


class ToolTimeout(ToolError, TimeoutError):
    """The tool did not finish within its ``timeout`` (seconds)."""

    def __init__(self, tool: str, timeout: float) -> None:
        super().__init__(f"{tool} timed out after {timeout:g} seconds", tool)
        self.timeout = timeout


class MCPError(TinyAgentsError):
    """An MCP server (``tinyagents.mcp``) could not serve a request; ``server`` names it
    (its command line or URL)."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(f"MCP server {server}: {message}")
        self.server = server
        self.detail = message


class MCPConnectionLost(MCPError):
    """The server could not be started or reached, or its connection broke: the process
    exited (``returncode``, and the last lines of its stderr in the message) or the HTTP
    connection failed. The request in flight failed with it; the next request reconnects
    (a restarted process, a new session)."""

    def __init__(self, message: str, *, server: str, returncode: int | None = None) -> None:
        super().__init__(message, server=server)
        self.returncode = returncode


class MCPTimeout(MCPError, TimeoutError):
    """No answer to ``method`` within ``timeout`` seconds. The request was cancelled on
    the server (``notifications/cancelled``) and the connection stays usable."""

    def __init__(self, method: str, timeout: float, *, server: str) -> None:
        super().__init__(f"no answer to {method} within {timeout:g} seconds", server=server)
        self.method = method
        self.timeout = timeout


class MCPProtocolError(MCPError):
    """The server broke the protocol: a reply that is not JSON-RPC, an HTTP status or
    content type the transport does not allow, a result without its required fields.
    ``status`` is the HTTP status where one applies."""

    def __init__(self, message: str, *, server: str, status: int | None = None) -> None:
        super().__init__(message, server=server)
        self.status = status


class MCPVersionMismatch(MCPProtocolError):
    """The server and the client have no protocol revision in common: ``offered`` are
    the revisions the client speaks, ``answered`` what the server said it speaks."""

    def __init__(self, offered: Iterable[str], answered: Iterable[str], *, server: str) -> None:
        self.offered = tuple(offered)
        self.answered = tuple(answered)
        super().__init__(
            f"no protocol revision in common (the client speaks {', '.join(self.offered)}; "
            f"the server answered {', '.join(self.answered) or 'nothing usable'})",
            server=server,
        )


class MCPRequestError(MCPError):
    """The server answered a request with a JSON-RPC error: ``code`` (such as -32601,
    method not found, or -32602, invalid params), its ``message`` as ``detail`` and
    its ``data``."""

    def __init__(
        self, method: str, code: int, message: str, *, server: str, data: object = None
    ) -> None:
        super().__init__(f"{method} failed with error {code}: {message}", server=server)
        self.method = method
        self.code = code
        self.data = data
        self.detail = message


class MCPToolError(MCPError, ToolError):
    """A tool ran on the server and reported failure (a result with ``isError``); the
    message is the tool's own text, which the model reads as the call's error result."""

    def __init__(self, tool: str, text: str, *, server: str) -> None:
        TinyAgentsError.__init__(self, text or "the tool reported an error without text")
        self.server = server
        self.detail = text
        self.tool = tool
        self.text = text


class RegistryError(TinyAgentsError):
    """A name registry was used the wrong way."""


class NameRegistered(RegistryError):
    """``register`` was given a name that is already registered to a live actor."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(f"the name {name!r} is already registered to {path}")
        self.name = name
        self.path = path


class NoMembers(RegistryError, LookupError):
    """A :class:`~tinyagents.registry.RingRegistry` was asked for a key's owner while no
    cluster member qualifies (the cluster is not joined, or every member is filtered
    out)."""


class ActorSystemError(TinyAgentsError):
    """An :class:`~tinyagents.ActorSystem` was used the wrong way."""


class SystemNotRunning(ActorSystemError):
    """The system is not open yet, or is shutting down, so it cannot spawn."""


class InvalidAddress(TinyAgentsError, ValueError):
    """An argument that should be a network address is not one.

    Addresses are given as ``"host:port"`` (``"[::1]:7946"`` for IPv6) or as a
    ``(host, port)`` tuple. ``value`` is what was given, ``argument`` names the argument
    (``"bind"``, ``"seed"``...).
    """

    def __init__(self, value: object, argument: str, problem: str) -> None:
        super().__init__(f"invalid {argument} address {value!r}: {problem}")
        self.value = value
        self.argument = argument


class ProviderError(TinyAgentsError):
    """An LLM provider call failed.

    ``provider`` names the adapter (``"openai"``, ``"anthropic"``, ...), ``status`` is the
    HTTP status (``None`` when there was no response; 200 for an error reported inside
    a stream), and ``retryable`` says whether trying again may succeed (the ``Retry``
    middleware follows it). The message never contains an API key.
    """

    retryable = False

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        where = f"{provider}" if status is None else f"{provider} (HTTP {status})"
        super().__init__(f"{where}: {message}")
        self.provider = provider
        self.status = status
        self.detail = message
        if retryable is not None:
            self.retryable = retryable


class AuthenticationError(ProviderError):
    """The API key is missing, wrong, or not allowed to do this (401, 403)."""


class BadRequest(ProviderError):
    """The provider refused the request as it is (400, 404, 413, 422; 409 is retryable)."""


class RateLimited(ProviderError):
    """Too many requests (429). ``retry_after`` is the provider's advice in seconds, if
    any. ``quota_exhausted`` is set when the account is out of quota or credit, which
    waiting does not fix: such an error is not retryable."""

    retryable = True

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = 429,
        retry_after: float | None = None,
        quota_exhausted: bool = False,
    ) -> None:
        super().__init__(provider, message, status=status, retryable=not quota_exhausted)
        self.retry_after = retry_after
        self.quota_exhausted = quota_exhausted


class Overloaded(ProviderError):
    """The provider is overloaded (Anthropic's 529, or an ``overloaded_error`` event)."""

    retryable = True

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = 529,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after


class ServerError(ProviderError):
    """The provider failed (5xx), or reported an error inside a 200 stream.
    ``retry_after`` is the provider's advice in seconds, if it gave one (a 503 may)."""

    retryable = True

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, message, status=status, retryable=retryable)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    """No answer within the HTTP timeouts, or the provider said 408."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The connection to the provider could not be made, or broke."""

    retryable = True


class ProtocolError(ProviderError):
    """The provider's reply was malformed or truncated: not what its API promises."""


class TransportError(TinyAgentsError):
    """Something went wrong carrying messages between nodes (``tinyagents.transport``)."""


class FrameTooLarge(TransportError):
    """A frame's announced length is over the limit; the connection carrying it is
    closed (the node goes on). ``size`` and ``limit`` are in bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame of {size:,} bytes is over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit


class MalformedFrame(TransportError, ValueError):
    """Bytes from a peer that are not a well-formed frame, envelope or handshake
    message; the connection carrying them is closed (the node goes on)."""


class HandshakeFailed(TransportError):
    """A connection between two nodes was refused during its handshake: the shared
    secret or TLS certificate did not check out, the cluster names or protocol versions
    differ, or the peer did not answer in time. ``reason`` says which, in words; the
    secret itself is never in it."""

    def __init__(self, reason: str, *, peer: str | None = None) -> None:
        where = f" with {peer}" if peer else ""
        super().__init__(f"handshake{where} failed: {reason}")
        self.reason = reason
        self.peer = peer


class NodeUnreachable(TransportError):
    """The node of the target actor cannot be reached: the connection could not be
    made or dropped, or the cluster declared the node dead or gone. Pending asks to
    that node fail with it at once. ``node`` is the node's id."""

    def __init__(self, node: str, detail: str) -> None:
        super().__init__(f"node {node!r} is unreachable: {detail}")
        self.node = node
        self.detail = detail


class RemoteError(TransportError):
    """An exception raised on another node, as it arrived: its type's qualified name
    (``type_name``, such as ``"ValueError"``), its text (``text``) and the ``node`` it
    was raised on. It is the ``__cause__`` of the :class:`ActorFailed` that a remote
    ask raises when the remote handler failed. The original exception object never
    crosses the wire."""

    def __init__(self, type_name: str, text: str, *, node: str) -> None:
        super().__init__(f"{type_name}: {text} (raised on node {node!r})")
        self.type_name = type_name
        self.text = text
        self.node = node


class CodecError(TransportError, ValueError):
    """A message could not be encoded for the wire, or a received one decoded."""


class NotSerializable(CodecError, TypeError):
    """A message (or a value inside it) cannot cross nodes: its type is neither a
    built-in kind nor registered with :func:`tinyagents.transport.message`."""


class UnknownMessageType(CodecError):
    """The receiving node does not know a message's type id: the type is not
    registered there (``type_id``)."""

    def __init__(self, type_id: str, detail: str | None = None) -> None:
        super().__init__(detail or f"unknown message type {type_id!r}: register it with @message")
        self.type_id = type_id


class ReplicatorError(TinyAgentsError):
    """Something went wrong with replicated data (:class:`tinyagents.crdt.Replicator`);
    ``key`` is the key's id."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class UpdateIncomplete(ReplicatorError):
    """A write's consistency level was not reached: only ``acks`` of the ``required``
    replicas (this node included) confirmed it by the timeout, or too few replicas
    were left to reach it.

    The update was **not** rolled back: it stands on this node and on every replica
    that confirmed it, and it spreads to the others by gossip. ``level`` is the
    consistency asked for and ``reason`` says, in words, what was missing.
    """

    def __init__(self, *, key: str, level: object, acks: int, required: int, reason: str) -> None:
        super().__init__(
            f"update of {key!r} with {level!r} reached {acks} of {required} replicas: "
            f"{reason} (the update stands locally and spreads by gossip)",
            key=key,
        )
        self.level = level
        self.acks = acks
        self.required = required
        self.reason = reason


class ReadIncomplete(ReplicatorError):
    """A read's consistency level was not reached: only ``replies`` of the ``required``
    replicas (this node included) answered by the timeout, or too few replicas were
    left. What the replies carried has been merged into this node's copy all the
    same. ``level`` is the consistency asked for, ``reason`` what was missing."""

    def __init__(
        self, *, key: str, level: object, replies: int, required: int, reason: str
    ) -> None:
        super().__init__(
            f"read of {key!r} with {level!r} reached {replies} of {required} replicas: {reason}",
            key=key,
        )
        self.level = level
        self.replies = replies
        self.required = required
        self.reason = reason


class KeyDeleted(ReplicatorError):
    """The key was deleted (on this node or another): a deleted key stays deleted, and
    cannot be read, updated or subscribed to again."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the replicated key {key!r} was deleted: use another key", key=key)


class KeyTypeMismatch(ReplicatorError, TypeError):
    """The key already holds another replicated data type than its :class:`Key` says
    (``held`` and ``wanted`` are the two types' names)."""

    def __init__(self, key: str, held: str, wanted: str) -> None:
        super().__init__(f"the replicated key {key!r} holds a {held}, not a {wanted}", key=key)
        self.held = held
        self.wanted = wanted
