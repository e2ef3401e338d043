"""The Mistral adapter: Mistral's OpenAI-shaped chat completions, with its differences.

Differences from :class:`~tinyagents.llm.openai.OpenAI`:

* base ``https://api.mistral.ai/v1``, key from ``api_key`` or ``MISTRAL_API_KEY``;
* ``ChatRequest.max_tokens`` is sent as ``max_tokens`` (Mistral refuses
  ``max_completion_tokens``), and no ``stream_options`` is sent (refused too): the
  usage arrives by itself on the last chunk of a stream. A stream (or reply) that
  carries none (an OpenAI-compatible server such as llama-server, which reports it only
  when asked through ``stream_options``) reports
  :meth:`Usage.unknown() <tinyagents.llm.Usage.unknown>`, not zero tokens;
* an option ``seed`` is sent as ``random_seed`` (Mistral's name; ``seed`` is refused),
  unless ``random_seed`` is given too. Other options pass unchanged;
* tool-call ids must be exactly 9 characters ``[A-Za-z0-9]``. Ids that are not (OpenAI's
  ``call_...``, another provider's, or one an adapter made up) are mapped, when sent, to
  a 9-character id derived from the original by a hash: the same original id always
  maps to the same id, so an assistant message's ``tool_calls`` and the tool messages
  answering them stay matched. Valid ids are sent unchanged. The ids in answers are
  Mistral's own;
* tool messages carry the tool's ``name`` (taken from the message, or from the
  assistant tool call with that id);
* tool-call ``arguments`` are accepted as a JSON string or an object, and streamed tool
  calls either whole in one delta or in OpenAI-style fragments;
* the finish reason ``model_length`` becomes ``length``; ``error`` raises
  :class:`~tinyagents.errors.ServerError`, as does an ``{"object": "error"}`` event;
* error bodies ``{"object": "error", "message": <text or {"detail": [...]}>, "type",
  "code"}`` and ``{"detail": [...]}`` (422 validation) are read for the message.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from ..errors import ProviderError
from ._types import ChatRequest
from .openai import OpenAI, _reported_error

__all__ = ["Mistral"]

_VALID_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _mistral_id(call_id: str) -> str:
    """``call_id`` if it is already 9 alphanumerics, else 9 base-62 characters of its
    SHA-256 (deterministic: equal ids map to equal ids)."""
    if _VALID_ID.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest(), "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


class Mistral(OpenAI):
    """Mistral's chat completions API (see the module docstring)."""

    name = "mistral"
    gen_ai_provider: ClassVar[str] = "mistral_ai"
    api_key_env = "MISTRAL_API_KEY"
    default_base_url = "https://api.mistral.ai/v1"

    max_tokens_field: ClassVar[str] = "max_tokens"
    stream_usage_option: ClassVar[bool] = False
    tool_message_name: ClassVar[bool] = True
    finish_reasons: ClassVar[Mapping[str, str]] = MappingProxyType(
        {**OpenAI.finish_reasons, "model_length": "length"}
    )

    def _wire_tool_call_id(self, call_id: str) -> str:
        return _mistral_id(call_id)

    def _new_tool_call_id(self) -> str:
        return _mistral_id(uuid.uuid4().hex)

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        options = dict(request.options)
        if "seed" in options and "random_seed" not in options:
            options["random_seed"] = options.pop("seed")
        return options

    def _payload_error(self, payload: Mapping[str, Any]) -> ProviderError | None:
        if payload.get("object") == "error":
            return _reported_error(
                self.name,
                {
                    "message": _message_text(payload.get("message")),
                    "type": payload.get("type"),
                    "code": payload.get("code"),
                },
            )
        return super()._payload_error(payload)

    def _error_message(self, body: Any, text: str, headers: Mapping[str, str]) -> tuple[str, bool]:
        """Mistral's messages; the quota is spent when the reply says no tokens are left
        this month (``x-ratelimit-remaining-tokens-month: 0``): Mistral sends the same
        429 body for a short-term rate limit and for a spent monthly quota."""
        spent = headers.get("x-ratelimit-remaining-tokens-month", "").strip() == "0"
        if (
            isinstance(body, Mapping)
            and "error" not in body
            and ("message" in body or "detail" in body)
        ):
            message = _message_text(body.get("message", body))
            return message or text[:300] or "(empty body)", spent
        message, quota = super()._error_message(body, text, headers)
        return message, quota or spent


def _message_text(message: Any) -> str:
    """A Mistral error message: a string, or ``{"detail": [{loc, msg}, ...]}``."""
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping):
        detail = message.get("detail")
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, Mapping):
                    loc = ".".join(str(part) for part in item.get("loc") or ())
                    msg = str(item.get("msg") or "")
                    parts.append(f"{loc}: {msg}" if loc else msg)
            return "; ".join(parts)
        if isinstance(detail, str):
            return detail
    return str(message) if message is not None else ""
