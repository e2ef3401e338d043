"""Tools (tinyagents.tool): schemas from type hints and docstrings, argument validation
and structuring with cattrs, results, errors as results, timeouts, threads, the registry."""

from __future__ import annotations

import datetime
import enum
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Optional

import attrs
import pytest
import trio
import trio.testing

from tinyagents.errors import TinyAgentsError
from tinyagents.llm import ChatRequest, Message, ToolCall, ToolSpec
from tinyagents.tool import (
    FunctionTool,
    InvalidToolArguments,
    Tool,
    ToolError,
    ToolNameTaken,
    ToolRegistry,
    ToolResult,
    ToolTimeout,
    UnknownTool,
    run_tool_call,
    tool,
)

# -- types used in hints (module level, so that string annotations resolve) -------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.define
class Point:
    """A point on the map.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
    """

    lat: float
    lon: float = 0.0


@attrs.frozen
class Place:
    """A named place."""

    name: str
    point: Point
    tags: list[str] = attrs.field(factory=list, metadata={"description": "Free labels."})
    note: str | None = None
    color: Color = Color.RED


@attrs.define
class Positive:
    value: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.define
class Node:
    child: Node | None = None


def params(fn: Any) -> dict[str, Any]:
    return dict(tool(fn).spec.parameters)


def prop(fn: Any, name: str = "x") -> dict[str, Any]:
    return dict(params(fn)["properties"][name])


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall("call-1", name, arguments)


# -- the spec ---------------------------------------------------------------------------


