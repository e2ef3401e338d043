"""Two nodes in separate OS processes: node b runs in a child Python process, node a in
the test; tell, ask and a remote failure cross, and killing b mid-ask fails the ask with
NodeUnreachable at once."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.errors import ActorFailed, ActorStopped, NodeUnreachable, RemoteError
from tinyagents.transport import Transport

GUARD = 30

NODE_B = textwrap.dedent(
    """
    import sys
    import trio
    from tinyagents import Actor, ActorSystem
    from tinyagents.transport import Transport

    class Worker(Actor):
        async def receive(self, ctx, message):
            if message == "boom":
                raise KeyError("from another process")
            if message == "hang":
                await trio.sleep_forever()
            return ["b", message]

    async def main():
        async with ActorSystem("b") as system, Transport(
            system, secret=b"process secret"
        ) as transport:
            await system.spawn(Worker, name="worker")
            host, port = transport.address
            print(f"{host}:{port}", flush=True)
            await trio.sleep_forever()  # serve until the parent kills this process

    trio.run(main)
    """
)


async def read_line(stream: Any) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise AssertionError(f"node b exited before printing its address: {data!r}")
        data += chunk
    return data.decode().strip()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_nodes_in_separate_processes() -> None:
    with trio.fail_after(GUARD):
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", NODE_B], stdout=subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            address = await read_line(process.stdout)
            async with (
                ActorSystem("a") as system,
                Transport(system, secret=b"process secret"),
            ):
                worker = system.ref_for(f"tinyagents://b@{address}/user/worker")
                assert await worker.ask("hello", timeout=10) == ["b", "hello"]
                await worker.tell("a tell")
                with pytest.raises(ActorFailed) as caught:
                    await worker.ask("boom", timeout=10)
                assert isinstance(caught.value.__cause__, RemoteError)
                assert caught.value.__cause__.type_name == "KeyError"
                outcome: list[BaseException] = []

                async def hang() -> None:
                    try:
                        await worker.ask("hang", timeout=math.inf)
                    except NodeUnreachable as error:
                        outcome.append(error)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hang)
                    # an answered ask after the hanging one: the hang reached b
                    other = system.ref_for(f"tinyagents://b@{address}/user/other")
                    with pytest.raises(ActorStopped):  # nothing lives there
                        await other.ask("ping", timeout=10)
                    process.send_signal(signal.SIGKILL)
                assert len(outcome) == 1
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
