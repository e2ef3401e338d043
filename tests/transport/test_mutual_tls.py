"""Mutual TLS between nodes, with throwaway certificates made by trustme."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from tinyagents import Actor, ActorSystem, Context
from tinyagents.errors import NodeUnreachable
from tinyagents.transport import TLS, Transport

GUARD = 20


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


def node_tls(ca: trustme.CA, directory: Path, name: str) -> TLS:
    directory.mkdir(exist_ok=True)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    cert = ca.issue_cert("127.0.0.1", f"{name}.nodes.test")
    cert_file = directory / f"{name}.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    return TLS.mutual(ca_file, cert_file)


async def ask_across(tls_a: TLS, tls_b: TLS, **options: Any) -> tuple[Any, Transport]:
    async with (
        ActorSystem("a") as system_a,
        Transport(system_a, tls=tls_a, **options),
        ActorSystem("b") as system_b,
        Transport(system_b, tls=tls_b, **options) as transport_b,
    ):
        await system_b.spawn(Echo, name="echo")
        host, port = transport_b.address
        ref = system_a.ref_for(f"tinyagents://b@{host}:{port}/user/echo")
        try:
            return await ref.ask("over TLS", timeout=10), transport_b
        except NodeUnreachable as error:
            return error, transport_b


async def test_mutual_tls_carries_asks(tmp_path: Path) -> None:
    ca = trustme.CA()
    with trio.fail_after(GUARD):
        answer, _ = await ask_across(
            node_tls(ca, tmp_path / "a", "a"), node_tls(ca, tmp_path / "b", "b")
        )
        assert answer == "over TLS"
        # TLS and a shared secret together
        answer, _ = await ask_across(
            node_tls(ca, tmp_path / "a", "a"),
            node_tls(ca, tmp_path / "b", "b"),
            secret=b"and a secret too",
        )
        assert answer == "over TLS"


async def test_a_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        outcome, transport_b = await ask_across(
            node_tls(trustme.CA(), tmp_path / "a", "a"), node_tls(trustme.CA(), tmp_path / "b", "b")
        )
        assert isinstance(outcome, NodeUnreachable)
        assert transport_b.stats.connections_refused == 1
        assert transport_b.stats.connections_accepted == 0


def test_tls_wants_ssl_contexts() -> None:
    with pytest.raises(TypeError, match="SSLContext"):
        TLS("server.pem", "client.pem")  # type: ignore[arg-type]