def test_the_spec_is_an_object_schema_with_no_extra_properties() -> None:
    @tool
    def get_weather(city: str, days: int) -> str:
        """The weather in a city."""
        return city

    assert isinstance(get_weather, FunctionTool)
    assert get_weather.spec == ToolSpec(
        name="get_weather",
        description="The weather in a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    )
    assert get_weather.name == "get_weather"
    # the spec goes straight into a request, and is JSON
    request = ChatRequest("m", [Message.user("hi")], tools=[get_weather.spec])
    json.dumps(dict(request.tools[0].parameters))


def test_no_parameters() -> None:
    def now() -> str:
        return "noon"

    assert params(now) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (Any, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (Sequence[str], {"type": "array", "items": {"type": "string"}}),
        (tuple[float, ...], {"type": "array", "items": {"type": "number"}}),
        (set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (frozenset[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (dict, {"type": "object"}),
        (
            Mapping[str, list[bool]],
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "boolean"}},
            },
        ),
        (Literal["c", "f"], {"type": "string", "enum": ["c", "f"]}),
        (Literal[1, 2, 3], {"type": "integer", "enum": [1, 2, 3]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (Color, {"type": "string", "enum": ["red", "green"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (list[Color], {"type": "array", "items": {"type": "string", "enum": ["red", "green"]}}),
        (Annotated[str, "The city."], {"type": "string", "description": "The city."}),
        (
            list[Annotated[int, "A day."]],
            {"type": "array", "items": {"type": "integer", "description": "A day."}},
        ),
    ],
)
def test_schema_of_each_supported_type(hint: Any, schema: dict[str, Any]) -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return x

    f.__annotations__ = {"x": hint, "return": Any}
    spec = params(f)
    assert spec["properties"] == {"x": schema}
    assert spec["required"] == ["x"]


@pytest.mark.parametrize("hint", [Optional[int], int | None, None | int])  # noqa: UP045
def test_optional_is_nullable_and_not_required(hint: Any) -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return x

    f.__annotations__ = {"x": hint}
    spec = params(f)
    assert spec["required"] == []
    arms = spec["properties"]["x"]["anyOf"]
    assert {"type": "integer"} in arms
    assert {"type": "null"} in arms
    assert spec["properties"]["x"]["default"] is None


def test_defaults_are_in_the_schema_and_not_required() -> None:
    def f(
        a: int,
        b: int = 3,
        c: str = "x",
        d: Color = Color.GREEN,
        e: Point = Point(1.0, 2.0),  # noqa: B008
        f: list[int] | None = None,
        g: Literal["c", "f"] = "f",
        h: tuple[int, ...] = (1, 2),
        i: Any = datetime.date(2020, 1, 1),  # not JSON: no "default"
    ) -> None:
        pass

    spec = params(f)
    assert spec["required"] == ["a"]
    props = spec["properties"]
    assert "default" not in props["a"]
    assert props["b"]["default"] == 3
    assert props["c"]["default"] == "x"
    assert props["d"]["default"] == "green"
    assert props["e"]["default"] == {"lat": 1.0, "lon": 2.0}
    assert props["f"]["default"] is None
    assert props["g"]["default"] == "f"
    assert props["h"]["default"] == [1, 2]
    assert props["i"] == {}


def test_nested_attrs_classes_are_object_schemas_with_their_fields() -> None:
    def f(place: Place) -> None:
        pass

    point = {
        "type": "object",
        "description": "A point on the map.",
        "properties": {
            "lat": {"type": "number", "description": "Latitude in degrees."},
            "lon": {"type": "number", "description": "Longitude in degrees.", "default": 0.0},
        },
        "required": ["lat"],
        "additionalProperties": False,
    }
    assert prop(f, "place") == {
        "type": "object",
        "description": "A named place.",
        "properties": {
            "name": {"type": "string"},
            "point": point,
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Free labels.",
                "default": [],
            },
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "color": {"type": "string", "enum": ["red", "green"], "default": "red"},
        },
        "required": ["name", "point"],
        "additionalProperties": False,
    }


def test_a_list_of_attrs_classes() -> None:
    def f(points: list[Point]) -> None:
        pass

    schema = prop(f, "points")
    assert schema["type"] == "array"
    assert schema["items"]["properties"]["lat"] == {
        "type": "number",
        "description": "Latitude in degrees.",
    }


def test_google_docstring() -> None:
    def get_weather(city: str, days: int = 1, unit: str = "c") -> str:
        """Get the weather forecast
        for a city.

        More detail that is not part of the description.

        Args:
            city (str): The city's name,
                for instance "Paris".
            days: How many days.

            unit: Celsius or Fahrenheit.

        Returns:
            city: not a parameter.
        """
        return city

    spec = tool(get_weather).spec
    assert spec.description == "Get the weather forecast for a city."
    props = spec.parameters["properties"]
    assert props["city"]["description"] == 'The city\'s name, for instance "Paris".'
    assert props["days"]["description"] == "How many days."
    assert props["unit"]["description"] == "Celsius or Fahrenheit."


def test_rest_docstring() -> None:
    def get_weather(city: str, days: int = 1) -> str:
        """Get the weather.

        :param str city: The city's name,
            for instance "Paris".
        :param days: How many days.
        :returns: the forecast
        """
        return city

    spec = tool(get_weather).spec
    assert spec.description == "Get the weather."
    props = spec.parameters["properties"]
    assert props["city"]["description"] == 'The city\'s name, for instance "Paris".'
    assert props["days"]["description"] == "How many days."


def test_a_docstring_that_starts_with_args_has_no_description() -> None:
    def f(x: int) -> int:
        """Args:
        x: The x.
        """
        return x

    spec = tool(f).spec
    assert spec.description == ""
    assert spec.parameters["properties"]["x"]["description"] == "The x."


def test_no_docstring_no_descriptions() -> None:
    def f(x: int) -> int:
        return x

    spec = tool(f).spec
    assert spec.description == ""
    assert spec.parameters["properties"]["x"] == {"type": "integer"}


def test_annotated_description_wins_over_the_docstring() -> None:
    def f(x: Annotated[int, "From Annotated."], y: int) -> int:
        """F.

        Args:
            x: From the docstring.
            y: Y.
        """
        return x

    props = params(f)["properties"]
    assert props["x"]["description"] == "From Annotated."
    assert props["y"]["description"] == "Y."


def test_parameter_description_replaces_the_class_description() -> None:
    def f(where: Point) -> None:
        """F.

        Args:
            where: Where to go.
        """

    assert prop(f, "where")["description"] == "Where to go."


def test_name_description_and_timeout_options() -> None:
    @tool(name="weather", description="Explicit.", timeout=2.5)
    def get_weather(city: str) -> str:
        """From the docstring."""
        return city

    assert get_weather.spec.name == "weather"
    assert get_weather.spec.description == "Explicit."
    assert get_weather.timeout == 2.5
    assert tool()(get_weather.fn).timeout is None


def test_the_decorated_function_can_still_be_called() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert "add" in repr(add)


def test_an_async_callable_object_is_async() -> None:
    class Lookup:
        async def __call__(self, key: str) -> str:
            return key

    made = FunctionTool(Lookup(), name="lookup")
    assert made.is_async
    assert made.spec.parameters["properties"] == {"key": {"type": "string"}}


def bad_varargs(*xs: int) -> None:
    pass


def bad_kwargs(**xs: int) -> None:
    pass


def bad_positional_only(x: int, /) -> None:
    pass


def bad_unannotated(x) -> None:  # type: ignore[no-untyped-def]
    pass


def bad_datetime(x: datetime.datetime) -> None:
    pass


def bad_int_keys(x: dict[int, str]) -> None:
    pass


def bad_fixed_tuple(x: tuple[int, int]) -> None:
    pass


def bad_recursive(x: Node) -> None:
    pass


def bad_literal(x: Literal[b"bytes"]) -> None:
    pass


def bad_nested(x: list[datetime.date]) -> None:
    pass


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (bad_varargs, "variadic positional"),
        (bad_kwargs, "variadic keyword"),
        (bad_positional_only, "positional-only"),
        (bad_unannotated, "no type hint"),
        (bad_datetime, "unsupported tool argument type"),
        (bad_int_keys, "keys must be str"),
        (bad_fixed_tuple, r"tuple\[T, \.\.\.\]"),
        (bad_recursive, "recursive attrs class"),
        (bad_literal, "not a JSON scalar"),
        (bad_nested, "unsupported tool argument type"),
    ],
)
def test_unsupported_signatures_are_refused_when_the_tool_is_made(fn: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        tool(fn)


def test_unresolvable_hints_are_refused() -> None:
    def f(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match="cannot resolve the type hints"):
        tool(f)


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "é", "<lambda>"])
def test_invalid_names_are_refused(name: str) -> None:
    def f() -> None:
        pass

    with pytest.raises(ValueError, match="invalid tool name"):
        tool(name=name)(f)


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(ValueError, match="invalid tool name"):
        tool(lambda: None)
    assert tool(name="noop")(lambda: None).name == "noop"


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_invalid_timeouts_are_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        tool(timeout=timeout)(weather.fn)


def test_a_non_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="wraps a function"):
        FunctionTool(42)  # type: ignore[arg-type]


