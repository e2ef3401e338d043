"""Plain exceptions out of every ``async with`` of tinyagents.testing: a ``ValueError``
raised in the block is caught by ``except ValueError`` (the very exception, not an
exception group), a ``KeyboardInterrupt`` stays a ``KeyboardInterrupt``, and the service
is stopped either way. (LlamaServer: ``test_llama.py``; the process helper:
``test_process.py``.)"""

from __future__ import annotations

import shutil

import httpx
import pytest
import trio

from tinyagents.testing import (
    AnthropicStub,
    MistralStub,
    OllamaStub,
    OpenAIStub,
    OpenRouterStub,
    RecordedRequest,
    SerfAgent,
    StubReply,
    StubServer,
)

STUBS = [OpenAIStub, OpenRouterStub, MistralStub, AnthropicStub, OllamaStub]
needs_serf = pytest.mark.skipif(shutil.which("serf") is None, reason="serf is not installed")


async def refused(url: str) -> bool:
    async with httpx.AsyncClient() as client:
        try:
            await client.get(url)
        except httpx.ConnectError:
            return True
    return False


@pytest.mark.parametrize("stub_class", STUBS)
async def test_a_stub_lets_the_body_error_out_as_itself(stub_class: type[StubServer]) -> None:
    error = ValueError("from the body")
    caught: ValueError | None = None
    try:
        async with stub_class() as stub:
            url = stub.url
            raise error
    except ValueError as exc:  # what a caller writes: no except* needed
        caught = exc
    assert caught is error
    assert not isinstance(caught.__context__, BaseExceptionGroup)
    assert await refused(url)  # the server stopped


@pytest.mark.parametrize("stub_class", STUBS)
async def test_a_stub_keeps_keyboard_interrupt(stub_class: type[StubServer]) -> None:
    with pytest.raises(KeyboardInterrupt):
        async with stub_class():
            await trio.lowlevel.checkpoint()
            raise KeyboardInterrupt


@pytest.mark.parametrize("stub_class", STUBS)
async def test_a_stub_stopped_in_the_middle_of_a_stream(stub_class: type[StubServer]) -> None:
    """The block fails while the stub is streaming to a client: still the plain error."""
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    path = {AnthropicStub: "/v1/messages", OllamaStub: "/api/chat"}.get(
        stub_class, "/chat/completions"
    )
    with pytest.raises(ValueError, match="mid-stream"):
        async with stub_class() as stub, httpx.AsyncClient() as client:
            stub.script(StubReply(text="a long answer " * 20, chunk_size=2, delay=0.01))
            async with client.stream("POST", stub.base_url + path, json=body) as reply:
                async for _ in reply.aiter_bytes():
                    raise ValueError("mid-stream")


async def test_a_failing_responder_is_a_500_not_a_crash() -> None:
    def broken(request: RecordedRequest) -> StubReply:
        raise ZeroDivisionError("bug in a responder")

    async with OllamaStub(responder=broken) as stub, httpx.AsyncClient() as client:
        reply = await client.post(stub.base_url + "/api/chat", json={"model": "m"})
        assert reply.status_code == 500
        assert "ZeroDivisionError" in reply.json()["error"]
        assert (await client.get(stub.base_url + "/")).text == "Ollama is running"


async def test_a_stub_is_not_opened_twice() -> None:
    stub = OpenAIStub()
    async with stub:
        with pytest.raises(RuntimeError, match="already serving"):
            await stub.__aenter__()


@needs_serf
async def test_a_serf_agent_lets_the_body_error_out_as_itself() -> None:
    error = ValueError("from the body")
    agent = SerfAgent("plain-errors")
    with pytest.raises(ValueError, match="from the body") as info:
        async with agent:
            raise error
    assert info.value is error
    assert agent.pid is not None
    assert agent.log_tail()  # its output is still there
    with pytest.raises(KeyboardInterrupt):
        async with SerfAgent("plain-interrupt"):
            raise KeyboardInterrupt


@needs_serf
def test_a_blocking_serf_agent_lets_the_body_error_out_as_itself() -> None:
    error = ValueError("from the body")
    with pytest.raises(ValueError, match="from the body") as info:  # noqa: SIM117
        with SerfAgent("plain-blocking"):
            raise error
    assert info.value is error
