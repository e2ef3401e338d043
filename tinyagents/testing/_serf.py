"""Real HashiCorp Serf agents on 127.0.0.1, for interop tests of the cluster layer.

``tinyagents.cluster`` speaks memberlist's protocol; the reference implementation it must
interoperate with is Serf (``apt-get install -y serf`` on Debian/Ubuntu). This module
runs ``serf agent`` processes and drives them through the ``serf`` command line over
their RPC address:

* :func:`serf_binary` finds ``serf`` on ``PATH`` (or raises :class:`SerfNotInstalled`
  saying how to install it).
* :class:`SerfAgent` runs one agent for as long as an ``async with`` (trio) or ``with``
  block lasts. Its gossip port (TCP and UDP) and RPC port (TCP) are free ports of
  127.0.0.1 picked at start; nothing listens on any other address (``-bind`` and
  ``-rpc-addr`` are both on 127.0.0.1, and multicast discovery is never enabled).
  :meth:`SerfAgent.members` lists the members the agent sees as :class:`SerfMember`
  records.

Every blocking method has a trio twin prefixed with ``a`` (:meth:`SerfAgent.amembers`,
:meth:`SerfAgent.ajoin`, ...). Every command and wait is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import attrs
import trio

from ._ports import HOST, free_port

__all__ = [
    "SerfAgent",
    "SerfError",
    "SerfMember",
    "SerfNotInstalled",
    "SerfProtocol",
    "parse_members",
    "serf_binary",
]

_TAIL_LINES = 30
_POLL = 0.1
_START_ATTEMPTS = 3  # a picked port can be taken by someone else before serf binds it


class SerfError(RuntimeError):
    """A Serf agent or ``serf`` command failed, or did not answer in time."""


class SerfNotInstalled(SerfError):
    """No ``serf`` executable on ``PATH``."""


def serf_binary() -> str:
    """The path of the ``serf`` executable found on ``PATH``.

    Raises :class:`SerfNotInstalled` (naming ``apt-get install -y serf``) if there is none.
    """
    found = shutil.which("serf")
    if found is None:
        raise SerfNotInstalled(
            "the HashiCorp Serf agent `serf` is not on PATH; install it with "
            "`apt-get install -y serf` (Debian/Ubuntu) or from https://github.com/hashicorp/serf"
        )
    return found


@attrs.frozen
class SerfProtocol:
    """The Serf protocol versions a member speaks: ``min <= version <= max``."""

    min: int
    max: int
    version: int


@attrs.frozen
class SerfMember:
    """One member as a Serf agent lists it (``serf members -format=json``)."""

    name: str
    addr: str
    """The member's host (IP address), without the port."""
    port: int
    tags: dict[str, str]
    status: str
    """``alive``, ``leaving``, ``left``, ``failed`` (or ``none``)."""
    protocol: SerfProtocol


def _split_host(addr: str, port: int) -> str:
    """``addr`` without its port: Serf prints ``host:port`` (``[v6]:port`` for IPv6)."""
    if addr.startswith("["):
        return addr[1 : addr.index("]")]
    host, sep, tail = addr.rpartition(":")
    if sep and ":" not in host and tail == str(port):
        return host
    return addr  # a bare IPv4 or IPv6 address


