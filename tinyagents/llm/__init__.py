"""The LLM layer: provider-neutral message types, the Provider protocol, adapters and
middleware.

Adapters live in their own modules (``tinyagents.llm.openai``, ``.anthropic``,
``.ollama``, ``.mistral``, ``.openrouter``); middleware in ``tinyagents.llm.middleware``.
Errors are in :mod:`tinyagents.errors` (``ProviderError`` and its subclasses).
"""

from ._http import HTTPProvider as HTTPProvider
from ._types import ChatRequest as ChatRequest
from ._types import ChatResponse as ChatResponse
from ._types import Chunk as Chunk
from ._types import Message as Message
from ._types import OutputFormat as OutputFormat
from ._types import Provider as Provider
from ._types import Role as Role
from ._types import ToolCall as ToolCall
from ._types import ToolSpec as ToolSpec
from ._types import Usage as Usage
from .middleware import Fallback as Fallback
from .middleware import Log as Log
from .middleware import RateLimit as RateLimit
from .middleware import Retry as Retry
from .middleware import estimate_tokens as estimate_tokens

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Chunk",
    "Fallback",
    "HTTPProvider",
    "Log",
    "Message",
    "OutputFormat",
    "Provider",
    "RateLimit",
    "Retry",
    "Role",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "estimate_tokens",
]
