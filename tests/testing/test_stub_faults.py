"""A spent quota, ``Fault.rate_limited(quota=True)``, as each stub sends it and as each
real adapter (``tinyagents.llm.*``) reads it.

Every stub answers exactly as its service does when the quota is spent (see
``docs/testing.md``): OpenAI's 429 ``insufficient_quota``, OpenRouter's 402, Anthropic's
spend-limit 429, Mistral's 429 with no tokens left this month, Ollama's usage-limit 429,
and none of them with retry advice. An adapter should read that as a
:class:`~tinyagents.errors.RateLimited` with ``quota_exhausted=True``, which is not
retryable, so ``Retry`` gives up at once; every adapter does.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest
import trio

from tinyagents.errors import RateLimited
from tinyagents.llm import ChatRequest, Chunk, Message, Retry
from tinyagents.llm._http import HTTPProvider
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.testing import (
    AnthropicStub,
    Fault,
    MistralStub,
    OllamaStub,
    OpenAIStub,
    OpenRouterStub,
    StubReply,
    StubServer,
)
from tinyagents.testing._anthropic_stub import ANTHROPIC_QUOTA_MESSAGE
from tinyagents.testing._ollama_stub import OLLAMA_QUOTA_MESSAGE
from tinyagents.testing._openai_stub import OPENAI_QUOTA_MESSAGE, OPENROUTER_QUOTA_MESSAGE

KEY = "sk-faults-test"
REQUEST = ChatRequest("any-model", [Message.user("hi")], max_tokens=16)
RETRY_HEADERS = ("retry-after", "retry-after-ms")


@attrs.frozen
class Dialect:
    stub: type[StubServer]
    adapter: Callable[[str], HTTPProvider]
    path: str
    body: dict[str, Any]


MESSAGES = [{"role": "user", "content": "hi"}]
DIALECTS = {
    "openai": Dialect(
        OpenAIStub,
        lambda url: OpenAI(api_key=KEY, base_url=url),
        "/chat/completions",
        {"model": "m", "messages": MESSAGES},
    ),
    "openrouter": Dialect(
        OpenRouterStub,
        lambda url: OpenRouter(api_key=KEY, base_url=url),
        "/chat/completions",
        {"model": "m", "messages": MESSAGES},
    ),
    "mistral": Dialect(
        MistralStub,
        lambda url: Mistral(api_key=KEY, base_url=url),
        "/chat/completions",
        {"model": "m", "messages": MESSAGES},
    ),
    "anthropic": Dialect(
        AnthropicStub,
        lambda url: Anthropic(api_key=KEY, base_url=url),
        "/v1/messages",
        {"model": "m", "max_tokens": 16, "messages": MESSAGES},
    ),
    "ollama": Dialect(
        OllamaStub,
        lambda url: Ollama(base_url=url),
        "/api/chat",
        {"model": "m", "stream": False, "messages": MESSAGES},
    ),
}


def dialects() -> Any:
    return pytest.mark.parametrize("name", list(DIALECTS))


@pytest.fixture
async def served(name: str) -> AsyncIterator[tuple[StubServer, HTTPProvider]]:
    dialect = DIALECTS[name]
    async with dialect.stub() as stub, dialect.adapter(stub.base_url) as provider:
        yield stub, provider


async def call(provider: HTTPProvider, *, streaming: bool) -> BaseException:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is tested
        await provider.chat(REQUEST, stream=send if streaming else None)
    receive.close()
    return caught.value


@dialects()
async def test_the_quota_reply_is_the_services(name: str) -> None:
    dialect = DIALECTS[name]
    async with dialect.stub() as stub, httpx.AsyncClient() as http:
        stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
        reply = await http.post(
            stub.base_url + dialect.path,
            json=dialect.body,
            headers={"authorization": f"Bearer {KEY}"},
        )
    for header in RETRY_HEADERS:
        assert header not in reply.headers
    body = reply.json()
    if name == "openai":
        assert reply.status_code == 429
        assert body == {
            "error": {
                "message": OPENAI_QUOTA_MESSAGE,
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
    elif name == "openrouter":
        assert reply.status_code == 402
        assert body == {"error": {"code": 402, "message": OPENROUTER_QUOTA_MESSAGE}}
    elif name == "mistral":
        assert reply.status_code == 429
        assert body == {
            "object": "error",
            "message": "quota exhausted",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
        }
        assert reply.headers["x-ratelimit-remaining-tokens-month"] == "0"
        assert int(reply.headers["x-ratelimit-limit-tokens-month"]) > 0
    elif name == "anthropic":
        assert reply.status_code == 429
        assert body["type"] == "error"
        assert body["error"] == {
            "type": "rate_limit_error",
            "message": ANTHROPIC_QUOTA_MESSAGE,
            "details": {"error_code": "enforced_spend_limit_reached"},
        }
        assert body["request_id"].startswith("req_")
    else:
        assert reply.status_code == 429
        assert body == {"error": OLLAMA_QUOTA_MESSAGE}


def test_a_quota_fault_carries_no_retry_advice() -> None:
    fault = Fault.rate_limited(5.0, quota=True)
    assert fault.quota_exhausted
    assert fault.retry_after is None
    assert fault.status == 429


@dialects()
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_the_adapter_reads_a_spent_quota_as_not_retryable(
    name: str, served: tuple[StubServer, HTTPProvider], streaming: bool
) -> None:
    stub, provider = served
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    error = await call(provider, streaming=streaming)
    assert isinstance(error, RateLimited)
    assert error.quota_exhausted
    assert not error.retryable
    assert error.retry_after is None
    assert error.status == (402 if name == "openrouter" else 429)


@dialects()
async def test_retry_gives_up_on_a_spent_quota_at_once(
    name: str, served: tuple[StubServer, HTTPProvider]
) -> None:
    stub, provider = served
    stub.script(*[StubReply(fault=Fault.rate_limited(quota=True))] * 3)
    with trio.move_on_after(30):  # a retrying adapter would wait its backoff
        with pytest.raises(RateLimited) as caught:
            await Retry(provider, max_attempts=3, jitter=0.0).chat(REQUEST)
        assert caught.value.quota_exhausted
    assert len(stub.requests) == 1


@dialects()
async def test_a_plain_rate_limit_stays_retryable(
    name: str, served: tuple[StubServer, HTTPProvider]
) -> None:
    stub, provider = served
    stub.script(StubReply(fault=Fault.rate_limited(0.25)))
    error = await call(provider, streaming=False)
    assert isinstance(error, RateLimited)
    assert not error.quota_exhausted
    assert error.retryable
    assert error.retry_after == pytest.approx(0.25)
