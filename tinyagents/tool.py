"""Tools: functions a model may call, described by a JSON Schema built from type hints.

::

    @tool
    async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> Weather:
        \"\"\"The current weather in a city.

        Args:
            city: The city's name, e.g. "Paris".
            unit: Celsius or Fahrenheit.
        \"\"\"
        ...

    tools = ToolRegistry([get_weather, add])
    request = ChatRequest(model, messages, tools=tools.specs())
    for call in response.message.tool_calls:
        result = await run_tool_call(tools, call)      # never raises an Exception
        messages.append(result.message)               # Message.tool(call, result.content)

* :class:`Tool` is the protocol: a :class:`~tinyagents.llm.ToolSpec` and
  ``async def call(arguments) -> str``.
* :func:`tool` / :class:`FunctionTool` make a tool of a sync or async function. The
  JSON Schema of its arguments comes from the type hints, the descriptions from the
  docstring; the model's arguments are validated against that schema and structured
  with `cattrs <https://catt.rs>`_ into the hinted types (an attrs class arrives as an
  instance, an enum as its member). Sync functions run in a worker thread
  (``trio.to_thread.run_sync``), since tool code may block.
* :class:`ToolRegistry` holds tools by their unique name.
* :func:`run_tool_call` runs one :class:`~tinyagents.llm.ToolCall` and returns a
  :class:`ToolResult`. Whatever goes wrong (an unknown tool, invalid arguments, a tool
  that raises or times out) goes back to the model as the result's text, starting
  with ``"error: "``, so that the model can correct itself; it is never a crash.

Supported argument types: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``,
``list[T]`` / ``Sequence[T]`` / ``tuple[T, ...]`` (arrays), ``set[T]`` /
``frozenset[T]`` (arrays of unique items), ``dict[str, T]`` / ``Mapping[str, T]``
(objects with any keys), ``Literal[...]`` and :class:`enum.Enum` subclasses (``enum``
of their values), unions and ``Optional[T]`` / ``T | None`` (``anyOf``), attrs classes
(nested objects with their fields) and ``Annotated[T, "description"]``. Anything else
is refused with a ``TypeError`` when the tool is made, not when the model calls it.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import re
import types
import typing
from collections.abc import (
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSequence,
    MutableSet,
    Sequence,
    Set,
)
from functools import partial
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

import attrs
import cattrs
import trio

from . import _tracing
from ._validate import check_seconds
from .errors import (
    InvalidToolArguments,
    ToolError,
    ToolNameTaken,
    ToolTimeout,
    UnknownTool,
)
from .llm._types import Message, ToolCall, ToolSpec

__all__ = [
    "FunctionTool",
    "InvalidToolArguments",
    "Tool",
    "ToolError",
    "ToolNameTaken",
    "ToolRegistry",
    "ToolResult",
    "ToolTimeout",
    "UnknownTool",
    "run_tool_call",
    "tool",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T", bound="Tool")

_NoneType = type(None)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSONScalar = str | int | float | bool | None


# -- the protocol and the result --------------------------------------------------------


@runtime_checkable
class Tool(Protocol):
    """Something a model can call.

    ``spec`` (an attribute or a property) names and describes the tool and gives the
    JSON Schema of its arguments. ``call`` runs it with the model's arguments (a JSON
    object, already parsed) and returns the text the model will read. ``call`` may
    raise: :func:`run_tool_call` turns any exception into an error result.
    """

    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> str: ...


@attrs.frozen
class ToolResult:
    """What running a :class:`~tinyagents.llm.ToolCall` gave.

    ``content`` is the text for the model: the tool's result, or when ``is_error`` an
    explanation starting with ``"error: "``. ``error`` is the exception behind an error
    result, if any (for logs; it does not take part in equality).
    """

    call: ToolCall
    content: str
    is_error: bool = False
    error: Exception | None = attrs.field(default=None, eq=False)

    @property
    def message(self) -> Message:
        """The ``tool`` message answering the call, to append to the conversation."""
        return Message.tool(self.call, self.content)


# -- docstrings -------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*$")
_PARAM_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "other parameters",
        "attributes",
    }
)
_KNOWN_SECTIONS = _PARAM_SECTIONS | {
    "returns",
    "return",
    "yields",
    "yield",
    "raises",
    "raise",
    "example",
    "examples",
    "note",
    "notes",
    "see also",
    "warning",
    "warnings",
    "todo",
    "references",
}
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:(.*)$")
_REST_FIELD = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword|ivar|var|cvar)\s+([^:]+):(.*)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_section(line: str) -> bool:
    match = _SECTION.match(line)
    return match is not None and match.group(1).lower() in _KNOWN_SECTIONS


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph of ``doc`` (joined into one line) and the description of each
    parameter, from a Google-style ``Args:`` section or reST ``:param name:`` fields."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _is_section(line) or line.lstrip().startswith(":"):
            break
        summary.append(line.strip())
    parts: dict[str, list[str]] = {}
    key = ""  # the parameter whose description the next lines continue
    mode = ""  # "google" inside an Args: section, "rest" inside a :param: field
    base = 0  # the indentation of that section's header, or of that field
    entry: int | None = None  # the indentation of a Google section's entries
    for number, line in enumerate(lines):
        stripped = line.strip()
        indent = _indent(line)
        if not stripped:
            if mode == "rest":
                mode = ""
            continue
        if mode and (indent <= base or (base < 0 and _is_section(line))):
            mode = ""
        if mode == "google":
            if entry is None:
                entry = indent
            match = _GOOGLE_ENTRY.match(stripped)
            if indent <= entry and match:
                key = match.group(1)
                parts[key] = [match.group(2).strip()]
            elif key:
                parts[key].append(stripped)
            continue
        if mode == "rest":
            parts[key].append(stripped)
            continue
        header = _SECTION.match(line)
        if header and header.group(1).lower() in _PARAM_SECTIONS:
            # cleandoc cannot know the indentation of the first line: a section that
            # starts the docstring lasts until the next section
            mode, base, entry, key = "google", indent if number else -1, None, ""
            continue
        field = _REST_FIELD.match(stripped)
        if field:
            key = field.group(1).split()[-1]
            parts[key] = [field.group(2).strip()]
            mode, base = "rest", indent
    params = {name: " ".join(part for part in text if part) for name, text in parts.items()}
    return " ".join(summary), params


# -- JSON Schema from type hints --------------------------------------------------------


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _strip_annotated(hint: Any) -> tuple[Any, str | None]:
    description = None
    while typing.get_origin(hint) is typing.Annotated:
        hint, *metadata = typing.get_args(hint)
        for item in metadata:
            if isinstance(item, str) and description is None:
                description = item
    return hint, description


def _strip_required(hint: Any) -> Any:
    """``T`` for ``Required[T]`` / ``NotRequired[T]`` (TypedDict keys), else ``hint``."""
    if typing.get_origin(hint) in (typing.Required, typing.NotRequired):
        return typing.get_args(hint)[0]
    return hint


def _is_nullable(hint: Any) -> bool:
    hint, _ = _strip_annotated(hint)
    return _is_union(hint) and any(
        _strip_annotated(arm)[0] is _NoneType for arm in typing.get_args(hint)
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _enum_schema(values: Sequence[Any], what: str) -> dict[str, Any]:
    for value in values:
        if not isinstance(value, _JSONScalar):
            raise TypeError(f"{what} has the value {value!r}, which is not a JSON scalar")
    schema: dict[str, Any] = {}
    kinds = {_json_type(value) for value in values}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    schema["enum"] = list(values)
    return schema


_Factory: type[Any] = type(attrs.Factory(list))
_ARRAYS = (list, Sequence, MutableSequence)
_SETS = (set, frozenset, Set, MutableSet)
_OBJECTS = (dict, Mapping, MutableMapping)


class _Schemas:
    """Builds JSON Schemas from type hints, for one tool (defaults are unstructured with
    that tool's converter)."""

    def __init__(self, converter: cattrs.Converter) -> None:
        self.converter = converter
        self._building: list[type] = []  # attrs classes being built, to refuse recursion
        self._cache: dict[Any, dict[str, Any]] = {}

    def cached(self, hint: Any) -> dict[str, Any]:
        """The schema of ``hint``, built once (for choosing a union's arm on each call)."""
        try:
            return self._cache[hint]
        except KeyError:
            schema = self._cache[hint] = self.of(hint)
            return schema
        except TypeError:  # an unhashable hint
            return self.of(hint)

    def default(self, value: Any) -> tuple[bool, Any]:
        """``(True, json_value)`` if ``value`` can be written into a schema."""
        try:
            return True, json.loads(json.dumps(self.converter.unstructure(value)))
        except (TypeError, ValueError):
            return False, None

    def of(self, hint: Any) -> dict[str, Any]:
        hint, description = _strip_annotated(hint)
        schema = self._of(hint)
        if description:
            schema["description"] = description
        return schema

    def _of(self, hint: Any) -> dict[str, Any]:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if hint is Any:
            return {}
        if hint is None or hint is _NoneType:
            return {"type": "null"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return {"type": "number"}
        if hint is str:
            return {"type": "string"}
        if origin is Literal:
            return _enum_schema(args, f"{hint!r}")
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return _enum_schema([member.value for member in hint], f"the enum {hint.__name__}")
        if _is_union(hint):
            return {"anyOf": [self.of(arm) for arm in args]}
        if isinstance(hint, type) and attrs.has(hint):
            return self._attrs_class(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._dataclass(hint)
        if typing.is_typeddict(hint):
            return self._typed_dict(hint)
        if hint in _ARRAYS or origin in _ARRAYS:
            return self._array(args)
        if hint is tuple or origin is tuple:
            if args and (len(args) != 2 or args[1] is not Ellipsis):
                raise TypeError(
                    f"unsupported tool argument type {hint!r}: use tuple[T, ...] or list[T]"
                )
            return self._array(args[:1])
        if hint in _SETS or origin in _SETS:
            return {**self._array(args), "uniqueItems": True}
        if hint in _OBJECTS or origin in _OBJECTS:
            if not args:
                return {"type": "object"}
            if _strip_annotated(args[0])[0] is not str:
                raise TypeError(f"unsupported tool argument type {hint!r}: keys must be str")
            return {"type": "object", "additionalProperties": self.of(args[1])}
        raise TypeError(f"unsupported tool argument type {hint!r}")

    def _array(self, args: tuple[Any, ...]) -> dict[str, Any]:
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": self.of(args[0])}

    def _hints(self, cls: type) -> dict[str, Any]:
        if cls in self._building:
            raise TypeError(f"recursive type {cls.__qualname__} in a schema")
        try:
            return typing.get_type_hints(cls, include_extras=True)
        except Exception as exc:
            raise TypeError(f"cannot resolve the type hints of {cls.__qualname__}: {exc}") from exc

    def _object(
        self, cls: type, fields: Iterable[tuple[str, Any, bool, Any, str | None]]
    ) -> dict[str, Any]:
        """The object schema of ``cls`` from its ``(name, hint, required, default,
        description)`` fields (``default`` is ``attrs.NOTHING`` when there is none to
        show; a ``None`` description comes from the docstring)."""
        self._building.append(cls)
        try:
            description, docs = _parse_docstring(cls.__doc__)
            properties: dict[str, Any] = {}
            required: list[str] = []
            for name, hint, needed, default, own_text in fields:
                schema = self.of(hint)
                text = own_text or docs.get(name)
                if text and not _strip_annotated(hint)[1]:
                    schema["description"] = text
                if needed:
                    required.append(name)
                elif default is not attrs.NOTHING:
                    ok, value = self.default(default)
                    if ok:
                        schema["default"] = value
                properties[name] = schema
        finally:
            self._building.pop()
        result: dict[str, Any] = {"type": "object"}
        if description:
            result["description"] = description
        result.update(properties=properties, required=required, additionalProperties=False)
        return result

    def _dataclass(self, cls: type) -> dict[str, Any]:
        hints = self._hints(cls)
        fields = []
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            default: Any = attrs.NOTHING
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            needed = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            fields.append((field.name, hints[field.name], needed, default, None))
        return self._object(cls, fields)

    def _typed_dict(self, cls: type) -> dict[str, Any]:
        hints = self._hints(cls)
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset(hints))
        fields = []
        for name, hint in hints.items():
            # the hint decides (string annotations hide it from __required_keys__)
            marker = typing.get_origin(hint)
            needed = marker is typing.Required or (
                marker is not typing.NotRequired and name in required_keys
            )
            fields.append((name, _strip_required(hint), needed, attrs.NOTHING, None))
        return self._object(cls, fields)

    def _attrs_class(self, cls: type) -> dict[str, Any]:
        if cls in self._building:
            raise TypeError(f"recursive attrs class {cls.__qualname__} as a tool argument")
        try:
            attrs.resolve_types(cls)
        except Exception as exc:
            raise TypeError(f"cannot resolve the type hints of {cls.__qualname__}: {exc}") from exc
        fields = []
        for field in attrs.fields(cls):
            if not field.init:
                continue
            if field.type is None:
                raise TypeError(f"the field {cls.__qualname__}.{field.name} has no type")
            default: Any = field.default
            if isinstance(default, _Factory):
                # one that depends on the instance has no default to show
                default = attrs.NOTHING if default.takes_self else default.factory()
            needed = field.default is attrs.NOTHING
            text = field.metadata.get("description")
            fields.append((field.name, field.type, needed, default, text))
        return self._object(cls, fields)


# -- validation against the schema ------------------------------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _has_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        if isinstance(value, float):
            return math.isfinite(value) and value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return _json_type(value) == kind


def _quote(where: str) -> str:
    return f"'{where}'"


def _show(value: Any) -> str:
    kind = _json_type(value)
    if kind == "string" and len(value) > 40:
        value = value[:37] + "..."
    if kind in ("string", "integer", "number", "boolean"):
        return f"{kind} {json.dumps(value, ensure_ascii=False)}"
    return kind


def _describe(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_describe(arm) for arm in schema["anyOf"])
    return str(schema.get("type", "any value"))


def _problems(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """What is wrong with ``value`` as an instance of ``schema`` (the subset of JSON
    Schema that :class:`_Schemas` writes), each problem naming where it is."""
    problems: list[str] = []
    _check(value, schema, where, problems)
    return problems


def _check(value: Any, schema: Mapping[str, Any], where: str, problems: list[str]) -> None:
    label = _quote(where) if where else "arguments"
    if "anyOf" in schema:
        arms = schema["anyOf"]
        if any(not _problems(value, arm, where) for arm in arms):
            return
        same_type = [arm for arm in arms if "type" in arm and _has_type(value, arm["type"])]
        if len(same_type) == 1:
            _check(value, same_type[0], where, problems)
        else:
            problems.append(f"{label}: expected {_describe(schema)}, got {_show(value)}")
        return
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        problems.append(f"{label}: expected {_describe(schema)}, got {_show(value)}")
        return
    if "enum" in schema and not any(_json_equal(value, v) for v in schema["enum"]):
        problems.append(f"{label}: expected {_describe(schema)}, got {_show(value)}")
        return
    if kind == "array":
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                _check(item, items, f"{where}[{i}]", problems)
        if schema.get("uniqueItems"):
            seen: set[str] = set()
            for item in value:
                key = json.dumps(item, sort_keys=True, default=repr)
                if key in seen:
                    problems.append(f"{label}: the items must be unique ({key} is repeated)")
                    break
                seen.add(key)
    elif kind == "object":
        _check_object(value, schema, where, problems)


def _check_object(
    value: Mapping[Any, Any], schema: Mapping[str, Any], where: str, problems: list[str]
) -> None:
    def child(key: str) -> str:
        return f"{where}.{key}" if where else key

    properties: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name in schema.get("required", ()):
        if name not in value:
            problems.append(f"missing {_quote(child(name))}")
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{_quote(where) if where else 'arguments'}: a key is not a string")
        elif key in properties:
            _check(item, properties[key], child(key), problems)
        elif extra is False:
            what = "field" if where else "argument"
            problems.append(f"unexpected {what} {_quote(child(key))}")
        elif isinstance(extra, Mapping):
            _check(item, extra, child(key), problems)


# -- function tools ---------------------------------------------------------------------


@attrs.frozen
class _Param:
    name: str
    hint: Any
    fill_none: bool  # Optional without a default: None when the model leaves it out


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _type_hints(fn: Callable[..., Any], what: str) -> dict[str, Any]:
    target: Any = fn if inspect.isroutine(fn) else type(fn).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of {what}: {exc}") from exc


def _json_fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"a {type(value).__qualname__} is not JSON serialisable")


class FunctionTool(Generic[_P, _R]):
    """A tool made of a sync or async function; usually made with :func:`tool`.

    * ``name`` defaults to the function's name and ``description`` to the first
      paragraph of its docstring. Names are what the APIs accept: 1-64 letters,
      digits, ``_`` or ``-``.
    * The ``parameters`` schema is an object with one property per parameter, typed by
      its hint, described by the docstring (a Google ``Args:`` section or reST
      ``:param name:`` fields) or by ``Annotated[T, "description"]``, and
      ``additionalProperties: false``. A parameter is required unless it has a default
      (written into the schema as ``"default"`` when it is JSON) or is optional
      (``T | None``; left out, it is passed as ``None``).
    * :meth:`call` validates the arguments against the schema (missing, unexpected and
      wrongly typed arguments raise :class:`InvalidToolArguments` listing every
      problem), structures them into the hinted types with :attr:`converter`, and runs
      the function: an async function in the calling task, a sync one in a worker
      thread with ``trio.to_thread.run_sync``, since tool code may block.
    * With a ``timeout`` (seconds), a call that takes longer is cancelled and raises
      :class:`ToolTimeout`. A sync function's thread cannot be stopped: on a timeout
      (or a cancellation) it is abandoned, runs on to its end in the background, and
      its result is dropped.
    * The return value becomes the result text: a ``str`` as it is, anything else as
      JSON (attrs classes, enums and the like unstructured with :attr:`converter`). A
      value that cannot be JSON-encoded raises ``TypeError``.

    ``converter`` is this tool's own ``cattrs.Converter``; register hooks on it to
    change how arguments are structured or results unstructured. Calling the tool
    object itself calls the function unchanged.

    * With ``requires_approval``, an agent does not run a call of the tool before a
      person approved it (see :mod:`tinyagents.approval`); calling the tool directly,
      or with :func:`run_tool_call`, is not affected.

    Variadic (``*args``, ``**kwargs``) and positional-only parameters are refused, and
    so is a parameter without a type hint (use ``Any`` for any JSON value).
    """

    def __init__(
        self,
        fn: Callable[_P, _R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        requires_approval: bool = False,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a tool wraps a function, not {fn!r}")
        name = name if name is not None else getattr(fn, "__name__", "")
        if not _NAME.match(name):
            raise ValueError(
                f"invalid tool name {name!r}: use 1-64 letters, digits, '_' or '-' (name=...)"
            )
        if timeout is not None:
            timeout = check_seconds(timeout, "a tool's timeout (None or seconds)", zero=False)
        if not isinstance(requires_approval, bool):
            raise TypeError(f"requires_approval must be a bool, not {requires_approval!r}")
        self.fn = fn
        self.timeout = timeout
        self.requires_approval = requires_approval
        self.is_async = _is_async(fn)
        self.converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
        self._schemas = _Schemas(self.converter)
        self.converter.register_structure_hook_func(_is_union, self._structure_union)

        summary, docs = _parse_docstring(getattr(fn, "__doc__", None))
        hints = _type_hints(fn, name)
        properties: dict[str, Any] = {}
        required: list[str] = []
        self._params: list[_Param] = []
        for param in inspect.signature(fn).parameters.values():
            where = f"parameter {param.name!r} of the tool {name}"
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise TypeError(f"{where} is {param.kind.description}; tools take named arguments")
            if param.name not in hints:
                raise TypeError(f"{where} has no type hint (use Any for any JSON value)")
            hint = hints[param.name]
            try:
                schema = self._schemas.of(hint)
            except TypeError as exc:
                raise TypeError(f"{where}: {exc}") from exc
            if param.name in docs and not _strip_annotated(hint)[1]:
                schema["description"] = docs[param.name]
            has_default = param.default is not param.empty
            nullable = _is_nullable(hint)
            if has_default:
                ok, value = self._schemas.default(param.default)
                if ok:
                    schema["default"] = value
            elif nullable:
                schema["default"] = None
            else:
                required.append(param.name)
            properties[param.name] = schema
            self._params.append(_Param(param.name, hint, nullable and not has_default))
        self._parameters: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        self.spec = ToolSpec(
            name=name,
            description=description if description is not None else summary,
            parameters=self._parameters,
        )

    @property
    def name(self) -> str:
        """The tool's name, as the model calls it."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<FunctionTool {self.name}>"

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return self.fn(*args, **kwargs)

    def _structure_union(self, value: Any, hint: Any) -> Any:
        # the first arm the value fits, in the order of the hint
        for arm in typing.get_args(hint):
            bare = _strip_annotated(arm)[0]
            if bare is _NoneType:
                if value is None:
                    return None
            elif not _problems(value, self._schemas.cached(bare)):
                return self.converter.structure(value, arm)
        raise ValueError(f"{_show(value)} fits none of {hint!r}")

    def structure(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments to call the function with, from the model's arguments.

        Raises:
            InvalidToolArguments: listing every problem found.
        """
        if not isinstance(arguments, Mapping):
            raise InvalidToolArguments(
                self.name, [f"expected an object of arguments, got {_show(arguments)}"]
            )
        problems = _problems(arguments, self._parameters)
        if problems:
            raise InvalidToolArguments(self.name, problems)
        kwargs: dict[str, Any] = {}
        for param in self._params:
            if param.name not in arguments:
                if param.fill_none:
                    kwargs[param.name] = None
                continue
            try:
                kwargs[param.name] = self.converter.structure(arguments[param.name], param.hint)
            except Exception as exc:  # an attrs validator or converter refused the value
                problems.extend(
                    _located(text)
                    for text in cattrs.transform_error(
                        exc, path=param.name, format_exception=_format_exception
                    )
                )
        if problems:
            raise InvalidToolArguments(self.name, problems)
        return kwargs

    def encode(self, value: Any) -> str:
        """The result text for a return value: a ``str`` as it is, anything else as JSON."""
        if isinstance(value, str):
            return value
        try:
            return json.dumps(
                self.converter.unstructure(value), ensure_ascii=False, default=_json_fallback
            )
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self.name} returned a value that is not JSON: {exc}") from exc

    async def call(self, arguments: Mapping[str, Any]) -> str:
        """Validate and structure ``arguments``, run the function, encode its result.

        Raises:
            InvalidToolArguments: the arguments do not fit the schema.
            ToolTimeout: the function did not finish within ``timeout``.
            TypeError: the result cannot be JSON-encoded.
            Exception: whatever the function raised, unchanged.
        """
        kwargs = self.structure(arguments)
        deadline = math.inf if self.timeout is None else trio.current_time() + self.timeout
        fn: Callable[..., Any] = self.fn
        with trio.CancelScope(deadline=deadline) as scope:
            if self.is_async:
                result = await fn(**kwargs)
            else:
                result = await trio.to_thread.run_sync(
                    partial(fn, **kwargs), abandon_on_cancel=True
                )
        if scope.cancelled_caught:
            assert self.timeout is not None
            raise ToolTimeout(self.name, self.timeout)
        return self.encode(result)


def _format_exception(exc: BaseException, type_: type | None) -> str:
    return str(exc) or type(exc).__name__


def _located(text: str) -> str:
    message, _, where = text.rpartition(" @ ")
    return f"{_quote(where)}: {message}" if message else text


@overload
def tool(fn: Callable[_P, _R], /) -> FunctionTool[_P, _R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Callable[[Callable[_P, _R]], FunctionTool[_P, _R]]: ...


def tool(
    fn: Callable[_P, _R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> FunctionTool[_P, _R] | Callable[[Callable[_P, _R]], FunctionTool[_P, _R]]:
    """Make a :class:`FunctionTool` of a function: ``@tool`` or ``@tool(name=...,
    description=..., timeout=..., requires_approval=...)``. See :class:`FunctionTool`
    for the rules."""
    if fn is not None:
        return FunctionTool(fn)

    def decorate(fn: Callable[_P, _R]) -> FunctionTool[_P, _R]:
        return FunctionTool(
            fn,
            name=name,
            description=description,
            timeout=timeout,
            requires_approval=requires_approval,
        )

    return decorate


# -- the registry and running calls -----------------------------------------------------


class ToolRegistry:
    """Tools by their unique name, in the order they were registered.

    ``ToolRegistry(tools)`` registers each of ``tools``. A plain function is made a
    tool with :func:`tool`. Iterating gives the tools; ``name in registry`` (or
    ``tool in registry``) tells whether it is registered; :meth:`specs` gives the specs
    to put into a :class:`~tinyagents.llm.ChatRequest`.
    """

    __slots__ = ("_tools",)

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    def __repr__(self) -> str:
        return f"<ToolRegistry {list(self._tools)}>"

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._tools
        if isinstance(item, Tool):
            return self._tools.get(item.spec.name) is item
        return False

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name, self._tools) from None

    @overload
    def register(self, tool: _T) -> _T: ...

    @overload
    def register(self, tool: Callable[_P, _R]) -> FunctionTool[_P, _R]: ...

    def register(self, tool: Tool | Callable[..., Any]) -> Tool:
        """Add ``tool`` (a :class:`Tool`, or a function, made a tool with :func:`tool`)
        and return it, so that ``@registry.register`` works as a decorator.
        Registering the same tool object again does nothing.

        Raises:
            ToolNameTaken: a different tool has the same name.
            TypeError: ``tool`` is neither a tool nor a function that can be one.
        """
        made: Tool = tool if isinstance(tool, Tool) else FunctionTool(tool)
        name = made.spec.name
        held = self._tools.get(name)
        if held is not None and held is not made:
            raise ToolNameTaken(name)
        self._tools[name] = made
        return made

    def remove(self, name: str) -> Tool:
        """Forget the tool called ``name`` and return it.

        Raises:
            UnknownTool: no tool has that name.
        """
        tool = self[name]
        del self._tools[name]
        return tool

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """The tools' names, in registration order."""
        return list(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools' specs, in registration order (``ChatRequest(tools=...)``)."""
        return tuple(tool.spec for tool in self._tools.values())


async def run_tool_call(registry: ToolRegistry, call: ToolCall) -> ToolResult:
    """Run ``call`` with the tool of its name in ``registry``.

    Never raises an ``Exception``: an unknown tool, invalid arguments, a tool that
    raises, times out or returns something other than a ``str`` all give a result with
    ``is_error`` set and a ``content`` the model can act on, such as ``"error: invalid
    arguments for get_weather: missing 'city'"`` or ``"error: get_weather failed:
    ConnectionError: no route"``. Cancellation (``trio.Cancelled``) and other
    ``BaseException``\\s pass through. While tracing is on, the call is an
    ``execute_tool`` span.
    """
    with _tracing.ToolExecution(call) as execution:
        return execution.done(await _run_tool_call(registry, call))


async def _run_tool_call(registry: ToolRegistry, call: ToolCall) -> ToolResult:
    try:
        tool = registry[call.name]
        content = await tool.call(call.arguments)
        if not isinstance(content, str):
            raise TypeError(f"the tool returned a {type(content).__qualname__}, not a str")
    except (UnknownTool, InvalidToolArguments, ToolTimeout) as exc:
        return ToolResult(call, f"error: {exc}", is_error=True, error=exc)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ToolResult(call, f"error: {call.name} failed: {detail}", is_error=True, error=exc)
    return ToolResult(call, content)
