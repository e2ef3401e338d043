"""OpenTelemetry traces: the spans of model calls, agent turns, tool calls and asks, the
trace context through mailboxes and across nodes, content capture, and the library
without OpenTelemetry."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tinyagents.tracing
from tinyagents import Actor, ActorSystem, Context, _tracing
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.errors import ActorFailed, AskTimeout, RateLimited
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, Usage
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.team import Pipeline
from tinyagents.testing import (
    AnthropicStub,
    Fault,
    MistralStub,
    OllamaStub,
    OpenAIStub,
    OpenRouterStub,
    ScriptedProvider,
    StubReply,
)
from tinyagents.tool import tool
from tinyagents.transport import Transport

GUARD = 20  # seconds: a test that hangs fails instead (no timing is asserted)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """tinyagents' spans, into memory."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tinyagents.tracing.instrument(provider)
    yield spans
    tinyagents.tracing.uninstrument()
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [span for span in exporter.get_finished_spans() if span.name == name]
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def request(text: str = "hello there") -> ChatRequest:
    return ChatRequest("model-x", [Message.system("Be brief."), Message.user(text)])


# -- model calls -------------------------------------------------------------------------


async def test_a_scripted_call_is_a_chat_span_with_the_genai_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    provider = ScriptedProvider([ChatResponse(Message.assistant("hi"), Usage(7, 3), "stop", "m-1")])
    response = await provider.chat(request())
    assert response.message.content == "hi"
    span = named(exporter, "chat model-x")
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "tinyagents.scripted",
        "gen_ai.request.model": "model-x",
        "tinyagents.provider.name": "scripted",
        "gen_ai.response.model": "m-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 3,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_an_unknown_usage_sets_no_token_attributes(exporter: InMemorySpanExporter) -> None:
    provider = ScriptedProvider([ChatResponse(Message.assistant("hi"), Usage.unknown())])
    await provider.chat(request())
    attributes = dict(named(exporter, "chat model-x").attributes or {})
    assert "gen_ai.usage.input_tokens" not in attributes
    assert "gen_ai.usage.output_tokens" not in attributes
    assert attributes["gen_ai.response.model"] == "model-x"  # the request's, as none was said


async def test_a_failed_call_sets_error_type_and_the_error_status(
    exporter: InMemorySpanExporter,
) -> None:
    provider = ScriptedProvider([RateLimited("scripted", "slow down", retry_after=1.0)])
    with pytest.raises(RateLimited):
        await provider.chat(request())
    span = named(exporter, "chat model-x")
    assert dict(span.attributes or {})["error.type"] == "RateLimited"
    assert span.status.status_code is StatusCode.ERROR
    assert "gen_ai.response.model" not in dict(span.attributes or {})


STUBS = [
    (OpenAI, OpenAIStub, "openai"),
    (Anthropic, AnthropicStub, "anthropic"),
    (Mistral, MistralStub, "mistral_ai"),
    (Ollama, OllamaStub, "ollama"),
    (OpenRouter, OpenRouterStub, "openrouter"),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("adapter", "stub_class", "system"), STUBS, ids=[s[2] for s in STUBS])
async def test_each_http_provider_makes_a_chat_span(
    exporter: InMemorySpanExporter,
    adapter: type[Any],
    stub_class: type[Any],
    system: str,
    streaming: bool,
) -> None:
    async with stub_class() as stub, adapter(api_key="k-test", base_url=stub.base_url) as provider:
        stub.script(StubReply(text="Hi there, friend.", usage=Usage(9, 4), chunk_size=4))
        if streaming:
            send, receive = trio.open_memory_channel[Chunk](math.inf)
            await provider.chat(request(), stream=send)
            chunks = [chunk async for chunk in receive]
            assert chunks[-1].finish_reason == "stop"
        else:
            await provider.chat(request())
        span = named(exporter, "chat model-x")
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == system
        assert attributes["gen_ai.request.model"] == "model-x"
        assert attributes["gen_ai.response.model"]
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["gen_ai.usage.input_tokens"] == 9
        assert attributes["gen_ai.usage.output_tokens"] == 4
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == int(stub.base_url.rsplit(":", 1)[1].split("/")[0])
        assert "error.type" not in attributes


async def test_an_http_error_sets_error_type(exporter: InMemorySpanExporter) -> None:
    async with OpenAIStub() as stub, OpenAI(api_key="k-test", base_url=stub.base_url) as provider:
        stub.script(StubReply(fault=Fault.rate_limited(0.25)))
        with pytest.raises(RateLimited):
            await provider.chat(request())
    span = named(exporter, "chat model-x")
    assert dict(span.attributes or {})["error.type"] == "RateLimited"
    assert span.status.status_code is StatusCode.ERROR


# -- agents, tools and asks ------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


