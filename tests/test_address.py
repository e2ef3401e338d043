"""Addresses as arguments: ``"host:port"`` strings and ``(host, port)`` tuples alike, and a
clear InvalidAddress for anything else."""

from __future__ import annotations

import pytest

from tinyagents._address import format_address, parse_address
from tinyagents.errors import InvalidAddress, TinyAgentsError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:7946", ("127.0.0.1", 7946)),
        (" localhost:0 ", ("localhost", 0)),
        ("[::1]:7946", ("::1", 7946)),
        (("127.0.0.1", 7946), ("127.0.0.1", 7946)),
        (["10.0.0.1", 1], ("10.0.0.1", 1)),
    ],
)
def test_accepted_forms(given: object, expected: tuple[str, int]) -> None:
    assert parse_address(given) == expected


def test_a_default_port_allows_a_bare_host() -> None:
    assert parse_address("127.0.0.1", default_port=7946) == ("127.0.0.1", 7946)
    assert parse_address("[::1]", default_port=7946) == ("::1", 7946)
    assert parse_address("127.0.0.1:1", default_port=7946) == ("127.0.0.1", 1)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:http", "is not a number"),
        ("127.0.0.1:70000", "0..65535"),
        ("::1:7946", "needs brackets"),
        ("[::1:7946", "unclosed"),
        ("[::1]7946", "no port after"),
        (":7946", "empty"),
        (("127.0.0.1", "7946"), "must be an int"),
        (("127.0.0.1", True), "must be an int"),
        (("127.0.0.1",), "expected"),
        ((7946, "127.0.0.1"), "host must be a str"),
        (7946, "expected"),
        (None, "expected"),
    ],
)
def test_rejected_forms_name_the_expected_one(given: object, problem: str) -> None:
    with pytest.raises(InvalidAddress, match=problem) as info:
        parse_address(given, what="bind")
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, TinyAgentsError)
    assert error.argument == "bind"
    assert error.value == given
    assert str(error).startswith(f"invalid bind address {given!r}")


def test_format_address() -> None:
    assert format_address(("127.0.0.1", 7946)) == "127.0.0.1:7946"
    assert format_address(("::1", 7946)) == "[::1]:7946"
    assert format_address(("node-a", 1)) == "node-a:1"