# -- structuring arguments --------------------------------------------------------------


async def test_arguments_are_structured_into_the_hinted_types() -> None:
    seen: dict[str, Any] = {}

    @tool
    async def f(
        place: Place,
        points: Sequence[Point],
        color: Color,
        level: Level,
        unit: Literal["c", "f"],
        count: int,
        ratio: float,
        scores: dict[str, float],
        tags: set[str],
        either: int | str,
        note: str | None,
        days: int = 7,
    ) -> str:
        seen.update(locals())
        return "ok"

    result = await f.call(
        {
            "place": {"name": "home", "point": {"lat": 1.5}, "tags": ["a"]},
            "points": [{"lat": 1, "lon": 2}],
            "color": "green",
            "level": 2,
            "unit": "f",
            "count": 3.0,
            "ratio": 2,
            "scores": {"a": 1},
            "tags": ["x", "y"],
            "either": "text",
        }
    )
    assert result == "ok"
    assert seen["place"] == Place("home", Point(1.5, 0.0), tags=["a"])
    assert seen["points"] == (Point(1.0, 2.0),)
    assert isinstance(seen["points"][0].lat, float)
    assert seen["color"] is Color.GREEN
    assert seen["level"] is Level.HIGH
    assert seen["unit"] == "f"
    assert seen["count"] == 3
    assert type(seen["count"]) is int
    assert seen["ratio"] == 2.0
    assert type(seen["ratio"]) is float
    assert seen["scores"] == {"a": 1.0}
    assert seen["tags"] == {"x", "y"}
    assert seen["either"] == "text"
    assert seen["note"] is None  # optional, left out
    assert seen["days"] == 7  # the function's default