@tool
def broken(city: str) -> str:
    """Always fails."""
    raise ConnectionError("no route")


def weather_script() -> list[Any]:
    calls = [ToolCall("call-1", "get_weather", {"city": "Paris"})]
    return [
        ChatResponse(Message.assistant("", calls), Usage(10, 5), "tool_calls"),
        ChatResponse(Message.assistant("Sunny, 21 C."), Usage(20, 4), "stop"),
    ]


async def test_an_agent_turn_is_invoke_agent_over_its_chats_and_tool_calls(
    exporter: InMemorySpanExporter,
) -> None:
    provider = ScriptedProvider(weather_script())
    async with ActorSystem("traced") as system:
        bot = await system.spawn(
            Agent("weather-bot", provider, "model-x", tools=[get_weather]), name="bot"
        )
        response = await bot.ask(Prompt("Weather in Paris?"), timeout=10)
    assert response.text == "Sunny, 21 C."
    spans = exporter.get_finished_spans()
    ask = named(exporter, "ask /user/bot")
    turn = named(exporter, "invoke_agent bot")
    execute = named(exporter, "execute_tool get_weather")
    chats = [span for span in spans if span.name == "chat model-x"]
    assert len(chats) == 2
    assert {trace_id(span) for span in spans} == {trace_id(ask)}
    assert ask.parent is None
    assert parent_id(turn) == span_id(ask)
    assert all(parent_id(chat) == span_id(turn) for chat in chats)
    assert parent_id(execute) == span_id(turn)
    assert chats[0].end_time <= execute.start_time <= execute.end_time <= chats[1].start_time
    assert ask.kind is SpanKind.INTERNAL
    assert dict(ask.attributes or {})["tinyagents.actor.path"] == "/user/bot"
    assert dict(turn.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "bot",
        "gen_ai.agent.id": "weather-bot",
        "gen_ai.request.model": "model-x",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 9,
    }
    assert dict(execute.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call-1",
    }


async def test_a_failing_tool_sets_error_type_on_its_span(exporter: InMemorySpanExporter) -> None:
    calls = [ToolCall("call-9", "broken", {"city": "Oslo"})]
    provider = ScriptedProvider([ChatResponse(Message.assistant("", calls)), "Sorry."])
    async with ActorSystem("traced") as system:
        bot = await system.spawn(Agent("bot", provider, "model-x", tools=[broken]), name="bot")
        assert (await bot.ask("Weather?", timeout=10)).text == "Sorry."
    span = named(exporter, "execute_tool broken")
    assert dict(span.attributes or {})["error.type"] == "ConnectionError"
    assert span.status.status_code is StatusCode.ERROR


async def test_a_failed_turn_sets_error_type_on_the_turn_and_the_ask(
    exporter: InMemorySpanExporter,
) -> None:
    provider = ScriptedProvider([RateLimited("scripted", "slow down")])
    async with ActorSystem("traced") as system:
        bot = await system.spawn(Agent("bot", provider, "model-x"), name="bot")
        with pytest.raises(RateLimited):
            await bot.ask("hi", timeout=10)
    for name in ("chat model-x", "invoke_agent bot", "ask /user/bot"):
        span = named(exporter, name)
        assert dict(span.attributes or {})["error.type"] == "RateLimited", name
        assert span.status.status_code is StatusCode.ERROR


