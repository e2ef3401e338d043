"""ActorSystem(admin=...): the admin endpoint runs while the system does."""

from __future__ import annotations

import pytest
import trio

import tinyagents as ta
from tinyagents._address import format_address
from tinyagents._admin_client import admin_request
from tinyagents.admin import AdminError, AdminServer


async def test_the_admin_option_serves_the_endpoint_while_the_system_runs() -> None:
    async with ta.ActorSystem("node-a", admin="127.0.0.1:0") as system:
        admin = system.admin
        assert isinstance(admin, AdminServer)
        where = format_address(admin.address)
        assert admin.address[1] > 0
        status = await admin_request(where, None, "status")
        assert status["system"] == "node-a"
    # stopped with the system: nothing listens any more
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream(*admin.address)


async def test_the_admin_option_with_a_token_refuses_clients_without_it() -> None:
    async with ta.ActorSystem("node-a", admin=("127.0.0.1", 0), admin_token="s3cret") as system:
        assert system.admin is not None
        where = format_address(system.admin.address)
        assert (await admin_request(where, "s3cret", "status"))["system"] == "node-a"
        with pytest.raises(Exception, match="token"):
            await admin_request(where, "wrong", "status")
        assert system.admin.refused == 1


def test_no_admin_endpoint_unless_asked() -> None:
    assert ta.ActorSystem("quiet").admin is None


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"admin_token": "t"}, ValueError, "admin endpoint is off"),
        ({"admin": "0.0.0.0:7373"}, ValueError, "not a loopback address"),
        ({"admin": "nowhere"}, ValueError, "host:port"),
        ({"admin": True, "admin_token": 7}, TypeError, "token"),
    ],
)
def test_bad_admin_options_are_refused_at_construction(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ta.ActorSystem("bad", **options)  # type: ignore[arg-type]


async def test_an_admin_address_in_use_fails_the_system_start_and_stops_it() -> None:
    async with ta.ActorSystem("first", admin="127.0.0.1:0") as first:
        assert first.admin is not None
        taken = first.admin.address
        second = ta.ActorSystem("second", admin=taken)
        with pytest.raises(AdminError):
            async with second:
                pytest.fail("the body must not run")  # pragma: no cover
        assert not second.running
        with pytest.raises(ta.errors.SystemNotRunning):
            await second.spawn(ta.Actor)
