"""The public constructors of tinyagents.testing say what is wrong, at once.

A wrong type or value raises ``TypeError`` / ``ValueError`` (``InvalidAddress``, a
``ValueError``, for addresses) when the object is made, naming the expected form, instead
of failing later and obscurely (a 500 "stub failure", an ``AttributeError`` inside an
adapter, a Serf agent that dies at start). Also: a ScriptedProvider exception step is a
fresh exception on every use after the first, so middleware notes do not pile up.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
import trio.testing

from tinyagents.errors import InvalidAddress, RateLimited, ServerError
from tinyagents.llm import ChatRequest, ChatResponse, Fallback, Message, Retry, ToolCall, Usage
from tinyagents.testing import (
    Fault,
    FaultKind,
    MistralStub,
    OllamaStub,
    OpenAIStub,
    ScriptedProvider,
    SerfAgent,
    StubReply,
)
from tinyagents.testing._ports import check_host, check_port
from tinyagents.testing._serf import _targets

REQUEST = ChatRequest("m", [Message.user("hi")])

# -- Fault ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Fault("rate_limited"), TypeError, "kind"),
        (lambda: Fault(FaultKind.STATUS, 42), ValueError, r"status must be an HTTP status"),
        (lambda: Fault(FaultKind.STATUS, "500"), ValueError, "status must be an HTTP status"),
        (lambda: Fault(FaultKind.STATUS, 500, 7), TypeError, "message"),
        (
            lambda: Fault.rate_limited(-1),
            ValueError,
            r"retry_after \(None or seconds\) must be a number of seconds >= 0",
        ),
        (lambda: Fault.rate_limited(math.nan), ValueError, "retry_after"),
        (lambda: Fault.overloaded("soon"), TypeError, "retry_after"),  # type: ignore[arg-type]
        (lambda: Fault.server_error(404), ValueError, "server_error takes a 5xx status"),
        (lambda: Fault.status_code(200), ValueError, r"error status \(400\.\.599\)"),
        (lambda: Fault.truncated(-1), ValueError, "after must be an int >= 0"),
        (lambda: Fault.truncated(1.5), ValueError, "after must be an int >= 0"),  # type: ignore[arg-type]
        (lambda: Fault.truncated(cut_connection=1), TypeError, "cut_connection"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_fault_fails_when_made(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_good_faults_are_unchanged() -> None:
    assert Fault.rate_limited(0.25).retry_after == 0.25
    assert Fault.status_code(402, "pay").status == 402
    assert Fault(FaultKind.ERROR_IN_STREAM, 502, "x", after=0).after == 0
    assert Fault.server_error(503).status == 503


# -- StubReply ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": None}, TypeError, "text"),
        ({"tool_calls": ToolCall("", "f", {})}, TypeError, "wrap one call in a list"),
        (
            {"tool_calls": [{"name": "f", "arguments": {}}]},
            TypeError,
            "must hold ToolCall objects",
        ),
        ({"tool_calls": "f"}, TypeError, "sequence of ToolCall"),
        ({"usage": (1, 2)}, TypeError, "usage"),
        ({"finish_reason": 1}, TypeError, "finish_reason"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be an int >= 1"),
        ({"delay": -0.1}, ValueError, "delay must be a number of seconds >= 0"),
        ({"delay": None}, TypeError, "delay must be a number of seconds, not None"),
        ({"fault": "rate_limited"}, TypeError, "fault"),
    ],
)
def test_a_bad_stub_reply_fails_when_made(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        StubReply(**kwargs)


def test_a_good_stub_reply() -> None:
    reply = StubReply(text="abc", tool_calls=[ToolCall("", "f", {})], usage=Usage(1, 2))
    assert reply.tool_calls == (ToolCall("", "f", {}),)
    assert reply.pieces() == ["abc"]


# -- stub servers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"port": "8001"}, TypeError, r"port must be an int in 0\.\.65535"),
        ({"port": -1}, ValueError, r"port must be in 0\.\.65535"),
        ({"port": 65536}, ValueError, r"port must be in 0\.\.65535"),
        ({"host": "127.0.0.1:8001"}, ValueError, r"has a port in it; give the host alone"),
        ({"host": ""}, ValueError, "must be a host name or IP address"),
        ({"host": ("127.0.0.1", 8001)}, TypeError, "host must be a str"),
        ({"responder": "echo"}, TypeError, "responder must be a function"),
    ],
)
def test_a_stub_checks_its_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        OpenAIStub(**kwargs)


def test_ollama_stub_models_must_be_names() -> None:
    with pytest.raises(TypeError, match=r"sequence of model names such as \['llama3.2:latest'\]"):
        OllamaStub(models="llama3.2")
    with pytest.raises(TypeError, match="non-empty str names"):
        OllamaStub(models=["llama3.2", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="tool_call_ids must be a bool"):
        OllamaStub(tool_call_ids="yes")  # type: ignore[arg-type]


def test_script_takes_replies_or_strings_only() -> None:
    stub = MistralStub()
    with pytest.raises(TypeError, match="script\\(\\) takes StubReply objects or strings"):
        stub.script("fine", {"text": "not a reply"})  # type: ignore[arg-type]
    stub.script("fine", StubReply(text="also fine"))
    assert [stub.next_reply(None).text for _ in range(2)] == ["fine", "also fine"]  # type: ignore[arg-type]


async def test_an_ipv6_stub_url_is_bracketed() -> None:
    stub = OllamaStub(host="[::1]")
    assert stub.host == "::1"
    assert stub.url == "http://[::1]:0"


def test_hosts_and_ports() -> None:
    assert check_host("localhost") == "localhost"
    assert check_host("::1") == "::1"
    assert check_host("fe80::1") == "fe80::1"
    assert check_port(0) == 0
    assert check_port(65535) == 65535
    with pytest.raises(ValueError, match="as --port"):
        check_host("a:1", "--host", port_as="--port")
    with pytest.raises(TypeError):
        check_port(True)


# -- ScriptedProvider ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: ScriptedProvider([RateLimited]), TypeError, r"give an instance, such as"),
        (lambda: ScriptedProvider(default=ServerError), TypeError, "give an instance"),
        (lambda: ScriptedProvider([42]), TypeError, "step 0 must be a ChatResponse"),
        (lambda: ScriptedProvider("hello"), TypeError, "wrap a single one in a list"),
        (lambda: ScriptedProvider(chunk_size=0), ValueError, "chunk_size must be an int >= 1"),
        (lambda: ScriptedProvider(chunk_size=2.0), TypeError, "chunk_size"),
        (lambda: ScriptedProvider(delay=-1), ValueError, "delay must be a number of seconds"),
        (lambda: ScriptedProvider(delay="1"), TypeError, "delay"),
        (lambda: ScriptedProvider(name=""), TypeError, "name"),
    ],
)
def test_a_bad_script_fails_when_made(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_add_checks_every_step_before_adding_any() -> None:
    provider = ScriptedProvider()
    with pytest.raises(TypeError, match="step 1"):
        provider.add("fine", None)  # type: ignore[arg-type]
    assert provider.remaining == 0


async def test_a_step_function_returning_the_wrong_thing_says_so() -> None:
    provider = ScriptedProvider([lambda request: 42])  # type: ignore[list-item,return-value]
    with pytest.raises(TypeError, match="a step function returned 42"):
        await provider.chat(REQUEST)


async def test_a_single_use_exception_step_is_the_instance_given() -> None:
    error = ServerError("s", "down")
    provider = ScriptedProvider([error])
    with pytest.raises(ServerError) as caught:
        await provider.chat(REQUEST)
    assert caught.value is error


async def test_a_reused_exception_step_is_fresh_each_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    busy = RateLimited("s", "busy", retry_after=2.0)
    busy.add_note("scripted by the test")
    provider = ScriptedProvider(default=busy)
    errors = []
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            await Retry(provider, max_attempts=2, jitter=0.0).chat(REQUEST)
        errors.append(caught.value)
    assert len({id(error) for error in errors}) == 3
    for error in errors:  # each call's error has its own notes, none from another call
        assert error.__notes__ == [
            "scripted by the test",
            "Retry: 2 attempts made; gave up (max_attempts=2)",
        ]
        assert type(error) is RateLimited
        assert (error.provider, error.detail, error.retry_after) == ("s", "busy", 2.0)
        assert error.retryable
        assert str(error) == str(busy)
    assert trio.current_time() == 3 * 2.0


async def test_the_same_instance_in_several_steps_under_fallback() -> None:
    down = ServerError("a", "down", status=503)
    a = ScriptedProvider([down, down], name="a")
    b = ScriptedProvider(default=ServerError("b", "also down", status=503), name="b")
    notes = []
    for _ in range(2):
        with pytest.raises(ServerError) as caught:
            await Fallback(a, b).chat(REQUEST)
        notes.append(caught.value.__notes__)
    assert notes[0] == notes[1]  # the second failure does not carry the first one's notes
    assert notes[0][-1] == "Fallback: 2 of 2 providers tried"


async def test_a_chat_response_step_is_returned_as_is() -> None:
    response = ChatResponse(Message.assistant("hi"), Usage(1, 1), "stop", "m")
    assert await ScriptedProvider([response]).chat(REQUEST) is response


# -- SerfAgent ----------------------------------------------------------------------------


def test_join_targets_take_host_port_strings_tuples_and_agents() -> None:
    agent = SerfAgent("x")
    assert _targets(["127.0.0.1:7946", ("127.0.0.1", 7947), "[::1]:7948"]) == [
        "127.0.0.1:7946",
        "127.0.0.1:7947",
        "[::1]:7948",
    ]
    assert _targets("127.0.0.1:7946") == ["127.0.0.1:7946"]  # one target alone
    assert _targets(("::1", 7946)) == ["[::1]:7946"]
    assert _targets(()) == []
    assert SerfAgent("y", join="127.0.0.1:1").join_targets == ["127.0.0.1:1"]
    assert agent.join_targets == []


@pytest.mark.parametrize(
    "join",
    [["127.0.0.1"], ["127.0.0.1:http"], [("127.0.0.1", "7946")], ["::1:7946"], [7946], 7946],
    ids=["no-port", "named-port", "str-port", "unbracketed-v6", "int", "bare-int"],
)
def test_a_bad_join_target_names_the_expected_form(join: Any) -> None:
    with pytest.raises(InvalidAddress, match=r"invalid join address .*'host:port'"):
        SerfAgent("x", join=join)


async def test_join_methods_check_their_targets() -> None:
    agent = SerfAgent("x")
    with pytest.raises(InvalidAddress, match="invalid join address"):
        await agent.ajoin("nowhere")
    with pytest.raises(InvalidAddress, match="invalid join address"):
        agent.join(("127.0.0.1", 99999))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"name": "two words"}, ValueError, "without spaces"),
        ({"tags": ["role=x"]}, TypeError, "tags must be a mapping"),
        ({"tags": {"role": 1}}, TypeError, "tags must map non-empty str to str"),
        ({"encrypt_key": "not base64!"}, ValueError, "encrypt_key must be base64"),
        (
            {"encrypt_key": base64.b64encode(b"short").decode()},
            ValueError,
            "16, 24 or 32 byte AES key, not of 5 bytes",
        ),
        ({"encrypt_key": b"k" * 16}, TypeError, "encrypt_key must be a base64 str"),
        ({"log_level": "verbose"}, ValueError, "log_level must be one of trace, debug"),
        ({"startup_timeout": 0}, ValueError, "startup_timeout must be a number of seconds > 0"),
        ({"extra_args": "-profile=lan"}, TypeError, "extra_args must be a sequence"),
    ],
)
def test_a_serf_agent_checks_its_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    kwargs.setdefault("name", "x")
    with pytest.raises(error, match=match):
        SerfAgent(**kwargs)


def test_a_good_encrypt_key_is_kept() -> None:
    key = base64.b64encode(bytes(32)).decode()
    assert SerfAgent("x", encrypt_key=key).encrypt_key == key
