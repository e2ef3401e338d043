"""The OpenRouter adapter: OpenAI's Chat Completions dialect with OpenRouter's extras.

Differences from :class:`~tinyagents.llm.openai.OpenAI`:

* base ``https://openrouter.ai/api/v1``, key from ``api_key`` or ``OPENROUTER_API_KEY``;
* the optional attribution headers ``HTTP-Referer`` (``app_url``) and ``X-Title``
  (``app_name``) on every request;
* streams may carry SSE comment lines (``: OPENROUTER PROCESSING``), which are skipped;
* an error during generation arrives, with HTTP 200 already sent, as a ``data:`` event
  with a top-level ``error: {code, message}`` (and ``finish_reason: "error"``): it raises
  the typed error for that code (402 quota, 429 rate limit, 408 timeout, 401/403
  authentication, other 4xx bad request, 5xx server error), with ``status`` 200; a
  200 non-streamed body with an ``error`` is treated the same way;
* HTTP 402 (insufficient credits) raises :class:`~tinyagents.errors.RateLimited` with
  ``status`` 402 and ``quota_exhausted=True`` (not retryable), unless the reply carries
  ``Retry-After``: OpenRouter documents a 402 with that header as a temporary limit
  (its in-flight spending budget), so then ``quota_exhausted`` is ``False`` and
  ``retry_after`` is set;
* ``usage.cost`` and the other extra fields (``provider``, ``native_finish_reason``)
  are ignored. OpenRouter's own body fields (``models``, ``provider``, ``route``,
  ``transforms``, ``reasoning``, ``plugins``) go through ``ChatRequest.options``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import httpx

from ..errors import ProviderError, RateLimited
from ._http import DEFAULT_TIMEOUT, retry_after_from
from .openai import OpenAI

__all__ = ["OpenRouter"]


class OpenRouter(OpenAI):
    """OpenRouter's OpenAI-compatible API (see the module docstring).

    ``app_url`` and ``app_name`` become the ``HTTP-Referer`` and ``X-Title`` headers
    that OpenRouter uses to attribute requests to an app.
    """

    name = "openrouter"
    gen_ai_provider: ClassVar[str] = "openrouter"
    api_key_env = "OPENROUTER_API_KEY"
    default_base_url = "https://openrouter.ai/api/v1"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        app_url: str | None = None,
        app_name: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        call_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        merged = dict(headers or {})
        if app_url:
            merged["HTTP-Referer"] = app_url
        if app_name:
            merged["X-Title"] = app_name
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            call_timeout=call_timeout,
            headers=merged,
            name=name,
            transport=transport,
            limits=limits,
        )
        self.app_url = app_url
        self.app_name = app_name

    async def _raise_for_status(self, response: httpx.Response) -> None:
        try:
            await super()._raise_for_status(response)
        except ProviderError as exc:
            if response.status_code != 402:
                raise
            retry_after = retry_after_from(response.headers)
            raise RateLimited(
                self.name,
                f"payment required: {exc.detail}",
                status=402,
                retry_after=retry_after,
                quota_exhausted=retry_after is None,
            ) from None
