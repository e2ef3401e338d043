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

import base64
import binascii
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeAlias

import attrs
import trio

from .._address import format_address, parse_address
from .._validate import check_seconds
from ..errors import InvalidAddress
from ._ports import HOST, free_port
from ._process import TAIL_LINES as _TAIL_LINES
from ._process import ManagedProcess

__all__ = [
    "SerfAgent",
    "SerfError",
    "SerfMember",
    "SerfNotInstalled",
    "SerfProtocol",
    "parse_members",
    "serf_binary",
]

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


_LOG_LEVELS = ("trace", "debug", "info", "warn", "err")

JoinTarget: TypeAlias = "str | tuple[str, int] | SerfAgent"
"""Where to join: ``"host:port"``, ``(host, port)`` or a running :class:`SerfAgent`."""


def _address(target: object, what: str = "join") -> str:
    """A join target as ``host:port`` (``[v6]:port``); :class:`InvalidAddress` otherwise."""
    if isinstance(target, SerfAgent):
        return target.address
    return format_address(parse_address(target, what=what))


def _targets(join: object) -> list[str]:
    """The ``join`` argument as addresses: a sequence of targets, or one target alone."""
    if isinstance(join, str | SerfAgent) or (
        isinstance(join, tuple) and len(join) == 2 and isinstance(join[1], int)
    ):
        return [_address(join)]
    if not isinstance(join, Iterable):
        raise InvalidAddress(join, "join", "expected a sequence of 'host:port' addresses")
    return [_address(target) for target in join]


def _check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(f"encrypt_key must be a base64 str, not {key!r}")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"encrypt_key must be base64 (of 16, 24 or 32 bytes), not {key!r}"
        ) from None
    if len(raw) not in (16, 24, 32):
        raise ValueError(
            "encrypt_key must be the base64 of a 16, 24 or 32 byte AES key, "
            f"not of {len(raw)} bytes"
        )
    return key


