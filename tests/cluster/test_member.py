"""Members, their states, tags and events, and the Cluster protocol (DESIGN.md section 8)."""

from __future__ import annotations

import attrs
import pytest

import tinyagents.cluster as cluster
from tinyagents.cluster import (
    ClusterError,
    JoinFailed,
    MalformedMessage,
    Member,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspect,
    MemberUpdated,
    MetaTooLarge,
    ProtocolVersions,
    decode_tags,
    encode_tags,
)
from tinyagents.errors import TinyAgentsError

ADDRESS = ("10.0.0.1", 7946)


def test_member_states_are_memberlists_node_states() -> None:
    assert [(s.name, s.value) for s in MemberState] == [
        ("ALIVE", 0),
        ("SUSPECT", 1),
        ("DEAD", 2),
        ("LEFT", 3),
    ]
    assert MemberState.FAILED is MemberState.DEAD
    assert [s.label for s in MemberState] == ["alive", "suspect", "failed", "left"]
    assert MemberState(2) is MemberState.DEAD


def test_protocol_versions_default_to_what_a_serf_agent_sends() -> None:
    versions = ProtocolVersions()
    assert versions.to_vsn() == bytes([1, 5, 2, 2, 5, 5])
    assert ProtocolVersions.from_vsn(bytes([1, 5, 3, 2, 5, 4])) == ProtocolVersions(
        1, 5, 3, 2, 5, 4
    )
    with pytest.raises(MalformedMessage, match="not 3"):
        ProtocolVersions.from_vsn(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="pcur"):
        ProtocolVersions(pcur=256)


def test_a_member_is_a_frozen_value() -> None:
    member = Member("node-a", ADDRESS)
    assert member.meta == b""
    assert member.state is MemberState.ALIVE
    assert member.incarnation == 0
    assert member.versions == ProtocolVersions()
    assert (member.host, member.port) == ADDRESS
    assert member == Member("node-a", ["10.0.0.1", 7946])  # type: ignore[arg-type]
    assert hash(member) == hash(Member("node-a", ADDRESS))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        member.state = MemberState.DEAD  # type: ignore[misc]
    assert attrs.evolve(member, state=MemberState.SUSPECT).state is MemberState.SUSPECT


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"id": ""}, ValueError, "non-empty string"),
        ({"address": ("", 1)}, ValueError, "host"),
        ({"address": ("h", 65536)}, ValueError, "port"),
        ({"meta": "text"}, TypeError, "bytes"),
        ({"meta": bytes(513)}, MetaTooLarge, "513 bytes, more than the limit of 512"),
        ({"incarnation": -1}, ValueError, "unsigned 32-bit"),
        ({"state": 0}, TypeError, "state"),
    ],
)
def test_members_are_validated(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    fields: dict[str, object] = {"id": "n", "address": ADDRESS}
    fields.update(kwargs)
    with pytest.raises(error, match=match):
        Member(**fields)  # type: ignore[arg-type]


def test_meta_of_exactly_512_bytes_is_allowed() -> None:
    assert len(Member("n", ADDRESS, bytes(512)).meta) == 512
    assert issubclass(MetaTooLarge, ValueError)


def test_tags_are_a_read_only_view_of_serf_meta() -> None:
    member = Member.with_tags("node-a", ADDRESS, {"role": "web", "dc": "east"})
    assert member.meta == bytes.fromhex("ff82a26463a465617374a4726f6c65a3776562")
    assert dict(member.tags) == {"dc": "east", "role": "web"}
    with pytest.raises(TypeError):
        member.tags["dc"] = "west"  # type: ignore[index]
    assert Member("n", ADDRESS, b"db").tags == {"role": "db"}  # bare role, Serf protocol 2
    assert Member("n", ADDRESS).tags == {"role": ""}  # as Serf reads empty meta
    assert Member("n", ADDRESS, b"\xff\x91\x01").tags == {}  # undecodable tags: none
    assert "tags" not in repr(member)


def test_tags_take_no_part_in_equality_meta_does() -> None:
    a = Member.with_tags("n", ADDRESS, {"role": "web"})
    assert a == Member("n", ADDRESS, encode_tags({"role": "web"}))
    assert a != Member.with_tags("n", ADDRESS, {"role": "db"})


def test_with_tags_respects_the_512_byte_limit() -> None:
    with pytest.raises(MetaTooLarge):
        Member.with_tags("n", ADDRESS, {"k": "v" * 600})
    assert decode_tags(Member.with_tags("n", ADDRESS, {"k": "v" * 505}).meta) == {"k": "v" * 505}


@pytest.mark.parametrize(
    "kind", [MemberJoined, MemberUpdated, MemberSuspect, MemberFailed, MemberLeft]
)
def test_member_events_carry_the_member(kind: type[MemberEvent]) -> None:
    member = Member("n", ADDRESS)
    event = kind(member)
    assert isinstance(event, MemberEvent)
    assert event.member is member
    assert event == kind(Member("n", ADDRESS))
    assert event != MemberEvent(member) or kind is MemberEvent
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.member = member  # type: ignore[misc]


def test_cluster_errors_are_tinyagents_errors() -> None:
    for error in (ClusterError, MalformedMessage, JoinFailed, MetaTooLarge):
        assert issubclass(error, TinyAgentsError)
    assert JoinFailed("no", ["a:1"]).seeds == ("a:1",)


def test_the_package_exports_its_public_names_sorted() -> None:
    exported = cluster.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(cluster, name)
    screaming = [n for n in exported if n.isupper()]
    camel = [n for n in exported if n[0].isupper() and not n.isupper()]
    rest = [n for n in exported if not n[0].isupper()]
    assert exported == sorted(screaming) + sorted(camel) + sorted(rest)