async def test_a_union_takes_the_first_arm_the_value_fits() -> None:
    @tool
    def f(x: int | str | Point | None) -> str:
        return repr(x)

    assert await f.call({"x": 3}) == "3"
    assert await f.call({"x": "3"}) == "'3'"
    assert await f.call({"x": {"lat": 1}}) == "Point(lat=1.0, lon=0.0)"
    assert await f.call({"x": None}) == "None"


async def test_any_is_passed_unchanged() -> None:
    @tool
    def f(x: Any) -> Any:
        return x

    assert await f.call({"x": {"a": [1, None]}}) == '{"a": [1, null]}'


@tool
def weather(city: str, days: int = 1) -> str:
    return f"{city}: sunny for {days} days"


@tool
def kinds(
    text: str = "",
    count: int = 0,
    ratio: float = 0.0,
    flag: bool = False,
    tags: list[str] | None = None,
    scores: dict[str, int] | None = None,
    color: Color = Color.RED,
    unit: Literal["c", "f"] = "c",
    point: Point | None = None,
    place: Place | None = None,
    positive: Positive | None = None,
    unique: set[int] | None = None,
) -> str:
    return "ok"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"text": 3}, "'text': expected string, got integer 3"),
        ({"text": None}, "'text': expected string, got null"),
        ({"count": "3"}, "'count': expected integer, got string \"3\""),
        ({"count": 3.5}, "'count': expected integer, got number 3.5"),
        ({"count": True}, "'count': expected integer, got boolean true"),
        ({"ratio": "1.5"}, "'ratio': expected number, got string \"1.5\""),
        ({"ratio": False}, "'ratio': expected number, got boolean false"),
        ({"flag": "true"}, "'flag': expected boolean, got string \"true\""),
        ({"flag": 1}, "'flag': expected boolean, got integer 1"),
        ({"tags": "abc"}, "'tags': expected array or null, got string \"abc\""),
        ({"tags": ["a", 2]}, "'tags[1]': expected string, got integer 2"),
        ({"scores": [1]}, "'scores': expected object or null, got array"),
        ({"scores": {"a": "1"}}, "'scores.a': expected integer, got string \"1\""),
        ({"color": "blue"}, '\'color\': expected one of "red", "green", got string "blue"'),
        ({"unit": "k"}, '\'unit\': expected one of "c", "f", got string "k"'),
        ({"point": {}}, "missing 'point.lat'"),
        ({"point": {"lat": 1, "alt": 2}}, "unexpected field 'point.alt'"),
        ({"point": {"lat": "north"}}, "'point.lat': expected number, got string \"north\""),
        ({"point": 5}, "'point': expected object or null, got integer 5"),
        ({"place": {"name": "x", "point": {}}}, "missing 'place.point.lat'"),
        ({"positive": {"value": 0}}, "'positive': 'value' must be > 0: 0"),
        ({"unique": [1, 1]}, "'unique': the items must be unique (1 is repeated)"),
        ({"texts": "x"}, "unexpected argument 'texts'"),
        ({"text": "x" * 100}, None),  # fine: long text is no problem
    ],
)
async def test_invalid_arguments_of_every_kind(
    arguments: dict[str, Any], problem: str | None
) -> None:
    if problem is None:
        assert await kinds.call(arguments) == "ok"
        return
    with pytest.raises(InvalidToolArguments) as info:
        await kinds.call(arguments)
    assert info.value.problems == (problem,)
    assert info.value.tool == "kinds"
    assert str(info.value) == f"invalid arguments for kinds: {problem}"


