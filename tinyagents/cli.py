"""The ``tinyagents`` command.

``tinyagents status | members | actors | watch`` inspect a live node through its admin
endpoint (:mod:`tinyagents.admin`), at ``--addr`` (env ``TINYAGENTS_ADDR``, default
``127.0.0.1:7373``) with ``--token`` (env ``TINYAGENTS_TOKEN``); ``--json`` prints
machine output. A node that cannot be reached, or refuses, prints one ``error: ...``
line and exits with status 1; usage errors (an option the endpoint rejects as a bad
request included, such as an unknown ``watch --type``), and filters that match nothing,
exit with status 2. ``watch`` streams events until Ctrl-C, which ends it with status 0.

``tinyagents version`` (or ``--version``) prints the version; ``tinyagents stub-server
--provider NAME --port N`` serves a provider stub (see ``docs/testing.md``) until
interrupted: Ctrl-C ends it with one line, ``stopped``, and exit status 0; a bad
``--host`` or a port that cannot be listened on prints one ``error: ...`` line and
exits with status 2.
"""

from __future__ import annotations

import enum
import importlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import trio
import typer

from ._address import format_address
from ._nursery import raise_unwrapped
from ._version import __version__
from .admin import DEFAULT_ADMIN_ADDRESS, WATCH_TYPES

__all__ = ["app", "main"]

