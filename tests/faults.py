"""Network faults for tests among real nodes: a gossip node's UDP socket that loses
packets, and a cut of the transport between chosen pairs of nodes."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from tinyagents.cluster import GossipCluster
from tinyagents.transport._service import Peer


class FaultyUDP:
    """A node's UDP socket, wrapped: drops outgoing packets with probability ``loss``
    (seeded); every packet either way while ``paused``, and those to and from the
    addresses in ``cut``."""

    def __init__(self, sock: Any, loss: float = 0.0, seed: int = 0) -> None:
        self._sock = sock
        self._random = random.Random(seed)
        self.loss = loss
        self.paused = False
        self.cut: set[tuple[str, int]] = set()
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    async def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        if (
            self.paused
            or tuple(address[:2]) in self.cut
            or (self.loss and self._random.random() < self.loss)
        ):
            self.dropped += 1
            await trio.lowlevel.checkpoint()
            return len(data)
        result: int = await self._sock.sendto(data, address)
        return result

    async def recvfrom(self, size: int) -> tuple[bytes, Any]:
        while True:
            data, sender = await self._sock.recvfrom(size)
            if not self.paused and tuple(sender[:2]) not in self.cut:
                return data, sender
            self.dropped += 1


def faulty(cluster: GossipCluster, loss: float = 0.0, seed: int = 0) -> FaultyUDP:
    """Wrap ``cluster``'s UDP socket (its loops read the attribute on every packet)."""
    wrapper = FaultyUDP(cluster._udp, loss, seed)
    cluster._udp = wrapper  # type: ignore[assignment]
    return wrapper


def cut_transport(monkeypatch: pytest.MonkeyPatch) -> set[frozenset[str]]:
    """Lose every transport frame between the pairs of node ids put in the returned set
    (until they are taken out again)."""
    cut: set[frozenset[str]] = set()
    enqueue = Peer.enqueue

    def lossy(self: Peer, item: list[object], meta: object = None, *, now: bool = False) -> None:
        if frozenset((self.transport.node, self.node)) in cut:
            return  # the network loses it
        enqueue(self, item, meta, now=now)

    monkeypatch.setattr(Peer, "enqueue", lossy)
    return cut


class Switch:
    """A fault that is on or off."""

    def __init__(self) -> None:
        self.on = False


def cut_push_pulls(monkeypatch: pytest.MonkeyPatch) -> Switch:
    """While the returned switch is on, every gossip push-pull over TCP (a join, a
    reconnect) fails as if the network were down."""
    switch = Switch()
    push_pull = GossipCluster._push_pull

    async def cut(self: GossipCluster, addr: tuple[str, int], *, join: bool) -> None:
        if switch.on:
            raise OSError("the network is partitioned")
        await push_pull(self, addr, join=join)

    monkeypatch.setattr(GossipCluster, "_push_pull", cut)
    return switch
