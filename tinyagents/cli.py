"""The ``tinyagents`` command.

``tinyagents version`` prints the version; ``tinyagents stub-server --provider NAME
--port N`` serves a provider stub (see ``docs/testing.md``) until interrupted.
"""

from __future__ import annotations

import enum
import importlib
from typing import Annotated

import trio
import typer

from ._version import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="tinyagents",
    help="Inspect and support tinyagents nodes.",
    no_args_is_help=True,
    add_completion=False,
)


class StubProvider(enum.StrEnum):
    """The dialects ``stub-server`` can speak."""

    openai = "openai"
    anthropic = "anthropic"
    ollama = "ollama"
    mistral = "mistral"
    openrouter = "openrouter"


_STUBS = {
    StubProvider.openai: ("tinyagents.testing._openai_stub", "OpenAIStub"),
    StubProvider.openrouter: ("tinyagents.testing._openai_stub", "OpenRouterStub"),
    StubProvider.mistral: ("tinyagents.testing._openai_stub", "MistralStub"),
    StubProvider.anthropic: ("tinyagents.testing._anthropic_stub", "AnthropicStub"),
    StubProvider.ollama: ("tinyagents.testing._ollama_stub", "OllamaStub"),
}


@app.command()
def version() -> None:
    """Print the tinyagents version."""
    typer.echo(__version__)


@app.command("stub-server")
def stub_server(
    provider: Annotated[
        StubProvider, typer.Option("--provider", "-p", help="The dialect to speak.")
    ],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 picks a free port.")] = 0,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve a provider stub: real wire format, echo replies, until Ctrl-C."""
    module_name, class_name = _STUBS[provider]
    stub_class = getattr(importlib.import_module(module_name), class_name)
    stub = stub_class(port=port, host=host)

    async def serve() -> None:
        async with stub:
            typer.echo(f"{provider.value} stub listening; base URL: {stub.base_url}")
            await trio.sleep_forever()

    failure: OSError | None = None
    try:
        trio.run(serve)
    except* KeyboardInterrupt:
        typer.echo("stopped")
    except* OSError as group:
        failure = group.exceptions[0]  # type: ignore[assignment]
    if failure is not None:
        why = failure.strerror or failure
        typer.echo(f"error: cannot listen on {host}:{port}: {why}", err=True)
        raise typer.Exit(code=2)


def main() -> None:
    """Entry point of the ``tinyagents`` console script."""
    app()
