"""The process helper behind LlamaServer and SerfAgent (``tinyagents.testing._process``),
proved with short Python child processes.

Readiness is awaited on a real event (the child connects to a listener of the test, or
prints a line) rather than a sleep; the grace period before SIGKILL runs on trio's
virtual clock, so a child that ignores SIGTERM costs no real time and the grace is seen
exactly.
"""

from __future__ import annotations

import math
import signal
import sys
import textwrap

import pytest
import trio
import trio.testing

from tinyagents.testing._process import ManagedProcess, describe_exit

PYTHON = sys.executable
BOUND = 30.0  # real-time bound on anything that could hang; never asserted


def child(source: str, *args: str) -> list[str]:
    return [PYTHON, "-u", "-c", textwrap.dedent(source), *args]


# Connects to the test's listener once its SIGTERM handler is in place, then ignores
# SIGTERM forever (only SIGKILL ends it).
STUBBORN = """
    import signal, socket, sys, time
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, staying", flush=True))
    socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
"""

READY_THEN_WAIT = """
    import sys, time
    print("starting", flush=True)
    print("ready", flush=True)
    time.sleep(3600)
"""

CRASH = """
    import sys
    for i in range(50):
        print(f"line {i}")
    print("fatal: no model at /nowhere", file=sys.stderr)
    sys.exit(3)
"""


def printed(process: ManagedProcess, line: str) -> bool:
    return line in process.log_tail(1000).splitlines()


async def test_ready_then_stopped_by_sigterm() -> None:
    process = ManagedProcess(child(READY_THEN_WAIT), label="sleeper", stop_timeout=BOUND)

    async def ready() -> bool:
        return printed(process, "ready")

    with trio.fail_after(BOUND):
        async with process:
            assert process.mode == "trio"
            assert process.pid is not None
            await process.await_ready(ready, timeout=BOUND, poll=0.01)
            assert process.returncode is None
    assert process.returncode == -signal.SIGTERM
    assert process.log_tail() == "starting\nready"  # still readable after the block
    assert "was killed by SIGTERM" in repr(process)


async def test_a_crash_before_ready_raises_with_the_log_tail() -> None:
    process = ManagedProcess(child(CRASH), label="crasher", stop_timeout=BOUND)

    async def never() -> bool:
        return False

    with trio.fail_after(BOUND), pytest.raises(RuntimeError) as info:
        async with process:
            await process.await_ready(never, timeout=math.inf, poll=0.01)
    message = str(info.value)
    assert message.startswith(f"crasher exited with status 3: {PYTHON} -u -c")
    tail = message.split("its last output lines:\n", 1)[1].splitlines()
    assert len(tail) == 30
    assert tail[-1] == "fatal: no model at /nowhere"
    assert tail[-2] == "line 49"


async def test_not_ready_in_time_raises_with_the_log_tail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class NotUp(Exception):
        pass

    process = ManagedProcess(child(READY_THEN_WAIT), label="slow", stop_timeout=BOUND, error=NotUp)

    async def never() -> bool:
        await trio.sleep(1.0)
        return False

    async with process:
        with pytest.raises(NotUp, match=r"^slow was not healthy within 5\.0 s: ") as info:
            await process.await_ready(never, timeout=5.0, not_ready="was not healthy")
        assert trio.current_time() == 5.0
    assert "its last output lines:" in str(info.value)


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]

    async def connected() -> bool:
        stream = await listener.accept()  # real I/O, no deadline: the clock stays put
        await stream.aclose()
        return True

    process = ManagedProcess(child(STUBBORN, str(port)), label="stubborn", stop_timeout=60.0)
    async with listener, process:
        await process.await_ready(connected, timeout=math.inf)
        stopping = trio.current_time()
    assert trio.current_time() - stopping == 60.0  # the whole grace, on the virtual clock
    assert process.returncode == -signal.SIGKILL


async def test_stopping_is_shielded_from_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    process = ManagedProcess(child(READY_THEN_WAIT), label="sleeper", stop_timeout=BOUND)
    with trio.CancelScope() as scope:
        async with process:
            scope.cancel()
            await trio.sleep_forever()
    assert process.returncode is not None  # stopped and reaped though cancelled


async def test_the_body_error_comes_out_unchanged() -> None:
    error = ValueError("from the body")
    process = ManagedProcess(child(READY_THEN_WAIT), stop_timeout=BOUND)
    with trio.fail_after(BOUND), pytest.raises(ValueError, match="from the body") as info:
        async with process:
            raise error
    assert info.value is error
    assert process.returncode is not None
    with trio.fail_after(BOUND), pytest.raises(KeyboardInterrupt):
        async with ManagedProcess(child(READY_THEN_WAIT), stop_timeout=BOUND):
            raise KeyboardInterrupt


async def test_a_missing_program_and_a_second_start_are_clear_errors() -> None:
    with pytest.raises(RuntimeError, match=r"^no-such-program could not be started: "):
        async with ManagedProcess(["/nonexistent/no-such-program", "--flag"]):
            pass  # pragma: no cover
    process = ManagedProcess(child(READY_THEN_WAIT), stop_timeout=BOUND)
    async with process:
        with pytest.raises(RuntimeError, match="runs once"):
            await process.astart()


def test_blocking_mode_ready_crash_and_exit() -> None:
    with ManagedProcess(child(READY_THEN_WAIT), label="sleeper", stop_timeout=BOUND) as process:
        assert process.mode == "blocking"
        process.wait_ready(lambda: printed(process, "ready"), timeout=BOUND, poll=0.01)
        assert not process.wait_exit(0.0)
    assert process.returncode == -signal.SIGTERM
    assert process.log_tail() == "starting\nready"

    with (
        pytest.raises(RuntimeError, match=r"^crasher exited with status 3: ") as info,
        ManagedProcess(child(CRASH), label="crasher") as crasher,
    ):
        crasher.wait_ready(lambda: False, timeout=math.inf, poll=0.01)
    assert str(info.value).endswith("line 49\nfatal: no model at /nowhere")

    with ManagedProcess(child("print('bye')"), label="quick") as quick:
        assert quick.wait_exit(BOUND)
        assert quick.returncode == 0
    assert quick.log_tail() == "bye"


def test_blocking_mode_kills_a_child_ignoring_sigterm_after_the_grace() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(BOUND)
        port = server.getsockname()[1]
        process = ManagedProcess(child(STUBBORN, str(port)), label="stubborn", stop_timeout=0.2)
        with process:

            def connected() -> bool:
                server.accept()[0].close()
                return True

            process.wait_ready(connected, timeout=BOUND)
    assert process.returncode == -signal.SIGKILL


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="sequence of arguments"):
        ManagedProcess("python -c pass")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of arguments"):
        ManagedProcess([])
    with pytest.raises(ValueError, match="stop_timeout"):
        ManagedProcess([PYTHON], stop_timeout=-1)


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(2) == "exited with status 2"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-200) == "was killed by signal 200"


def test_the_log_is_read_without_disturbing_the_child() -> None:
    """Reading the tail while the child writes never moves the offset the child writes at
    (the file description is shared), so none of its output is overwritten."""
    source = """
        import time
        for i in range(2000):
            print(f"line {i:04d}", flush=True)
        print("done", flush=True)
        time.sleep(3600)
    """
    expected = [f"line {i:04d}" for i in range(2000)] + ["done"]
    with ManagedProcess(child(source), label="writer", stop_timeout=BOUND) as process:
        process.wait_ready(lambda: printed(process, "done"), timeout=BOUND, poll=0.0005)
        assert process.log_tail(5000).splitlines() == expected
    assert process.log_tail(2) == "line 1999\ndone"