def parse_members(text: str) -> list[SerfMember]:
    """Parse the output of ``serf members -format=json`` into :class:`SerfMember` records."""
    try:
        document = json.loads(text)
        members = []
        for entry in document["members"]:
            port = int(entry["port"])
            protocol = entry.get("protocol") or {}
            members.append(
                SerfMember(
                    name=str(entry["name"]),
                    addr=_split_host(str(entry["addr"]), port),
                    port=port,
                    tags={str(k): str(v) for k, v in (entry.get("tags") or {}).items()},
                    status=str(entry["status"]),
                    protocol=SerfProtocol(
                        min=int(protocol.get("min", 0)),
                        max=int(protocol.get("max", 0)),
                        version=int(protocol.get("version", 0)),
                    ),
                )
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SerfError(f"unexpected `serf members -format=json` output: {text!r}") from exc
    return members


def _address(target: str | tuple[str, int] | SerfAgent) -> str:
    if isinstance(target, SerfAgent):
        return target.address
    if isinstance(target, tuple):
        return f"{target[0]}:{target[1]}"
    return target


class SerfAgent:
    """A ``serf agent`` on 127.0.0.1 for the duration of an ``async with`` or ``with`` block.

    Entering the block picks free ports, starts the agent (``-node``, ``-tag k=v``,
    ``-encrypt`` if ``encrypt_key`` is given: a base64 AES key of 16, 24 or 32 bytes,
    ``-join`` for each of ``join``, ``-log-level``) and waits (at most
    ``startup_timeout`` seconds) until ``serf members`` answers over its RPC address and,
    if ``join`` targets were given, lists another member. Leaving the block stops it
    (SIGTERM: Serf shuts down *without* a graceful leave; SIGKILL after
    ``stop_timeout``). The agent's output goes to a temporary file: :meth:`log_tail`.
    An agent that exits or never answers raises :class:`SerfError` quoting it.

    An instance runs once. :meth:`leave` (graceful leave, after which Serf exits),
    :meth:`kill` (SIGKILL, for failure tests) and :meth:`stop` end it early.
    """

    def __init__(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        encrypt_key: str | None = None,
        join: Sequence[str | tuple[str, int] | SerfAgent] = (),
        log_level: str = "debug",
        startup_timeout: float = 20.0,
        command_timeout: float = 15.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.tags = dict(tags or {})
        self.encrypt_key = encrypt_key
        self.join_targets = [_address(target) for target in join]
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.command_timeout = command_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self._binary: str | None = None
        self._bind_port: int | None = None
        self._rpc_port: int | None = None
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._trio_process: trio.Process | None = None
        self._started = False

    def __repr__(self) -> str:
        where = self.address if self._bind_port is not None else "not running"
        return f"<SerfAgent {self.name} {where}>"

    # -- addresses --------------------------------------------------------------

    @property
    def bind_port(self) -> int:
        """The gossip port (TCP and UDP) on 127.0.0.1."""
        if self._bind_port is None:
            raise SerfError("the SerfAgent has not been started")
        return self._bind_port

    @property
    def rpc_port(self) -> int:
        """The RPC port (TCP) on 127.0.0.1 that the ``serf`` command line talks to."""
        if self._rpc_port is None:
            raise SerfError("the SerfAgent has not been started")
        return self._rpc_port

    @property
    def address(self) -> str:
        """``127.0.0.1:BIND_PORT``: where other members join it."""
        return f"{HOST}:{self.bind_port}"

    @property
    def rpc_addr(self) -> str:
        """``127.0.0.1:RPC_PORT``."""
        return f"{HOST}:{self.rpc_port}"

    @property
    def pid(self) -> int | None:
        process = self._trio_process or self._process
        return None if process is None else process.pid

    def command(self) -> list[str]:
        """The command line that starts the agent (the ports must be chosen)."""
        assert self._binary is not None
        args = [
            self._binary,
            "agent",
            f"-node={self.name}",
            f"-bind={self.address}",
            f"-advertise={self.address}",  # a bare host would advertise port 7946
            f"-rpc-addr={self.rpc_addr}",
            f"-log-level={self.log_level}",
        ]
        for key, value in self.tags.items():
            args += ["-tag", f"{key}={value}"]
        if self.encrypt_key is not None:
            args.append(f"-encrypt={self.encrypt_key}")
        args += [f"-join={target}" for target in self.join_targets]
        return args + list(self.extra_args)

    def _cli(self, *args: str) -> list[str]:
        assert self._binary is not None
        return [self._binary, args[0], f"-rpc-addr={self.rpc_addr}", *args[1:]]

    # -- output -----------------------------------------------------------------

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines the agent printed."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _failed(self, why: str) -> SerfError:
        return SerfError(
            f"serf agent {self.name!r} {why}: {' '.join(self.command())}\n"
            f"its last output lines:\n{self.log_tail()}"
        )

    def _command_failed(self, args: Sequence[str], returncode: int, output: str) -> SerfError:
        return SerfError(
            f"`{' '.join(args)}` failed with exit status {returncode}: {output.strip()}"
        )

    # -- lifecycle helpers ------------------------------------------------------

    def _prepare(self) -> None:
        if self._started:
            raise SerfError("a SerfAgent runs once; make a new one")
        self._started = True
        self._binary = serf_binary()
        self._new_ports()
        # open for as long as the block lasts; closed by _cleanup()
        self._log = tempfile.TemporaryFile(prefix=f"serf-{self.name}-", suffix=".log")  # noqa: SIM115

    def _new_ports(self) -> None:
        self._bind_port = free_port(udp=True)
        self._rpc_port = free_port()

    def _port_clash(self) -> bool:
        return "address already in use" in self.log_tail(200).lower()

    def _ready(self, members: list[SerfMember]) -> bool:
        return not self.join_targets or any(m.name != self.name for m in members)

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
        self._log = None
        self._process = None
        self._trio_process = None

    # -- trio -------------------------------------------------------------------

    async def __aenter__(self) -> SerfAgent:
        self._prepare()
        try:
            for attempt in range(_START_ATTEMPTS):
                assert self._log is not None
                self._log.seek(0)
                self._log.truncate()
                self._trio_process = await trio.lowlevel.open_process(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    await self._await_ready()
                except SerfError:
                    if attempt + 1 < _START_ATTEMPTS and self._port_clash():
                        await self._astop_process()
                        self._new_ports()
                        continue
                    raise
                break
        except BaseException:
            await self.astop()
            self._cleanup()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.astop()
        finally:
            self._cleanup()

    async def _arun(self, *args: str) -> tuple[int, str]:
        command = self._cli(*args)
        try:
            with trio.fail_after(self.command_timeout):
                result = await trio.run_process(
                    command,
                    stdin=b"",
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        except trio.TooSlowError:
            raise SerfError(
                f"`{' '.join(command)}` did not finish within {self.command_timeout} s"
            ) from None
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        return result.returncode, output

    async def _await_ready(self) -> None:
        process = self._trio_process
        assert process is not None
        with trio.move_on_after(self.startup_timeout) as deadline:
            while True:
                if process.returncode is not None:
                    raise self._failed(f"exited with status {process.returncode}")
                returncode, output = await self._arun("members", "-format=json")
                if returncode == 0 and self._ready(parse_members(output)):
                    return
                await trio.sleep(_POLL)
        if deadline.cancelled_caught:
            raise self._failed(f"did not answer `serf members` within {self.startup_timeout} s")

    async def amembers(self) -> list[SerfMember]:
        """The members this agent sees (``serf members -format=json``)."""
        returncode, output = await self._arun("members", "-format=json")
        if returncode != 0:
            raise self._command_failed(self._cli("members", "-format=json"), returncode, output)
        return parse_members(output)

    async def ajoin(self, *targets: str | tuple[str, int] | SerfAgent) -> None:
        """Join the cluster of ``targets`` (``serf join``); :class:`SerfError` if it fails."""
        args = ("join", *(_address(target) for target in targets))
        returncode, output = await self._arun(*args)
        if returncode != 0:
            raise self._command_failed(self._cli(*args), returncode, output)

    async def aleave(self) -> None:
        """Leave gracefully (``serf leave``) and wait for the agent to exit, which Serf does
        after a graceful leave (killed if it has not within ``stop_timeout`` seconds)."""
        returncode, output = await self._arun("leave")
        if returncode != 0:
            raise self._command_failed(self._cli("leave"), returncode, output)
        process = self._trio_process
        if process is not None:
            with trio.move_on_after(self.stop_timeout):
                await process.wait()
        await self.astop()

    async def await_status(self, name: str, status: str, *, timeout: float = 30.0) -> SerfMember:
        """Poll :meth:`amembers` until member ``name`` has ``status``; return it.

        Raises :class:`SerfError` with what was last seen after ``timeout`` seconds."""
        seen: list[SerfMember] = []
        with trio.move_on_after(timeout):
            while True:
                seen = await self.amembers()
                for member in seen:
                    if member.name == name and member.status == status:
                        return member
                await trio.sleep(_POLL)
        raise SerfError(
            f"{self.name!r} did not see {name!r} {status} within {timeout} s; it saw {seen}"
        )

    async def _astop_process(self) -> None:
        process = self._trio_process
        with trio.CancelScope(shield=True):
            if process is not None:
                if process.returncode is None:
                    process.terminate()
                    with trio.move_on_after(self.stop_timeout):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                await process.wait()

    async def astop(self) -> None:
        """Stop the agent (SIGTERM, SIGKILL after ``stop_timeout``) and reap it."""
        await self._astop_process()

    # -- blocking ---------------------------------------------------------------

    def __enter__(self) -> SerfAgent:
        self._prepare()
        try:
            for attempt in range(_START_ATTEMPTS):
                assert self._log is not None
                self._log.seek(0)
                self._log.truncate()
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    self._wait_ready()
                except SerfError:
                    if attempt + 1 < _START_ATTEMPTS and self._port_clash():
                        self.stop()
                        self._new_ports()
                        continue
                    raise
                break
        except BaseException:
            self.stop()
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.stop()
        finally:
            self._cleanup()

    def _run(self, *args: str) -> tuple[int, str]:
        command = self._cli(*args)
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.command_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SerfError(
                f"`{' '.join(command)}` did not finish within {self.command_timeout} s"
            ) from None
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        return result.returncode, output

    def _poll_until(self, timeout: float, check: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None

        def ready() -> bool:
            if process.poll() is not None:
                raise self._failed(f"exited with status {process.returncode}")
            returncode, output = self._run("members", "-format=json")
            return returncode == 0 and self._ready(parse_members(output))

        if not self._poll_until(self.startup_timeout, ready):
            raise self._failed(f"did not answer `serf members` within {self.startup_timeout} s")

    def members(self) -> list[SerfMember]:
        """The members this agent sees (``serf members -format=json``)."""
        returncode, output = self._run("members", "-format=json")
        if returncode != 0:
            raise self._command_failed(self._cli("members", "-format=json"), returncode, output)
        return parse_members(output)

    def join(self, *targets: str | tuple[str, int] | SerfAgent) -> None:
        """Join the cluster of ``targets`` (``serf join``); :class:`SerfError` if it fails."""
        args = ("join", *(_address(target) for target in targets))
        returncode, output = self._run(*args)
        if returncode != 0:
            raise self._command_failed(self._cli(*args), returncode, output)

    def leave(self) -> None:
        """Leave gracefully (``serf leave``) and wait for the agent to exit, which Serf does
        after a graceful leave (killed if it has not within ``stop_timeout`` seconds)."""
        returncode, output = self._run("leave")
        if returncode != 0:
            raise self._command_failed(self._cli("leave"), returncode, output)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(self.stop_timeout)
        self.stop()

    def wait_status(self, name: str, status: str, *, timeout: float = 30.0) -> SerfMember:
        """Poll :meth:`members` until member ``name`` has ``status``; return it.

        Raises :class:`SerfError` with what was last seen after ``timeout`` seconds."""
        seen: list[SerfMember] = []
        found: list[SerfMember] = []

        def check() -> bool:
            seen[:] = self.members()
            found[:] = [m for m in seen if m.name == name and m.status == status]
            return bool(found)

        if self._poll_until(timeout, check):
            return found[0]
        raise SerfError(
            f"{self.name!r} did not see {name!r} {status} within {timeout} s; it saw {seen}"
        )

    def stop(self) -> None:
        """Stop the agent (SIGTERM, SIGKILL after ``stop_timeout``) and reap it.

        In a trio block, use :meth:`astop` (``async with`` exit does)."""
        if self._trio_process is not None:
            # started by ``async with``: signal it here, trio reaps it on exit
            if self._trio_process.returncode is None:
                self._trio_process.kill()
            return
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the agent: it vanishes without a leave, so its peers see it ``failed``.

        Works in both modes; the process is reaped when the block exits."""
        process = self._trio_process or self._process
        if process is not None and process.returncode is None:
            process.kill()