async def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidToolArguments) as info:
        await weather.call({"days": "2", "town": "Paris"})
    assert info.value.problems == (
        "missing 'city'",
        "'days': expected integer, got string \"2\"",
        "unexpected argument 'town'",
    )


async def test_long_values_are_shortened_in_problems() -> None:
    with pytest.raises(InvalidToolArguments) as info:
        await weather.call({"city": "x", "days": "y" * 100})
    (problem,) = info.value.problems
    assert problem.endswith('..."')
    assert len(problem) < 80


async def test_arguments_that_are_not_an_object() -> None:
    with pytest.raises(InvalidToolArguments, match="expected an object of arguments, got array"):
        await weather.call([1, 2])  # type: ignore[arg-type]


# -- results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (3, "3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        ({"a": [1, "é"]}, '{"a": [1, "é"]}'),
        ([Point(1, 2)], '[{"lat": 1, "lon": 2}]'),
        (Place("x", Point(1.0)), None),
        (Color.GREEN, '"green"'),
        (frozenset({1}), "[1]"),
        ((1, 2), "[1, 2]"),
    ],
)
async def test_results_are_text_or_json(value: Any, text: str | None) -> None:
    @tool
    async def f() -> Any:
        return value

    result = await f.call({})
    if text is None:
        assert json.loads(result) == {
            "name": "x",
            "point": {"lat": 1.0, "lon": 0.0},
            "tags": [],
            "note": None,
            "color": "red",
        }
    else:
        assert result == text


async def test_a_result_that_is_not_json_is_an_error() -> None:
    @tool
    def f() -> object:
        return object()

    with pytest.raises(TypeError, match="f returned a value that is not JSON"):
        await f.call({})
    result = await run_tool_call(ToolRegistry([f]), call("f"))
    assert result.is_error
    assert result.content.startswith("error: f failed: TypeError: f returned a value")


# -- run_tool_call ----------------------------------------------------------------------


async def test_run_tool_call_gives_the_result_and_its_message() -> None:
    registry = ToolRegistry([weather])
    the_call = call("weather", city="Paris", days=2)
    result = await run_tool_call(registry, the_call)
    assert result == ToolResult(the_call, "Paris: sunny for 2 days")
    assert not result.is_error
    assert result.error is None
    assert result.message == Message.tool(the_call, "Paris: sunny for 2 days")
    assert result.message.role == "tool"
    assert result.message.tool_call_id == "call-1"
    assert result.message.name == "weather"


async def test_invalid_arguments_go_back_to_the_model() -> None:
    result = await run_tool_call(ToolRegistry([weather]), call("weather", days=2))
    assert result.is_error
    assert result.content == "error: invalid arguments for weather: missing 'city'"
    assert isinstance(result.error, InvalidToolArguments)
    assert result.message.content == result.content


async def test_an_unknown_tool_goes_back_to_the_model() -> None:
    registry = ToolRegistry([weather, kinds])
    result = await run_tool_call(registry, call("forecast", city="Paris"))
    assert result.is_error
    assert result.content == "error: unknown tool 'forecast' (the tools are: weather, kinds)"
    assert isinstance(result.error, UnknownTool)
    empty = await run_tool_call(ToolRegistry(), call("forecast"))
    assert empty.content == "error: unknown tool 'forecast' (the tools are: none)"


@pytest.mark.parametrize("is_async", [True, False])
async def test_a_raising_tool_goes_back_to_the_model(is_async: bool) -> None:
    error = ConnectionError("no route to host")

    async def fetch_async(url: str) -> str:
        raise error

    def fetch_sync(url: str) -> str:
        raise error

    fetch = tool(name="fetch")(fetch_async if is_async else fetch_sync)
    result = await run_tool_call(ToolRegistry([fetch]), call("fetch", url="x"))
    assert result.is_error
    assert result.content == "error: fetch failed: ConnectionError: no route to host"
    assert result.error is error


