"""Argument checks shared by the public constructors (internal).

Each raises at construction, naming the argument and what was expected: a
``TypeError`` for a value of the wrong type, a ``ValueError`` for one out of range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import TypeVar

import trio

__all__ = [
    "check_enum",
    "check_int",
    "check_items",
    "check_number",
    "check_optional",
    "check_seconds",
    "check_stream",
    "check_strings",
]

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


def check_number(
    value: object,
    name: str,
    *,
    minimum: float = -math.inf,
    above: bool = False,
    maximum: float = math.inf,
    allow_inf: bool = False,
    kind: str = "a number",
) -> float:
    """``value`` as a float: a real number (not a bool, not NaN), ``>= minimum`` (``>``
    when ``above``), ``<= maximum``, finite unless ``allow_inf``. ``kind`` names what
    is expected in the messages ("a number of seconds")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {kind}, not {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} must be {kind}, not NaN")
    if math.isinf(number) and not allow_inf:
        raise ValueError(f"{name} must be finite, not {value!r}")
    if number < minimum or (above and number == minimum):
        bound = f"> {minimum:g}" if above else f">= {minimum:g}"
        raise ValueError(f"{name} must be {kind} {bound}, not {value!r}")
    if number > maximum:
        raise ValueError(f"{name} must be {kind} <= {maximum:g}, not {value!r}")
    return number


def check_seconds(value: object, name: str, *, zero: bool = True, inf: bool = True) -> float:
    """A duration in seconds: ``>= 0`` (``> 0`` unless ``zero``), ``math.inf`` allowed
    unless ``inf`` is false."""
    return check_number(
        value, name, minimum=0.0, above=not zero, allow_inf=inf, kind="a number of seconds"
    )


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """An ``int`` (not a bool), ``>= minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value!r}")
    return value


def check_enum(value: object, kind: type[E], name: str) -> E:
    """A member of ``kind``."""
    if isinstance(value, kind):
        return value
    choices = ", ".join(f"{kind.__name__}.{member.name}" for member in kind)
    raise TypeError(f"{name} must be one of {choices}, not {value!r}")


def check_items(value: object, kind: type[T], name: str) -> tuple[T, ...]:
    """A sequence of ``kind`` as a tuple; a lone ``kind``, a string, bytes or a mapping is
    refused, since iterating it would take it apart."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be a sequence of {kind.__name__}, not the single string {value!r:.80}"
        )
    if isinstance(value, kind | Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of {kind.__name__}, not {value!r:.80}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"{name} must hold {kind.__name__} items, not {item!r:.80}")
    return items


def check_optional(value: object, kind: type[T], name: str) -> T | None:
    """``value`` if it is ``None`` or a ``kind``, else ``TypeError``."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} (or None), not {value!r}")
    return value


def check_strings(value: object, name: str) -> tuple[str, ...]:
    """A sequence of ``str`` as a tuple (see :func:`check_items`)."""
    return check_items(value, str, name)


def check_stream(value: object, name: str) -> None:
    """``value`` is ``None`` or a send channel: a trio ``SendChannel``, or anything with
    ``send`` and ``aclose`` methods (a prompt's or a resume's stream of chunks)."""
    if value is None or isinstance(value, trio.abc.SendChannel):
        return
    if callable(getattr(value, "send", None)) and callable(getattr(value, "aclose", None)):
        return
    raise TypeError(f"{name} must be None or a trio send channel of Chunk, not {value!r:.80}")
