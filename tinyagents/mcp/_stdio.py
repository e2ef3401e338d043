"""The stdio transport: the server is a child process speaking newline-delimited
JSON-RPC on its stdin and stdout (internal).

Its stderr is its log: every line goes to the ``tinyagents.mcp`` logger (DEBUG) and
the last ones are kept, to be quoted when the process dies. Stopping closes its stdin
(the spec's way of asking it to exit), then sends SIGTERM, then SIGKILL, each after
``stop_timeout`` seconds, and reaps it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from ..errors import MCPConnectionLost
from ._connection import Connection, Message, NotificationHandler, encode

__all__ = ["StdioConnection", "StdioTransport"]

logger = logging.getLogger("tinyagents.mcp")

_READ = 64 * 1024


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class StdioConnection(Connection):
    """One run of the server's process."""

    def __init__(
        self,
        transport: StdioTransport,
        process: trio.Process,
        on_notification: NotificationHandler,
    ) -> None:
        super().__init__(transport.label, on_notification)
        self._transport = transport
        self._process = process
        self._send_lock = trio.Lock()
        self._closed = False

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    # -- reading ----------------------------------------------------------------------

    async def read_stdout(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        buffer = bytearray()
        skipping = False  # inside a line over the limit
        limit = self._transport.max_message_bytes
        try:
            while True:
                data = await stdout.receive_some(_READ)
                if not data:
                    break
                buffer += data
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end]).strip()
                    del buffer[: end + 1]
                    if skipping:
                        skipping = False
                    elif line:
                        await self._received(line)
                if len(buffer) > limit:
                    logger.warning(
                        "MCP server %s sent a line over %d bytes; dropped", self.label, limit
                    )
                    buffer.clear()
                    skipping = True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self._ended()

    async def _received(self, line: bytes) -> None:
        for message in self.parse(line):
            reply = self.route(message)
            if reply is not None:
                try:
                    await self._write(reply)
                except MCPConnectionLost:
                    return

    async def _ended(self) -> None:
        """stdout reached its end: the process exited or is about to."""
        if self._closed:
            self.lose(MCPConnectionLost("the connection was closed", server=self.label))
            return
        with trio.move_on_after(1.0):
            await self._process.wait()
        code = self._process.returncode
        what = "closed its stdout" if code is None else _describe_exit(code)
        tail = self._transport.stderr_tail()
        detail = f"the server process {what}" + (
            f"; its last stderr lines:\n{tail}" if tail else ""
        )
        self.lose(MCPConnectionLost(detail, server=self.label, returncode=code))

    async def read_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        pending = b""
        try:
            while True:
                data = await stderr.receive_some(_READ)
                if not data:
                    break
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._transport.log_line(line)
                if len(pending) > _READ:
                    self._transport.log_line(pending)
                    pending = b""
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if pending:
            self._transport.log_line(pending)

    # -- writing ----------------------------------------------------------------------

    async def _write(self, message: Message) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        if self.lost is not None:
            raise self.lost
        async with self._send_lock:
            try:
                await stdin.send_all(encode(message) + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                error = MCPConnectionLost(f"its stdin is closed ({exc})", server=self.label)
                self.lose(error)
                raise self.lost or error from exc

    async def exchange(self, message: Message) -> Message:
        key = message["id"]
        try:
            await self._write(message)
            return await self.wait_reply(key)
        except trio.Cancelled:
            if not self.answered(key) and self.lost is None:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    try:
                        await self._write(self.cancelled(key))
                    except MCPConnectionLost:
                        pass
            raise

    async def notify(self, message: Message) -> None:
        await self._write(message)

    async def aclose(self) -> None:
        """Close stdin, then SIGTERM, then SIGKILL (each after ``stop_timeout``), reap."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        grace = self._transport.stop_timeout
        with trio.CancelScope(shield=True):
            try:
                if process.returncode is None:
                    assert process.stdin is not None
                    async with self._send_lock:
                        await process.stdin.aclose()
                    with trio.move_on_after(grace):
                        await process.wait()
                if process.returncode is None:
                    process.terminate()
                    with trio.move_on_after(grace):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                await process.wait()
            finally:
                self.lose(MCPConnectionLost("the connection was closed", server=self.label))
                self.cancel_tasks()


class StdioTransport:
    """How to start the server's process; one :class:`StdioConnection` per start."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        stop_timeout: float,
        max_message_bytes: int,
        keep_stderr_lines: int = 200,
    ) -> None:
        self.command = [os.fspath(part) for part in command]
        self.label = " ".join(self.command)
        if len(self.label) > 120:
            self.label = self.label[:117] + "..."
        self.env = None if env is None else {**os.environ, **env}
        self.cwd = None if cwd is None else Path(cwd)
        self.stop_timeout = stop_timeout
        self.max_message_bytes = max_message_bytes
        self._stderr: deque[str] = deque(maxlen=keep_stderr_lines)

    def log_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self._stderr.append(text)
        logger.debug("%s: %s", self.label, text)

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    async def open(self, nursery: trio.Nursery, on_notification: NotificationHandler) -> Connection:
        try:
            process = await trio.lowlevel.open_process(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
            )
        except OSError as exc:
            raise MCPConnectionLost(f"could not be started: {exc}", server=self.label) from exc
        connection = StdioConnection(self, process, on_notification)
        connection.spawn(nursery, connection.read_stdout)
        connection.spawn(nursery, connection.read_stderr)
        return connection

    async def aclose(self) -> None:
        return None