async def test_an_exception_without_a_message() -> None:
    @tool
    def fail() -> str:
        raise RuntimeError

    result = await run_tool_call(ToolRegistry([fail]), call("fail"))
    assert result.content == "error: fail failed: RuntimeError"


async def test_an_exception_group_is_an_error_result() -> None:
    @tool
    async def many() -> str:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(_raise_value_error)
        return "unreachable"

    result = await run_tool_call(ToolRegistry([many]), call("many"))
    assert result.is_error
    assert result.content.startswith("error: many failed: ExceptionGroup")


async def _raise_value_error() -> None:
    raise ValueError("bad")


async def test_an_async_timeout_goes_back_to_the_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @tool(timeout=5)
    async def slow(seconds: float) -> str:
        await trio.sleep(seconds)
        return "done"

    registry = ToolRegistry([slow])
    start = trio.current_time()
    result = await run_tool_call(registry, call("slow", seconds=100))
    assert result.is_error
    assert result.content == "error: slow timed out after 5 seconds"
    assert isinstance(result.error, ToolTimeout)
    assert result.error.timeout == 5
    assert trio.current_time() - start == pytest.approx(5)
    fast = await run_tool_call(registry, call("slow", seconds=1))
    assert fast.content == "done"


async def test_a_sync_timeout_abandons_the_thread(autojump_clock: trio.testing.MockClock) -> None:
    release = threading.Event()
    finished = threading.Event()

    @tool(timeout=1)
    def blocking() -> str:
        release.wait(10)
        finished.set()
        return "late"

    result = await run_tool_call(ToolRegistry([blocking]), call("blocking"))
    assert result.content == "error: blocking timed out after 1 seconds"
    assert not finished.is_set()  # still running, abandoned
    release.set()
    await trio.to_thread.run_sync(finished.wait, 10)


async def test_without_a_timeout_a_tool_takes_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @tool
    async def slow() -> str:
        await trio.sleep(3600)
        return "done"

    assert (await run_tool_call(ToolRegistry([slow]), call("slow"))).content == "done"


async def test_a_sync_tool_runs_in_a_worker_thread() -> None:
    @tool
    def where() -> int:
        return threading.get_ident()

    @tool
    async def where_async() -> int:
        return threading.get_ident()

    registry = ToolRegistry([where, where_async])
    in_thread = await run_tool_call(registry, call("where"))
    in_task = await run_tool_call(registry, call("where_async"))
    assert int(in_thread.content) != threading.get_ident()
    assert int(in_task.content) == threading.get_ident()


async def test_sync_tools_run_concurrently() -> None:
    barrier = threading.Barrier(3, timeout=10)

    @tool
    def meet() -> str:
        barrier.wait()
        return "met"

    registry = ToolRegistry([meet])
    results: list[ToolResult] = []

    async def run() -> None:
        results.append(await run_tool_call(registry, call("meet")))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(run)
    assert [r.content for r in results] == ["met"] * 3


async def test_cancellation_passes_through() -> None:
    started = trio.Event()

    @tool
    async def wait() -> str:
        started.set()
        await trio.sleep_forever()
        return "never"

    registry = ToolRegistry([wait])
    results: list[ToolResult] = []
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                results.append(await run_tool_call(registry, call("wait")))

            nursery.start_soon(run)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert results == []


class Fatal(BaseException):
    pass


async def test_base_exceptions_pass_through() -> None:
    @tool
    def die() -> str:
        raise Fatal

    with pytest.raises(Fatal):
        await run_tool_call(ToolRegistry([die]), call("die"))


# -- the protocol and custom tools ------------------------------------------------------


class Echo:
    """A tool written by hand."""

    spec = ToolSpec("echo", "Echo the text.", {"type": "object", "properties": {}})

    async def call(self, arguments: Mapping[str, Any]) -> str:
        return json.dumps(dict(arguments))