app = typer.Typer(
    name="tinyagents",
    help="Inspect and support tinyagents nodes.",
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Inspect and support tinyagents nodes."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


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


# -- inspecting a node -------------------------------------------------------------------

Addr = Annotated[
    str,
    typer.Option("--addr", envvar="TINYAGENTS_ADDR", help="The node's admin endpoint, host:port."),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="TINYAGENTS_TOKEN", help="The endpoint's bearer token."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _query(addr: str, token: str | None, op: str, **arguments: Any) -> Any:
    """The result of one admin request, or exit 1 (unreachable, refused) / 2 (a bad
    ``--addr``, a request the endpoint calls bad) with one line."""
    from ._admin_client import admin_request

    _check_addr(addr)
    with _admin_errors():
        return _run(lambda: admin_request(addr, token or None, op, **arguments))


@contextmanager
def _admin_errors() -> Iterator[None]:
    """Exit with one line for the client's errors: status 2 for a ``BadRequest`` reply
    (the options asked for something the endpoint does not have), 1 for the rest (the
    node cannot be reached, refuses the connection, or speaks another version)."""
    from ._admin_client import AdminErrorReply, AdminRefused, AdminUnreachable

    try:
        yield
    except AdminErrorReply as error:
        if error.kind == "BadRequest":
            _fail(error.detail, 2)
        _fail(str(error), 1)
    except (AdminUnreachable, AdminRefused) as error:
        _fail(str(error), 1)


def _run(function: Callable[[], Awaitable[Any]]) -> Any:
    """``trio.run(function)``, a lone error out of trio's groups as itself (Ctrl-C a
    plain ``KeyboardInterrupt``)."""
    try:
        return trio.run(function)
    except BaseExceptionGroup as group:
        raise_unwrapped(group)


def _check_addr(addr: str) -> None:
    from ._address import parse_address

    try:
        parse_address(addr, what="--addr", default_port=7373)
    except (TypeError, ValueError) as error:
        _fail(str(error), 2)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


def _table(*columns: str) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


def _show(renderable: Any) -> None:
    from rich.console import Console

    Console(soft_wrap=True).print(renderable)


def _count(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.3f}"


@app.command()
def status(addr: Addr = DEFAULT_ADMIN_ADDRESS, token: Token = None, as_json: Json = False) -> None:
    """The node: id, version, uptime, actors, mailboxes, dead letters, LLM usage."""
    result = _query(addr, token, "status")
    if as_json:
        _print_json(result)
        return
    table = _table("", "")
    table.show_header = False
    mailboxes = result["mailboxes"]
    dead = result["dead_letters"]
    reasons = ", ".join(f"{reason} {_count(n)}" for reason, n in sorted(dead["by_reason"].items()))
    table.add_row("node", result["node"])
    table.add_row("version", result["version"])
    table.add_row("uptime", f"{result['uptime']:.1f}s")
    table.add_row("actors", _count(result["actors"]))
    table.add_row(
        "mailboxes",
        f"{_count(mailboxes['queued'])} queued, {_count(mailboxes['processed'])} processed, "
        f"{_count(mailboxes['dropped'])} dropped",
    )
    table.add_row("dead letters", _count(dead["total"]) + (f" ({reasons})" if reasons else ""))
    table.add_row("restarts", _count(result["restarts"]))
    if not result["llm"]:
        table.add_row("llm", "no calls")
    for provider, usage in sorted(result["llm"].items()):
        table.add_row(
            f"llm {provider}",
            f"{_count(usage['calls'])} calls, {_count(usage['errors'])} errors, "
            f"{_count(usage['input_tokens'])} input / {_count(usage['output_tokens'])} "
            "output tokens",
        )
    _show(table)


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        _fail(f"{option} {pattern!r} is not a regular expression: {error}", 2)


@app.command()
def members(
    addr: Addr = DEFAULT_ADMIN_ADDRESS,
    token: Token = None,
    as_json: Json = False,
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="Only members whose status matches this regexp."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Only members with tag k matching a regexp: k=RE (repeat)."),
    ] = None,
) -> None:
    """The cluster's members, with Serf's columns: name, address, status, tags."""
    wanted_status = None if status_filter is None else _compile(status_filter, "--status")
    wanted_tags = []
    for item in tag or []:
        key, equals, pattern = item.partition("=")
        if not equals or not key:
            _fail(f"--tag takes key=regexp, not {item!r}", 2)
        wanted_tags.append((key, _compile(pattern, "--tag")))
    found = [
        member
        for member in _query(addr, token, "members")
        if (wanted_status is None or wanted_status.fullmatch(member["status"]))
        and all(
            key in member["tags"] and regexp.fullmatch(member["tags"][key])
            for key, regexp in wanted_tags
        )
    ]
    if not found:
        _fail("no member matches the filters", 2)
    if as_json:
        _print_json(found)
        return
    table = _table("Name", "Address", "Status", "Tags")
    for member in found:
        where = format_address((member["addr"], member["port"]))
        tags = ",".join(f"{key}={value}" for key, value in sorted(member["tags"].items()))
        table.add_row(member["name"], where, member["status"], tags)
    _show(table)


@app.command()
def actors(
    addr: Addr = DEFAULT_ADMIN_ADDRESS,
    token: Token = None,
    as_json: Json = False,
    path: Annotated[
        str | None, typer.Option("--path", help="Only actors at or under this path.")
    ] = None,
) -> None:
    """The actor tree: path, type, state, mailbox, processed, dropped, restarts."""
    found = _query(addr, token, "actors", path=path)
    if not found:
        _fail("no actor matches" if path else "the node has no actors", 2)
    if as_json:
        _print_json(found)
        return
    table = _table("Path", "Type", "State", "Mailbox", "Processed", "Dropped", "Restarts")
    for actor in found:
        mailbox = actor["mailbox"]
        capacity = "∞" if mailbox["capacity"] is None else _count(mailbox["capacity"])
        table.add_row(
            actor["path"],
            actor["type"],
            actor["state"] + (" (busy)" if mailbox["busy"] else ""),
            f"{_count(mailbox['length'])}/{capacity}",
            _count(mailbox["processed"]),
            _count(mailbox["dropped"]),
            _count(actor["restarts"]),
        )
    _show(table)


@app.command()
def watch(
    addr: Addr = DEFAULT_ADMIN_ADDRESS,
    token: Token = None,
    as_json: Json = False,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help=f"Only events of this type (repeat): {', '.join(WATCH_TYPES)}.",
        ),
    ] = None,
) -> None:
    """Stream the node's events (lifecycle, members, dead letters) until Ctrl-C."""
    from ._admin_client import admin_watch

    _check_addr(addr)

    def show(message: dict[str, Any]) -> None:
        if as_json:
            typer.echo(json.dumps(message.get("event", message)))
        elif "lost" in message:
            typer.echo(f"... {message['lost']} events lost (this client read too slowly)")
        else:
            typer.echo(_describe_event(message["event"]))

    try:
        with _admin_errors():
            _run(lambda: admin_watch(addr, token or None, types, show))
    except KeyboardInterrupt:
        return


def _describe_event(event: dict[str, Any]) -> str:
    moment = time.strftime("%H:%M:%S", time.localtime(event.get("time", 0)))
    kind = event.get("type", "?")
    details = []
    for key, value in event.items():
        if key in ("type", "time"):
            continue
        if isinstance(value, dict) and "name" in value and "status" in value:
            value = f"{value['name']} {value['status']}"
        details.append(f"{key}={value}")
    return f"{moment} {kind:<16} {' '.join(details)}"


def main() -> None:
    """Entry point of the ``tinyagents`` console script."""
    app()
