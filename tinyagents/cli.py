"""The ``tinyagents`` command.

``tinyagents version`` prints the version; ``tinyagents stub-server --provider NAME
--port N`` serves a provider stub (see ``docs/testing.md``) until interrupted: Ctrl-C
ends it with one line, ``stopped``, and exit status 0; a bad ``--host`` or a port that
cannot be listened on prints one ``error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import enum
import importlib
from typing import Annotated

import trio
import typer

from ._address import format_address
from ._nursery import raise_unwrapped
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
    host: Annotated[
        str,
        typer.Option("--host", help="The address to listen on, without a port (such as ::1)."),
    ] = "127.0.0.1",
) -> None:
    """Serve a provider stub: real wire format, echo replies, until Ctrl-C."""
    try:
        _serve_stub(provider, port, host)
    except KeyboardInterrupt:
        typer.echo("stopped")


def _serve_stub(provider: StubProvider, port: int, host: str) -> None:
    """Run the stub until interrupted: ``KeyboardInterrupt`` (plain, never in a group)
    on Ctrl-C; ``typer.Exit(2)`` with a one-line message for a bad ``--host`` or a
    port that cannot be listened on."""
    from .testing._ports import check_host

    try:
        host = check_host(host, "--host", port_as="--port")
    except (TypeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    module_name, class_name = _STUBS[provider]
    stub_class = getattr(importlib.import_module(module_name), class_name)
    stub = stub_class(port=port, host=host)

    async def serve() -> None:
        async with stub:
            typer.echo(f"{provider.value} stub listening; base URL: {stub.base_url}")
            await trio.sleep_forever()

    try:
        try:
            trio.run(serve)
        except BaseExceptionGroup as group:
            raise_unwrapped(group)
    except OSError as failure:
        why = failure.strerror or failure
        typer.echo(f"error: cannot listen on {format_address((host, port))}: {why}", err=True)
        raise typer.Exit(code=2) from None


def main() -> None:
    """Entry point of the ``tinyagents`` console script."""
    app()
