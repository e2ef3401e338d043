"""One child process for the test helpers that run other programs (internal).

:class:`ManagedProcess` is the lifecycle that :class:`~tinyagents.testing.LlamaServer`
and :class:`~tinyagents.testing.SerfAgent` share: start a program with its output (stdout
and stderr) in a temporary log file, wait until it is ready with a deadline, stop it
bounded (SIGTERM, then SIGKILL after a grace period, then reap it), and quote the log's
last lines in every error. It runs in trio (``async with``, :meth:`astart`,
:meth:`await_ready`, :meth:`astop`: trio's own process support, no threads) or blocking
(``with``, :meth:`start`, :meth:`wait_ready`, :meth:`stop`: for session-scoped pytest
fixtures and plain scripts).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import trio

from .._validate import check_seconds

__all__ = ["ManagedProcess", "describe_exit"]

TAIL_LINES = 30
_KEPT_LINES = 200  # what log_tail() can still show once the log file is closed
_TAIL_BYTES = 256 * 1024  # the end of the log that log_tail() reads


def describe_exit(returncode: int) -> str:
    """``exited with status N``, or ``was killed by SIGKILL`` for a signal (a negative
    ``returncode``, as :mod:`subprocess` reports it)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class ManagedProcess:
    """A child process with its output in a log file, started once, stopped bounded.

    ``command`` is the program and its arguments. ``label`` names it in error messages
    (``"llama-server"``, ``"serf agent 'alpha'"``), which read ``"<label> <what went
    wrong>: <command line>"`` followed by the log's last lines; ``error`` is the exception
    class raised (``RuntimeError`` by default). ``stop_timeout`` is the grace period
    between SIGTERM and SIGKILL when stopping. ``env`` and ``cwd`` are passed to the
    process; its stdin is ``/dev/null``.

    An instance runs one process, once, in one of two modes chosen by how it is started:

    * trio: ``async with ManagedProcess(...) as process:`` (or :meth:`astart` /
      :meth:`astop`), with :meth:`await_ready` and :meth:`await_exit`;
    * blocking: ``with ManagedProcess(...) as process:`` (or :meth:`start` /
      :meth:`stop`), with :meth:`wait_ready` and :meth:`wait_exit`.

    Entering the block starts the process (it does not wait for readiness); leaving it
    stops the process, whatever the block raised, and lets that exception through
    unchanged. :meth:`log_tail` works while the process runs and after it has stopped
    (the log file itself is deleted when the process is stopped).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        label: str | None = None,
        stop_timeout: float = 10.0,
        error: type[Exception] = RuntimeError,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        if isinstance(command, str) or not command:
            raise TypeError(f"command must be a non-empty sequence of arguments, not {command!r}")
        stop_timeout = check_seconds(stop_timeout, "stop_timeout", inf=False)
        self.command = [os.fspath(part) for part in command]
        self.label = label if label is not None else Path(self.command[0]).name
        self.stop_timeout = float(stop_timeout)
        self.error = error
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._log: IO[bytes] | None = None
        self._kept_tail = ""
        self._trio: trio.Process | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._started = False

    def __repr__(self) -> str:
        if not self._started:
            state = "not started"
        elif self.returncode is None:
            state = f"running, pid {self.pid}"
        else:
            state = describe_exit(self.returncode)
        return f"<ManagedProcess {self.label} {state}>"

    # -- state ----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        process = self._trio or self._popen
        return None if process is None else process.pid

    @property
    def returncode(self) -> int | None:
        """``None`` while the process runs (or before it starts), else its exit status
        (negative: the signal that killed it). Never blocks."""
        if self._trio is not None:
            return self._trio.returncode
        if self._popen is not None:
            return self._popen.poll()
        return None

    @property
    def mode(self) -> str | None:
        """``"trio"`` or ``"blocking"``: how it was started (``None`` before)."""
        if self._trio is not None:
            return "trio"
        if self._popen is not None:
            return "blocking"
        return None

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines the process printed (stdout and stderr together)."""
        text = self._kept_tail if self._log is None else self._read_log()
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, why: str) -> Exception:
        """The error to raise: ``"<label> <why>: <command>"`` and the log's last lines."""
        return self.error(
            f"{self.label} {why}: {' '.join(self.command)}\n"
            f"its last output lines:\n{self.log_tail()}"
        )

    # -- signals (both modes) ---------------------------------------------------

    def terminate(self) -> None:
        """Send SIGTERM, if it runs. Does not wait."""
        process = self._trio or self._popen
        if process is not None and self.returncode is None:
            process.terminate()

    def kill(self) -> None:
        """Send SIGKILL, if it runs. Does not wait: the process is reaped by
        :meth:`astop` / :meth:`stop` (leaving the block does it)."""
        process = self._trio or self._popen
        if process is not None and self.returncode is None:
            process.kill()

    # -- helpers ---------------------------------------------------------------

    def _prepare(self) -> None:
        if self._started:
            raise self.error(f"{self.label}: a ManagedProcess runs once; make a new one")
        self._started = True
        prefix = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.label)
        # open for as long as the process runs; closed by _close_log()
        self._log = tempfile.TemporaryFile(prefix=f"{prefix}-", suffix=".log")  # noqa: SIM115

    def _could_not_start(self, exc: OSError) -> Exception:
        self._close_log()
        return self.error(f"{self.label} could not be started: {exc}: {' '.join(self.command)}")

    def _read_log(self) -> str:
        """The end of the log, read without moving the file offset that the child
        shares (its writes must keep going to the end of the file)."""
        assert self._log is not None
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - _TAIL_BYTES)
        if hasattr(os, "pread"):
            data = os.pread(fd, size - start, start)
        else:  # pragma: no cover - Windows
            self._log.flush()
            position = self._log.tell()
            self._log.seek(start)
            data = self._log.read(size - start)
            self._log.seek(position)
        text = data.decode("utf-8", "replace")
        return text.split("\n", 1)[1] if start and "\n" in text else text

    def _close_log(self) -> None:
        if self._log is not None:
            self._kept_tail = "\n".join(self._read_log().splitlines()[-_KEPT_LINES:])
            self._log.close()
        self._log = None

    # -- trio -----------------------------------------------------------------

    async def astart(self) -> None:
        """Start the process (trio mode). Returns once it is started, not ready.

        Raises ``error`` if it cannot be started (no such program, not executable) or
        if this instance was started before."""
        self._prepare()
        try:
            self._trio = await trio.lowlevel.open_process(self.command, **self._options())
        except OSError as exc:
            raise self._could_not_start(exc) from exc

    def _options(self) -> dict[str, Any]:
        """How both modes start the process: no stdin, stdout and stderr to the log."""
        return {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log,
            "stderr": subprocess.STDOUT,
            "env": self.env,
            "cwd": self.cwd,
        }

    def _require_trio(self) -> trio.Process:
        if self._trio is None:
            raise self.error(f"{self.label} was not started with trio (astart)")
        return self._trio

    async def await_ready(
        self,
        check: Callable[[], Awaitable[bool]],
        *,
        timeout: float,
        poll: float = 0.1,
        not_ready: str = "was not ready",
    ) -> None:
        """Wait until ``await check()`` returns true, polling every ``poll`` seconds.

        Raises ``error`` quoting the log if the process exits first (``"<label> exited
        with status N: ..."``) or if ``timeout`` seconds pass (``"<label> <not_ready>
        within <timeout> s: ..."``). ``timeout`` may be ``math.inf``. An exception from
        ``check`` propagates."""
        process = self._require_trio()
        with trio.move_on_after(timeout) as deadline:
            while True:
                if process.returncode is not None:
                    raise self.failure(describe_exit(process.returncode))
                if await check():
                    return
                await trio.sleep(poll)
        if deadline.cancelled_caught:
            raise self.failure(f"{not_ready} within {timeout} s")

    async def await_exit(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the process to exit by itself; whether it
        did."""
        process = self._require_trio()
        with trio.move_on_after(timeout):
            await process.wait()
        return process.returncode is not None

    async def astop(self) -> None:
        """Stop the process and reap it: SIGTERM, then SIGKILL if it has not exited
        within ``stop_timeout`` seconds. Shielded from cancellation, so that a cancelled
        caller never leaves the process behind; returns at once if it already exited.
        The log file is closed (:meth:`log_tail` keeps its last lines). Safe to call more
        than once, and on an instance that never started."""
        process = self._trio
        with trio.CancelScope(shield=True):
            try:
                if process is not None:
                    if process.returncode is None:
                        process.terminate()
                        with trio.move_on_after(self.stop_timeout):
                            await process.wait()
                    if process.returncode is None:
                        process.kill()
                    await process.wait()
            finally:
                self._close_log()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- blocking ---------------------------------------------------------------

    def start(self) -> None:
        """Start the process (blocking mode); see :meth:`astart`."""
        self._prepare()
        try:
            self._popen = subprocess.Popen(self.command, **self._options())
        except OSError as exc:
            raise self._could_not_start(exc) from exc

    def _require_popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise self.error(f"{self.label} was not started in blocking mode (start)")
        return self._popen

    def wait_ready(
        self,
        check: Callable[[], bool],
        *,
        timeout: float,
        poll: float = 0.1,
        not_ready: str = "was not ready",
    ) -> None:
        """Block until ``check()`` returns true; see :meth:`await_ready`."""
        process = self._require_popen()
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise self.failure(describe_exit(process.returncode))
            if check():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.failure(f"{not_ready} within {timeout} s")
            time.sleep(min(poll, left) if math.isfinite(left) else poll)

    def wait_exit(self, timeout: float) -> bool:
        """Block at most ``timeout`` seconds for the process to exit by itself; whether
        it did."""
        process = self._require_popen()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """Stop the process and reap it (blocking mode); see :meth:`astop`. On a process
        started with trio it only sends SIGKILL (trio reaps it in :meth:`astop`)."""
        if self._trio is not None:
            self.kill()
            return
        process = self._popen
        try:
            if process is not None:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(self.stop_timeout)
                    except subprocess.TimeoutExpired:
                        process.kill()
                process.wait()
        finally:
            self._close_log()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
