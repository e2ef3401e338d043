"""The tinyagents command."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
import trio

from tinyagents import __version__


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinyagents", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_unknown_provider_is_a_usage_error() -> None:
    result = run_cli("stub-server", "--provider", "nope")
    assert result.returncode == 2
    assert "nope" in result.stderr


@pytest.mark.parametrize(
    ("provider", "path", "body"),
    [
        (
            "openai",
            "/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        ),
        (
            "anthropic",
            "/v1/messages",
            {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        ),
        (
            "ollama",
            "/api/chat",
            {"model": "m", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
        ),
    ],
)
async def test_stub_server_serves_until_interrupted(
    provider: str, path: str, body: dict[str, object]
) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-u", "-m", "tinyagents", "stub-server", "--provider", provider],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        base_url = line.decode().rsplit("base URL: ", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as client:
            response = await client.post(
                base_url + path, json=body, headers={"authorization": "Bearer x"}
            )
        assert response.status_code == 200
        assert "You said: hi" in response.text
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            await process.wait()
    assert process.returncode == 0
    assert process.stdout is not None
    assert process.stderr is not None
    with trio.fail_after(30):
        rest = b"".join([chunk async for chunk in process.stdout])
        errors = b"".join([chunk async for chunk in process.stderr])
    assert rest.decode().splitlines() == ["stopped"]  # one line, no traceback
    assert errors == b""


def test_a_taken_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("stub-server", "--provider", "openai", "--port", str(port))
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (
            "127.0.0.1:8001",
            "error: --host '127.0.0.1:8001' has a port in it; give the host "
            "alone ('127.0.0.1') and the port as --port",
        ),
        ("", "error: --host must be a host name or IP address such as '127.0.0.1' or '::1'"),
        ("local host", "error: --host must be a host name or IP address"),
    ],
)
def test_a_bad_host_is_a_clear_error(host: str, message: str) -> None:
    result = run_cli("stub-server", "--provider", "openai", "--host", host)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_an_ipv6_host_is_bracketed_in_the_base_url() -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "tinyagents", "stub-server", "-p", "ollama", "--host", "::1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ollama stub listening; base URL: http://[::1]:")
        base_url = line.rsplit("base URL: ", 1)[1].strip()
        assert httpx.get(base_url + "/", timeout=10).text == "Ollama is running"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.splitlines() == ["stopped"]
    assert err == ""


@pytest.mark.parametrize(
    "interrupt",
    [
        KeyboardInterrupt(),
        BaseExceptionGroup("from trio", [KeyboardInterrupt()]),
    ],
    ids=["plain", "in-a-group"],
)
def test_ctrl_c_at_any_moment_prints_one_line(
    monkeypatch: pytest.MonkeyPatch, interrupt: BaseException
) -> None:
    """However the interrupt arrives (before the server listens, or from trio in a
    group), the command ends with ``stopped``, status 0, and no traceback."""
    from typer.testing import CliRunner

    from tinyagents import cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise interrupt

    monkeypatch.setattr(cli.trio, "run", interrupted)
    result = CliRunner().invoke(cli.app, ["stub-server", "--provider", "openai"])
    assert result.exit_code == 0
    assert result.output == "stopped\n"
    assert result.exception is None

    def interrupted_early(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted_early)
    result = CliRunner().invoke(cli.app, ["stub-server", "--provider", "anthropic"])
    assert (result.exit_code, result.output) == (0, "stopped\n")


def test_a_listening_error_from_trio_in_a_group_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tinyagents import cli

    def fails(*args: object, **kwargs: object) -> None:
        raise BaseExceptionGroup("from trio", [OSError(98, "Address already in use")])

    monkeypatch.setattr(cli.trio, "run", fails)
    result = CliRunner().invoke(cli.app, ["stub-server", "-p", "openai", "--port", "8123"])
    assert result.exit_code == 2
    assert result.output == "error: cannot listen on 127.0.0.1:8123: Address already in use\n"
