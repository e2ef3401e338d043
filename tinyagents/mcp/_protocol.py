"""The MCP protocol's constants and small value types (internal)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "CLIENT_CAPABILITIES_META",
    "CLIENT_INFO_META",
    "HANDSHAKE_VERSIONS",
    "METHOD_NOT_FOUND",
    "MODERN_VERSION",
    "PROTOCOL_VERSION_META",
    "SERVER_INFO_META",
    "SUPPORTED_VERSIONS",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "MCPToolResult",
    "Progress",
    "model_name",
]

MODERN_VERSION = "2026-07-28"
"""The stateless revision: no ``initialize``, a ``_meta`` envelope on every request,
``server/discover`` to learn what the server speaks."""

HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
"""The revisions negotiated by ``initialize``, newest first."""

SUPPORTED_VERSIONS = (MODERN_VERSION, *HANDSHAKE_VERSIONS)

PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"

METHOD_NOT_FOUND = -32601
UNSUPPORTED_PROTOCOL_VERSION = -32022

_MODEL_NAME = re.compile(r"[^A-Za-z0-9_-]")


def model_name(prefix: str, name: str) -> str:
    """The name a model calls an MCP tool by: ``prefix + name`` with every character
    the LLM APIs refuse (anything but letters, digits, ``_`` and ``-``) made ``_``,
    cut to 64 characters."""
    return _MODEL_NAME.sub("_", prefix + name)[:64]


@attrs.frozen
class Progress:
    """A progress notification of a running tool call: ``progress`` so far, out of
    ``total`` when the server knows it, and the server's ``message``. ``tool`` is the
    MCP name of the tool."""

    tool: str
    progress: float
    total: float | None = None
    message: str | None = None


def _describe(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == "text":
        return str(item.get("text", ""))
    if kind in ("image", "audio"):
        return f"[{kind} {item.get('mimeType', '')}]".replace(" ]", "]")
    if kind == "resource":
        resource = item.get("resource")
        if isinstance(resource, Mapping):
            if isinstance(resource.get("text"), str):
                return str(resource["text"])
            return f"[resource {resource.get('uri', '')}]"
    if kind == "resource_link":
        return f"[resource link {item.get('uri', '')}]"
    return json.dumps(dict(item), ensure_ascii=False, default=str)


@attrs.frozen
class MCPToolResult:
    """What a ``tools/call`` answered.

    ``content`` holds the content items as the server sent them (``{"type": "text",
    "text": ...}``, images, audio, resources), ``structured`` the ``structuredContent``
    (``None`` without one), and ``is_error`` says whether the tool reported failure.
    :attr:`text` is what a model reads.
    """

    content: tuple[Mapping[str, Any], ...] = ()
    structured: Any = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text items joined by newlines; other items described in brackets
        (``[image image/png]``); with no content at all, the structured content as
        JSON."""
        if not self.content and self.structured is not None:
            return json.dumps(self.structured, ensure_ascii=False, default=str)
        return "\n".join(_describe(item) for item in self.content)