class SerfAgent:
    """A ``serf agent`` on 127.0.0.1 for the duration of an ``async with`` or ``with`` block.

    Entering the block picks free ports, starts the agent (``-node``, ``-tag k=v``,
    ``-encrypt`` if ``encrypt_key`` is given: a base64 AES key of 16, 24 or 32 bytes,
    ``-join`` for each of ``join``, ``-log-level``) and waits (at most
    ``startup_timeout`` seconds) until ``serf members`` answers over its RPC address and,
    if ``join`` targets were given, lists another member. Leaving the block stops it
    (SIGTERM: Serf shuts down *without* a graceful leave; SIGKILL after
    ``stop_timeout``), shielded from cancellation, and lets the block's own exception (a
    ``ValueError``, ``KeyboardInterrupt``) through unchanged. The agent's output goes to
    a temporary file: :meth:`log_tail` (also after the block). An agent that exits or
    never answers raises :class:`SerfError` quoting it.

    ``join`` (and the targets of :meth:`join` / :meth:`ajoin`) are ``"host:port"``
    strings (``"[::1]:7946"`` for IPv6), ``(host, port)`` tuples or running
    :class:`SerfAgent` instances; one target may be given alone. A bad one raises
    :class:`~tinyagents.errors.InvalidAddress` (a ``ValueError``) naming the expected
    form, at construction; so do other bad arguments (``TypeError`` / ``ValueError``:
    an empty ``name``, an ``encrypt_key`` that is not the base64 of 16, 24 or 32 bytes, a
    ``log_level`` Serf does not know, a timeout <= 0).

    An instance runs once. :meth:`leave` (graceful leave, after which Serf exits),
    :meth:`kill` (SIGKILL, for failure tests) and :meth:`stop` end it early.
    """

    def __init__(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        encrypt_key: str | None = None,
        join: Sequence[JoinTarget] | JoinTarget = (),
        log_level: str = "debug",
        startup_timeout: float = 20.0,
        command_timeout: float = 15.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"name must be a non-empty str without spaces, not {name!r}")
        if tags is not None and not isinstance(tags, Mapping):
            raise TypeError(f"tags must be a mapping of str to str, not {tags!r}")
        for key, value in (tags or {}).items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise TypeError(f"tags must map non-empty str to str, not {key!r}: {value!r}")
        if log_level not in _LOG_LEVELS:
            raise ValueError(
                f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {log_level!r}"
            )
        if isinstance(extra_args, str) or not all(isinstance(a, str) for a in extra_args):
            raise TypeError(f"extra_args must be a sequence of str arguments, not {extra_args!r}")
        self.name = name
        self.tags = dict(tags or {})
        self.encrypt_key = _check_key(encrypt_key)
        self.join_targets = _targets(join)
        self.log_level = log_level
        self.startup_timeout = check_seconds(
            startup_timeout, "startup_timeout", zero=False, inf=False
        )
        self.command_timeout = check_seconds(
            command_timeout, "command_timeout", zero=False, inf=False
        )
        self.stop_timeout = check_seconds(stop_timeout, "stop_timeout", zero=False, inf=False)
        self.extra_args = tuple(extra_args)
        self._binary: str | None = None
        self._bind_port: int | None = None
        self._rpc_port: int | None = None
        self._process: ManagedProcess | None = None
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
        return format_address((HOST, self.bind_port))

    @property
    def rpc_addr(self) -> str:
        """``127.0.0.1:RPC_PORT``."""
        return format_address((HOST, self.rpc_port))

    @property
    def pid(self) -> int | None:
        """The agent's process id while it runs (or ran)."""
        return None if self._process is None else self._process.pid

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
        """The last ``lines`` lines the agent printed (of its last start attempt)."""
        return "" if self._process is None else self._process.log_tail(lines)

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

    def _new_ports(self) -> None:
        self._bind_port = free_port(udp=True)
        self._rpc_port = free_port()

    def _new_process(self) -> ManagedProcess:
        self._process = ManagedProcess(
            self.command(),
            label=f"serf agent {self.name!r}",
            stop_timeout=self.stop_timeout,
            error=SerfError,
        )
        return self._process

    def _port_clash(self) -> bool:
        return "address already in use" in self.log_tail(200).lower()

    def _ready(self, members: list[SerfMember]) -> bool:
        return not self.join_targets or any(m.name != self.name for m in members)

    _NOT_READY = "did not answer `serf members`"

    # -- trio -------------------------------------------------------------------

    async def __aenter__(self) -> SerfAgent:
        self._prepare()

        async def ready() -> bool:
            returncode, output = await self._arun("members", "-format=json")
            return returncode == 0 and self._ready(parse_members(output))

        try:
            for attempt in range(_START_ATTEMPTS):
                process = self._new_process()
                await process.astart()
                try:
                    await process.await_ready(
                        ready, timeout=self.startup_timeout, poll=_POLL, not_ready=self._NOT_READY
                    )
                except SerfError:
                    if attempt + 1 < _START_ATTEMPTS and self._port_clash():
                        await process.astop()
                        self._new_ports()
                        continue
                    raise
                break
        except BaseException:
            await self.astop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

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

    async def amembers(self) -> list[SerfMember]:
        """The members this agent sees (``serf members -format=json``)."""
        returncode, output = await self._arun("members", "-format=json")
        if returncode != 0:
            raise self._command_failed(self._cli("members", "-format=json"), returncode, output)
        return parse_members(output)

    async def ajoin(self, *targets: JoinTarget) -> None:
        """Join the cluster of ``targets`` (``serf join``); :class:`SerfError` if it fails,
        :class:`~tinyagents.errors.InvalidAddress` for a target that is not an address."""
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
        if self._process is not None and self._process.mode == "trio":
            await self._process.await_exit(self.stop_timeout)
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

    async def astop(self) -> None:
        """Stop the agent (SIGTERM, SIGKILL after ``stop_timeout``) and reap it; shielded
        from cancellation. Does nothing if it is not running."""
        if self._process is not None:
            await self._process.astop()

    # -- blocking ---------------------------------------------------------------

    def __enter__(self) -> SerfAgent:
        self._prepare()

        def ready() -> bool:
            returncode, output = self._run("members", "-format=json")
            return returncode == 0 and self._ready(parse_members(output))

        try:
            for attempt in range(_START_ATTEMPTS):
                process = self._new_process()
                process.start()
                try:
                    process.wait_ready(
                        ready, timeout=self.startup_timeout, poll=_POLL, not_ready=self._NOT_READY
                    )
                except SerfError:
                    if attempt + 1 < _START_ATTEMPTS and self._port_clash():
                        process.stop()
                        self._new_ports()
                        continue
                    raise
                break
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

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

    def members(self) -> list[SerfMember]:
        """The members this agent sees (``serf members -format=json``)."""
        returncode, output = self._run("members", "-format=json")
        if returncode != 0:
            raise self._command_failed(self._cli("members", "-format=json"), returncode, output)
        return parse_members(output)

    def join(self, *targets: JoinTarget) -> None:
        """Join the cluster of ``targets`` (``serf join``); :class:`SerfError` if it fails,
        :class:`~tinyagents.errors.InvalidAddress` for a target that is not an address."""
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
        if self._process is not None and self._process.mode == "blocking":
            self._process.wait_exit(self.stop_timeout)
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

        In a trio block, use :meth:`astop` (``async with`` exit does): here an agent
        started by ``async with`` only gets SIGKILL, and is reaped when its block exits."""
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        """SIGKILL the agent: it vanishes without a leave, so its peers see it ``failed``.

        Works in both modes; the process is reaped when the block exits."""
        if self._process is not None:
            self._process.kill()