class Boom(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "sleep":
            await trio.sleep_forever()
        raise ValueError("boom")


async def test_an_ask_span_ends_with_the_failure_or_the_timeout(
    exporter: InMemorySpanExporter, autojump_clock: trio.testing.MockClock
) -> None:
    async with ActorSystem("traced") as system:
        ref = await system.spawn(Boom, name="boom")
        with pytest.raises(ActorFailed):
            await ref.ask("fail", timeout=10)
        with pytest.raises(AskTimeout):
            await ref.ask("sleep", timeout=5)
        await ref.stop(grace=0)
    failed, timed_out = [s for s in exporter.get_finished_spans() if s.name == "ask /user/boom"]
    assert dict(failed.attributes or {})["error.type"] == "ActorFailed"
    assert dict(timed_out.attributes or {})["error.type"] == "AskTimeout"
    assert failed.status.status_code is timed_out.status.status_code is StatusCode.ERROR


async def test_an_ask_inside_a_span_is_its_child(exporter: InMemorySpanExporter) -> None:
    class Echo(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            return message

    tracer = trace.get_tracer("tests", tracer_provider=exporter_provider(exporter))
    async with ActorSystem("traced") as system:
        ref = await system.spawn(Echo, name="echo")
        with tracer.start_as_current_span("request") as root:
            assert await ref.ask("hi", timeout=10) == "hi"
    ask = named(exporter, "ask /user/echo")
    assert parent_id(ask) == root.get_span_context().span_id
    assert trace_id(ask) == root.get_span_context().trace_id


async def test_a_pipeline_of_two_agents_is_one_trace(exporter: InMemorySpanExporter) -> None:
    first = ScriptedProvider(["A draft."])
    second = ScriptedProvider(["A polished draft."])
    async with ActorSystem("traced") as system:
        writer = await system.spawn(Agent("writer", first, "model-a"), name="writer")
        editor = await system.spawn(Agent("editor", second, "model-b"), name="editor")
        team = await system.spawn(Pipeline([writer, editor]), name="team")
        response = await team.ask(Prompt("Write."), timeout=10)
    assert isinstance(response, Response)
    assert response.text == "A polished draft."
    spans = exporter.get_finished_spans()
    assert len({trace_id(span) for span in spans}) == 1
    root = named(exporter, "ask /user/team")
    team_turn = named(exporter, "invoke_agent team")
    assert root.parent is None
    assert parent_id(team_turn) == span_id(root)
    for stage, model in (("writer", "model-a"), ("editor", "model-b")):
        ask = named(exporter, f"ask /user/{stage}")
        turn = named(exporter, f"invoke_agent {stage}")
        chat = named(exporter, f"chat {model}")
        assert parent_id(ask) == span_id(team_turn)
        assert parent_id(turn) == span_id(ask)
        assert parent_id(chat) == span_id(turn)


async def test_an_ask_across_nodes_continues_the_trace_on_the_remote_side(
    exporter: InMemorySpanExporter,
) -> None:
    provider = ScriptedProvider(["Hello from the other node."])
    with trio.fail_after(GUARD):
        async with (
            ActorSystem("a", shutdown_timeout=2) as system_a,
            Transport(system_a),
            ActorSystem("b", shutdown_timeout=2) as system_b,
            Transport(system_b) as transport_b,
        ):
            await system_b.spawn(Agent("bot", provider, "model-x"), name="bot")
            host, port = transport_b.address
            bot = system_a.ref_for(f"tinyagents://{transport_b.node}@{host}:{port}/user/bot")
            response = await bot.ask(Prompt("hi"), timeout=10)
    assert response.text == "Hello from the other node."
    ask = named(exporter, "ask /user/bot")
    turn = named(exporter, "invoke_agent bot")
    chat = named(exporter, "chat model-x")
    assert ask.kind is SpanKind.CLIENT
    assert dict(ask.attributes or {})["tinyagents.actor.node"] == "b"
    assert ask.parent is None
    assert parent_id(turn) == span_id(ask)  # carried by the envelope's traceparent
    assert turn.parent is not None
    assert turn.parent.is_remote
    assert parent_id(chat) == span_id(turn)
    assert trace_id(turn) == trace_id(ask)


async def test_tracing_turned_off_makes_no_spans_and_carries_no_context() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tinyagents.tracing.instrument(provider)
    assert tinyagents.tracing.is_instrumented()
    tinyagents.tracing.uninstrument()
    assert not tinyagents.tracing.is_instrumented()
    seen: list[Any] = []

    class Looker(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            seen.append(ctx._cell.current_reply._trace)  # type: ignore[union-attr]
            return message

    async with ActorSystem("quiet") as system:
        bot = await system.spawn(Agent("bot", ScriptedProvider(["hi"]), "m"), name="bot")
        await bot.ask("hello", timeout=10)
        looker = await system.spawn(Looker, name="looker")
        await looker.ask("x", timeout=10)
    assert seen == [None]
    assert spans.get_finished_spans() == ()


# -- content -------------------------------------------------------------------------------


CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


async def turn_with_tool(system_prompt: str = "Be brief.") -> None:
    provider = ScriptedProvider(weather_script())
    async with ActorSystem("traced") as system:
        bot = await system.spawn(
            Agent("bot", provider, "model-x", system=system_prompt, tools=[get_weather]),
            name="bot",
        )
        await bot.ask(Prompt("Weather in Paris?"), timeout=10)


async def test_contents_are_absent_by_default(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tinyagents.tracing.CAPTURE_CONTENT_ENV, raising=False)
    assert not tinyagents.tracing.capture_content()
    await turn_with_tool()
    for span in exporter.get_finished_spans():
        assert not CONTENT_KEYS & set(span.attributes or {}), span.name
        assert not span.events
        for value in (span.attributes or {}).values():
            assert "Paris" not in str(value), span.name


async def test_contents_are_recorded_when_opted_in(exporter: InMemorySpanExporter) -> None:
    tinyagents.tracing.instrument(exporter_provider(exporter), capture_content=True)
    await turn_with_tool()
    first, second = [s for s in exporter.get_finished_spans() if s.name == "chat model-x"]
    attributes = dict(first.attributes or {})
    assert '"Be brief."' in str(attributes["gen_ai.system_instructions"])
    assert "Weather in Paris?" in str(attributes["gen_ai.input.messages"])
    assert '"tool_call"' in str(attributes["gen_ai.output.messages"])
    later = dict(second.attributes or {})
    assert '"tool_call_response"' in str(later["gen_ai.input.messages"])
    assert "Sunny, 21 C." in str(later["gen_ai.output.messages"])
    execute = dict(named(exporter, "execute_tool get_weather").attributes or {})
    assert execute["gen_ai.tool.call.arguments"] == '{"city": "Paris"}'
    assert execute["gen_ai.tool.call.result"] == "Sunny in Paris."
    turn = dict(named(exporter, "invoke_agent bot").attributes or {})
    assert "Weather in Paris?" in str(turn["gen_ai.input.messages"])
    assert "Sunny, 21 C." in str(turn["gen_ai.output.messages"])


async def test_the_environment_variable_opts_in(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tinyagents.tracing.CAPTURE_CONTENT_ENV, "1")
    assert tinyagents.tracing.capture_content()
    await turn_with_tool()
    execute = dict(named(exporter, "execute_tool get_weather").attributes or {})
    assert execute["gen_ai.tool.call.result"] == "Sunny in Paris."
    # an explicit False wins over the environment
    tinyagents.tracing.instrument(exporter_provider(exporter), capture_content=False)
    assert not tinyagents.tracing.capture_content()


def exporter_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


# -- metrics from the same place -----------------------------------------------------------


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_an_agents_calls_are_counted_in_the_systems_metrics(
    traced: bool, request: pytest.FixtureRequest
) -> None:
    if traced:
        request.getfixturevalue("exporter")
    provider = ScriptedProvider(weather_script())
    async with ActorSystem("counted") as system:
        bot = await system.spawn(Agent("bot", provider, "model-x", tools=[get_weather]))
        await bot.ask("Weather in Paris?", timeout=10)
        metrics = system.metrics()
    assert metrics.value("tinyagents_llm_calls_total", provider="scripted") == 2
    assert metrics.value("tinyagents_llm_calls_total", provider="scripted", model="model-x") == 2
    assert metrics.value("tinyagents_llm_tokens_total", provider="scripted", type="input") == 30
    assert metrics.value("tinyagents_llm_tokens_total", provider="scripted", type="output") == 9
    assert metrics.value("tinyagents_llm_duration_seconds", provider="scripted") == 2
    assert metrics.value("tinyagents_llm_errors_total") == 0


async def test_a_failed_call_is_counted_as_an_error() -> None:
    provider = ScriptedProvider([RateLimited("scripted", "slow down")])
    async with ActorSystem("counted") as system:
        bot = await system.spawn(Agent("bot", provider, "model-x"))
        with pytest.raises(RateLimited):
            await bot.ask("hi", timeout=10)
        metrics = system.metrics()
    assert metrics.value("tinyagents_llm_errors_total", provider="scripted") == 1
    assert metrics.value("tinyagents_llm_errors_total", error="RateLimited") == 1


# -- without OpenTelemetry -----------------------------------------------------------------


@pytest.fixture
def without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the API were not installed: its import fails."""
    tinyagents.tracing.uninstrument()
    monkeypatch.setattr(_tracing, "_loaded", False)
    for name in list(sys.modules):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    yield
    tinyagents.tracing.uninstrument()


@pytest.mark.usefixtures("without_opentelemetry")
async def test_without_opentelemetry_everything_works_and_instrument_says_why() -> None:
    assert not tinyagents.tracing.available()
    with pytest.raises(ImportError, match=r"tinyagents\[otel\]"):
        tinyagents.tracing.instrument()
    assert not tinyagents.tracing.is_instrumented()
    provider = ScriptedProvider(weather_script())
    async with ActorSystem("plain") as system:
        bot = await system.spawn(Agent("bot", provider, "model-x", tools=[get_weather]))
        response = await bot.ask("Weather in Paris?", timeout=10)
        team = await system.spawn(Pipeline([bot]))
        provider.add("Again.")
        assert (await team.ask("Once more", timeout=10)).text == "Again."
        assert system.metrics().value("tinyagents_llm_calls_total") == 3
    assert response.text == "Sunny, 21 C."


def test_importing_tinyagents_imports_no_opentelemetry() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None   # not installed
        import trio
        import tinyagents, tinyagents.agent, tinyagents.team, tinyagents.tracing
        from tinyagents.testing import ScriptedProvider

        async def main():
            async with tinyagents.ActorSystem("plain") as system:
                bot = await system.spawn(
                    tinyagents.agent.Agent("bot", ScriptedProvider(["ok"]), "m")
                )
                assert (await bot.ask("hi", timeout=10)).text == "ok"

        trio.run(main)
        assert not tinyagents.tracing.available()
        print("fine")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fine"