class Broken:
    spec = ToolSpec("broken")

    async def call(self, arguments: Mapping[str, Any]) -> Any:
        return 42


def test_function_tools_and_hand_written_tools_are_tools() -> None:
    assert isinstance(weather, Tool)
    assert isinstance(Echo(), Tool)
    assert not isinstance(lambda: None, Tool)


async def test_a_hand_written_tool_is_run_as_it_is() -> None:
    registry = ToolRegistry([Echo()])
    result = await run_tool_call(registry, call("echo", text="hi"))
    assert result.content == '{"text": "hi"}'


async def test_a_tool_that_returns_something_other_than_text_is_an_error() -> None:
    result = await run_tool_call(ToolRegistry([Broken()]), call("broken"))
    assert result.is_error
    assert result.content == "error: broken failed: TypeError: the tool returned a int, not a str"


# -- the registry -----------------------------------------------------------------------


def test_the_registry_holds_tools_by_name_in_order() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    echo = Echo()
    registry = ToolRegistry([weather, add, echo])
    assert len(registry) == 3
    assert registry.names() == ["weather", "add", "echo"]
    tools = list(registry)
    assert tools[0] is weather
    assert isinstance(tools[1], FunctionTool)
    assert tools[1].fn is add  # a plain function is made a tool
    assert tools[2] is echo
    assert registry.specs() == (weather.spec, tools[1].spec, echo.spec)
    assert registry.specs()[1].description == "Add two numbers."
    assert "weather" in registry
    assert weather in registry
    assert echo in registry
    assert "nope" not in registry
    assert Echo() not in registry  # another object of the same name
    assert 3 not in registry
    assert registry["add"] is tools[1]
    assert registry.get("add") is tools[1]
    assert registry.get("nope") is None
    assert "weather" in repr(registry)
    # a registry is itself an iterable of tools
    assert ToolRegistry(registry).names() == registry.names()


def test_register_returns_the_tool_and_works_as_a_decorator() -> None:
    registry = ToolRegistry()

    @registry.register
    def ping() -> str:
        return "pong"

    assert isinstance(ping, FunctionTool)
    assert registry["ping"] is ping
    assert registry.register(weather) is weather
    assert registry.register(weather) is weather  # the same tool again: nothing happens
    assert len(registry) == 2


def test_names_are_unique() -> None:
    registry = ToolRegistry([weather])

    def other() -> str:
        return ""

    with pytest.raises(ToolNameTaken, match="'weather' is already registered") as info:
        registry.register(tool(name="weather")(other))
    assert info.value.tool == "weather"
    assert isinstance(info.value, ValueError)
    with pytest.raises(ToolNameTaken):
        ToolRegistry([Echo(), Echo()])


def test_unknown_names() -> None:
    registry = ToolRegistry([weather])
    with pytest.raises(UnknownTool) as info:
        registry["nope"]
    assert str(info.value) == "unknown tool 'nope' (the tools are: weather)"
    assert info.value.available == ("weather",)
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownTool):
        registry.remove("nope")


def test_remove() -> None:
    registry = ToolRegistry([weather, kinds])
    assert registry.remove("weather") is weather
    assert registry.names() == ["kinds"]
    assert "weather" not in registry


def test_registering_something_that_is_not_a_tool() -> None:
    with pytest.raises(TypeError):
        ToolRegistry().register(42)  # type: ignore[call-overload]


def test_the_errors_are_tinyagents_errors() -> None:
    for cls in (ToolError, ToolNameTaken, UnknownTool, InvalidToolArguments, ToolTimeout):
        assert issubclass(cls, ToolError)
        assert issubclass(cls, TinyAgentsError)
    assert issubclass(ToolTimeout, TimeoutError)
    assert issubclass(InvalidToolArguments, ValueError)
    assert str(ToolTimeout("t", 0.5)) == "t timed out after 0.5 seconds"
