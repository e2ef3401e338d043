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


def test_a_taken_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("stub-server", "--provider", "openai", "--port", str(port))
    assert result.returncode == 2
    assert "cannot listen" in result.stderr
