"""Typed structured output: an agent's ``output_type`` as a JSON Schema for the model,
and the model's answer checked against it and structured into that type.

A type whose schema is not an object (``list[City]``, ``int``, a union) is wrapped in
an object with one required property, ``value``, because providers ask for an object
at the top; the wrapper is taken off again before structuring.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cattrs

from .llm._types import Message, OutputFormat, ToolCall
from .tool import _problems, _Schemas

__all__ = ["OutputSpec"]

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _name_of(hint: Any) -> str:
    """A name for the schema: the type's own (``City``, ``list``), else ``output``."""
    name = getattr(hint, "__name__", None)
    cleaned = _NAME.sub("_", name).strip("_") if isinstance(name, str) else ""
    return cleaned[:64] or "output"


class OutputSpec:
    """What an agent's ``output_type`` asks of the model, and how its answer is read.

    Raises ``TypeError`` when made for a type that has no JSON Schema (the same types
    as tool arguments are supported, plus dataclasses and TypedDicts)."""

    def __init__(self, output_type: Any) -> None:
        self.type = output_type
        self.converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
        schemas = _Schemas(self.converter)
        try:
            schema = schemas.of(output_type)
        except TypeError as error:
            raise TypeError(f"unsupported output_type {output_type!r}: {error}") from None
        self.wrapped = schema.get("type") != "object"
        if self.wrapped:
            description = schema.pop("description", "")
            schema = {
                "type": "object",
                "properties": {"value": schema},
                "required": ["value"],
                "additionalProperties": False,
            }
            if description:
                schema["description"] = description
        self.schema = schema
        self.format = OutputFormat(
            _name_of(output_type), schema, description=str(schema.get("description", ""))
        )

    @property
    def name(self) -> str:
        """The name the schema is sent under (a tool's name for Anthropic)."""
        return self.format.name

    def answer_call(self, message: Message) -> ToolCall | None:
        """The call of the output tool in ``message`` (Anthropic's way), if any."""
        for call in message.tool_calls:
            if call.name == self.name:
                return call
        return None

    def parse(self, raw: str) -> Any:
        """The typed value of an answer's JSON text (maybe in a code fence). Raises
        ``ValueError`` saying what is wrong, in words the model can act on."""
        fenced = _FENCE.match(raw)
        try:
            value: Any = json.loads(fenced.group("body") if fenced else raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"the answer is not valid JSON ({error})") from None
        problems = _problems(value, self.schema)
        if problems:
            raise ValueError("; ".join(problems))
        if self.wrapped:
            value = value["value"]
        try:
            return self.converter.structure(value, self.type)
        except cattrs.BaseValidationError as error:
            raise ValueError("; ".join(cattrs.transform_error(error))) from None
        except Exception as error:  # a validator of the type itself
            raise ValueError(f"{type(error).__name__}: {error}") from None
