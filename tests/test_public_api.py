"""The public names of each public module are exactly its ``__all__``, sorted (httpx-style)."""

from __future__ import annotations
import __future__

import importlib
import types
import typing
from typing import Any

import pytest

import tinyagents

SUBMODULES = [
    "tinyagents.errors",
    "tinyagents.events",
    "tinyagents.mailbox",
    "tinyagents.supervisor",
    "tinyagents.actor",
    "tinyagents.llm",
    "tinyagents.memory",
    "tinyagents.testing",
    "tinyagents.crdt",
    "tinyagents.mcp",
]
# modules that also import public names of their siblings, or export constants (so only
# their __all__ is checked)
OTHER_MODULES = [
    "tinyagents.metrics",
    "tinyagents.transport",
    "tinyagents.cluster",
    "tinyagents.router",
    "tinyagents.registry",
    "tinyagents.agent",
    "tinyagents.team",
    "tinyagents.tool",
    "tinyagents.approval",
    "tinyagents.llm.middleware",
    "tinyagents.llm.openai",
    "tinyagents.llm.anthropic",
    "tinyagents.llm.ollama",
    "tinyagents.llm.mistral",
    "tinyagents.llm.openrouter",
]
PUBLIC_MODULES = ["tinyagents", *SUBMODULES, *OTHER_MODULES]


def _from_tinyagents(value: Any) -> bool:
    if isinstance(value, types.UnionType):
        return all(_from_tinyagents(arg) for arg in typing.get_args(value))
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and (module == "tinyagents" or module.startswith("tinyagents."))


def _public_names(module: types.ModuleType) -> set[str]:
    """Public names that the module defines or re-exports from tinyagents: not its imports
    of other libraries, not ``from __future__`` features, not type variables, not modules."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType | __future__._Feature | typing.TypeVar):
            continue
        if _from_tinyagents(value):
            names.add(name)
    return names


def _isort_style(name: str) -> tuple[int, str]:
    """ruff RUF022's order: SCREAMING_CASE, then CamelCase, then the rest."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_as_the_linter_wants(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert exported == sorted(exported, key=_isort_style)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_exists_has_no_duplicates_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, list)
    assert exported
    assert len(exported) == len(set(exported))
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member}, which does not exist"


def test_the_package_exports_exactly_its_public_names() -> None:
    exported = set(tinyagents.__all__)
    modules = {
        member
        for member in exported
        if isinstance(getattr(tinyagents, member, None), types.ModuleType)
    }
    assert exported - modules == _public_names(tinyagents) | {"__version__"}
    assert isinstance(tinyagents.__version__, str)


def test_the_modules_the_package_exports_are_its_submodules() -> None:
    for member in tinyagents.__all__:
        value = getattr(tinyagents, member)
        if isinstance(value, types.ModuleType):
            assert value.__name__ == f"tinyagents.{member}"
    assert {"errors", "events"} <= set(tinyagents.__all__)


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_module_exports_exactly_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    # type aliases such as Role = Literal[...] carry no module of their own
    aliases = {n for n in module.__all__ if typing.get_origin(getattr(module, n)) is not None}
    assert set(module.__all__) - aliases == _public_names(module) - aliases


@pytest.mark.parametrize("name", SUBMODULES)
def test_what_the_package_re_exports_is_the_same_object(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        if member in tinyagents.__all__:
            assert getattr(tinyagents, member) is getattr(module, member)
