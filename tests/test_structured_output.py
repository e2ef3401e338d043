"""Agents with an ``output_type``: the schema each provider is sent, the answer checked
and structured, retries with the problems shown to the model, and the typed error.

The provider tests run each adapter against its stub server, which speaks the real wire
format (the official SDKs prove the stubs in tests/llm)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, NotRequired, TypedDict

import attrs
import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.errors import OutputValidationError
from tinyagents.llm import ChatRequest, ChatResponse, Message, OutputFormat, Provider, ToolCall
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.testing import ScriptedProvider, StubReply
from tinyagents.testing._anthropic_stub import AnthropicStub
from tinyagents.testing._ollama_stub import OllamaStub
from tinyagents.testing._openai_stub import MistralStub, OpenAIStub, OpenRouterStub
from tinyagents.tool import tool


@attrs.frozen
class City:
    """A city and what the weather is there."""

    name: str
    population: int
    sky: Literal["sunny", "cloudy", "rain"] = "sunny"


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = ""


# the functional form: with string annotations (this module's __future__ import) a
# class-form TypedDict cannot tell its NotRequired keys at runtime, for cattrs neither
Movie = TypedDict("Movie", {"title": str, "year": int, "director": NotRequired[str]})  # noqa: UP013


PARIS = {"name": "Paris", "population": 2100000, "sky": "rain"}


async def ask(agent: Agent, text: str = "Tell me about Paris.") -> Response:
    async with ActorSystem("structured") as system:
        ref = await system.spawn(agent, name="bot")
        response = await ref.ask(Prompt(text), timeout=30)
        assert isinstance(response, Response)
        return response


# -- the schema ------------------------------------------------------------------------


def test_an_attrs_output_type_becomes_a_strict_object_schema_when_it_can() -> None:
    agent = Agent("bot", ScriptedProvider(), "m", output_type=City)
    output = agent._output
    assert output is not None
    assert output.format.name == "City"
    assert output.format.description == "A city and what the weather is there."
    schema = output.format.schema
    assert schema["required"] == ["name", "population"]
    assert schema["properties"]["sky"] == {
        "type": "string",
        "enum": ["sunny", "cloudy", "rain"],
        "default": "sunny",
    }
    assert not output.format.strict  # "sky" may be left out


def test_dataclasses_typed_dicts_and_lists_have_schemas() -> None:
    point = Agent("bot", ScriptedProvider(), "m", output_type=Point)._output
    assert point is not None
    assert point.format.schema["required"] == ["x", "y"]
    movie = Agent("bot", ScriptedProvider(), "m", output_type=Movie)._output
    assert movie is not None
    assert movie.format.schema["required"] == ["title", "year"]
    assert set(movie.format.schema["properties"]) == {"title", "year", "director"}
    cities = Agent("bot", ScriptedProvider(), "m", output_type=list[str])._output
    assert cities is not None
    assert cities.format.schema == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"type": "string"}}},
        "required": ["value"],
        "additionalProperties": False,
    }
    assert cities.format.strict


def test_an_output_type_without_a_schema_or_clashing_with_a_tool_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported output_type"):
        Agent("bot", ScriptedProvider(), "m", output_type=object)

    @tool
    def City(name: str) -> str:
        """Look a city up."""
        return name

    with pytest.raises(ValueError, match="'City'"):
        Agent("bot", ScriptedProvider(), "m", tools=[City], output_type=globals()["City"])
    with pytest.raises(ValueError, match="output_retries"):
        Agent("bot", ScriptedProvider(), "m", output_type=Point, output_retries=-1)


# -- the turn ----------------------------------------------------------------------------


async def test_the_answer_is_structured_into_the_output_type() -> None:
    provider = ScriptedProvider([json.dumps(PARIS)])
    response = await ask(Agent("bot", provider, "m", output_type=City))
    assert response.output == City("Paris", 2100000, "rain")
    assert json.loads(response.text) == PARIS
    assert provider.requests[0].output is not None
    assert provider.requests[0].output.name == "City"


@pytest.mark.parametrize(
    ("output_type", "answer", "expected"),
    [
        (Point, '```json\n{"x": 1, "y": 2.5}\n```', Point(1.0, 2.5)),
        (Movie, '{"title": "Alien", "year": 1979}', {"title": "Alien", "year": 1979}),
        (list[int], '{"value": [1, 2, 3]}', [1, 2, 3]),
    ],
)
async def test_dataclasses_typed_dicts_and_wrapped_types_come_back_typed(
    output_type: Any, answer: str, expected: Any
) -> None:
    response = await ask(Agent("bot", ScriptedProvider([answer]), "m", output_type=output_type))
    assert response.output == expected


async def test_a_wrong_answer_goes_back_with_its_problems_then_succeeds() -> None:
    provider = ScriptedProvider(['{"name": "Paris", "population": "many"}', json.dumps(PARIS)])
    response = await ask(Agent("bot", provider, "m", output_type=City))
    assert response.output == City("Paris", 2100000, "rain")
    assert response.rounds == 2
    feedback = provider.requests[1].messages[-1]
    assert feedback.role == "user"
    assert "population" in feedback.content
    assert "integer" in feedback.content


async def test_an_answer_that_never_fits_fails_with_the_raw_text() -> None:
    provider = ScriptedProvider(["not json", '{"name": 1}', '{"name": "Paris"}'])
    with pytest.raises(OutputValidationError) as failure:
        await ask(Agent("bot", provider, "m", output_type=City, output_retries=2))
    assert failure.value.raw == '{"name": "Paris"}'
    assert failure.value.attempts == 3
    assert "population" in failure.value.problems
    assert len(provider.requests) == 3


async def test_no_retries_means_the_first_wrong_answer_fails() -> None:
    provider = ScriptedProvider(["[1, 2]"])
    with pytest.raises(OutputValidationError, match="after 1 attempt:"):
        await ask(Agent("bot", provider, "m", output_type=City, output_retries=0))


async def test_tools_run_before_the_structured_answer() -> None:
    @tool
    def population(city: str) -> int:
        """How many people live in a city."""
        return 2100000

    provider = ScriptedProvider(
        [
            ChatResponse(Message.assistant("", [ToolCall("c1", "population", {"city": "Paris"})])),
            json.dumps(PARIS),
        ]
    )
    response = await ask(Agent("bot", provider, "m", tools=[population], output_type=City))
    assert response.output == City("Paris", 2100000, "rain")
    assert response.tool_calls == 1


def _answer_call(arguments: dict[str, Any]) -> ChatResponse:
    return ChatResponse(
        Message.assistant("", [ToolCall("t1", "City", arguments)]), finish_reason="tool_calls"
    )


async def test_an_answer_given_as_a_call_of_the_output_tool_is_read_and_kept_as_text() -> None:
    # Anthropic's way: the model calls the tool named after the output type
    provider = ScriptedProvider([_answer_call({"name": "Paris"}), _answer_call(PARIS)])
    response = await ask(Agent("bot", provider, "m", output_type=City))
    assert response.output == City("Paris", 2100000, "rain")
    assert response.tool_calls == 0  # the answer is not a tool call run
    assert response.message.tool_calls == ()
    assert json.loads(response.text) == PARIS
    retry = provider.requests[1].messages
    assert retry[-1].role == "tool"
    assert retry[-1].tool_call_id == "t1"
    assert "population" in retry[-1].content


# -- each provider, against its stub --------------------------------------------------------

ProviderFactory = Callable[[Any], Provider]


@asynccontextmanager
async def _served(stub_type: type, make: ProviderFactory) -> AsyncIterator[tuple[Any, Provider]]:
    async with stub_type() as stub, make(stub) as provider:  # type: ignore[attr-defined]
        yield stub, provider


DIALECTS: list[tuple[str, type, ProviderFactory]] = [
    ("openai", OpenAIStub, lambda s: OpenAI(api_key="k", base_url=s.base_url)),
    ("openrouter", OpenRouterStub, lambda s: OpenRouter(api_key="k", base_url=s.base_url)),
    ("mistral", MistralStub, lambda s: Mistral(api_key="k", base_url=s.base_url)),
    ("ollama", OllamaStub, lambda s: Ollama(base_url=s.base_url)),
    ("anthropic", AnthropicStub, lambda s: Anthropic(api_key="k", base_url=s.base_url)),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("dialect", "stub_type", "make"), DIALECTS, ids=[d[0] for d in DIALECTS])
async def test_each_provider_is_sent_the_schema_its_way_and_answers_typed(
    dialect: str, stub_type: type, make: ProviderFactory, stream: bool
) -> None:
    async with _served(stub_type, make) as (stub, provider):
        stub.script(StubReply(text=json.dumps(PARIS)))
        agent = Agent("bot", provider, "model-1", output_type=City)
        async with ActorSystem("structured") as system:
            ref = await system.spawn(agent, name="bot")
            if stream:
                send, receive = trio.open_memory_channel[Any](100)
                async with receive:
                    response = await ref.ask(Prompt("Paris?", stream=send), timeout=30)
            else:
                response = await ref.ask(Prompt("Paris?"), timeout=30)
        assert response.output == City("Paris", 2100000, "rain")
        body = stub.requests[-1].json
        schema = agent._output.format.schema  # type: ignore[union-attr]
        if dialect == "ollama":
            assert body["format"] == schema
        elif dialect == "anthropic":
            assert body["tool_choice"] == {"type": "tool", "name": "City"}
            assert body["tools"][-1] == {
                "name": "City",
                "description": "A city and what the weather is there.",
                "input_schema": schema,
            }
        else:
            assert body["response_format"] == {
                "type": "json_schema",
                "json_schema": {
                    "name": "City",
                    "schema": schema,
                    "strict": False,
                    "description": "A city and what the weather is there.",
                },
            }


def test_an_output_format_reports_whether_it_is_strict() -> None:
    loose = OutputFormat("x", {"type": "object", "properties": {"a": {}}, "required": []})
    assert not loose.strict
    strict = OutputFormat(
        "x",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
    )
    assert strict.strict
    with pytest.raises(TypeError, match="OutputFormat"):
        ChatRequest("m", [Message.user("hi")], output={"type": "object"})  # type: ignore[arg-type]


async def test_a_pipeline_answers_with_the_typed_output_of_its_last_stage() -> None:
    from tinyagents.team import Pipeline

    writer = Agent("writer", ScriptedProvider(["Paris is big and rainy."]), "m")
    extractor = Agent("extractor", ScriptedProvider([json.dumps(PARIS)]), "m", output_type=City)
    async with ActorSystem("structured") as system:
        members = [await system.spawn(writer), await system.spawn(extractor)]
        team = await system.spawn(Pipeline(members), name="pipe")
        response = await team.ask(Prompt("Paris?"), timeout=30)
    assert response.output == City("Paris", 2100000, "rain")
    assert [step.output for step in response.steps] == [None, City("Paris", 2100000, "rain")]
