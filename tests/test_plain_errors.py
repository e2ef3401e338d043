"""Every public service's ``async with`` lets the block's error out as itself: ``except
ValueError`` catches a ValueError raised in the block, and a KeyboardInterrupt stays a
KeyboardInterrupt (the cluster and stub services have tests of their own)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tinyagents import ActorSystem
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.memory import SQLiteMemory

URL = "http://127.0.0.1:9"  # never contacted


@asynccontextmanager
async def subscription() -> Any:
    async with ActorSystem() as system, system.events.subscribe() as events:
        yield events


SERVICES: dict[str, Callable[[Path], AbstractAsyncContextManager[Any]]] = {
    "ActorSystem": lambda _: ActorSystem(),
    "events.subscribe": lambda _: subscription(),
    "OpenAI": lambda _: OpenAI(api_key="k", base_url=URL),
    "Anthropic": lambda _: Anthropic(api_key="k", base_url=URL),
    "Mistral": lambda _: Mistral(api_key="k", base_url=URL),
    "OpenRouter": lambda _: OpenRouter(api_key="k", base_url=URL),
    "Ollama": lambda _: Ollama(base_url=URL),
    "SQLiteMemory": lambda tmp: SQLiteMemory(tmp / "memory.db", "talk"),
}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_value_error_comes_out_as_itself(service: str, tmp_path: Path) -> None:
    error = ValueError("from the block")
    with pytest.raises(ValueError, match="from the block") as info:  # not in a group
        async with SERVICES[service](tmp_path):
            raise error
    assert info.value is error


@pytest.mark.parametrize("service", list(SERVICES))
async def test_keyboard_interrupt_stays_a_keyboard_interrupt(service: str, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        async with SERVICES[service](tmp_path):
            raise KeyboardInterrupt
