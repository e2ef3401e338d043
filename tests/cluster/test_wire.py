"""memberlist's wire codec (tinyagents.cluster._wire), against bytes from the Go libraries.

Where the golden bytes come from
--------------------------------
Every ``GO_*`` constant below was printed by real Go code, run offline on this machine
(Go 1.19 from Debian; sources from Debian packages and from GitHub snapshots):

* ``GO_022_*`` — hashicorp/memberlist 0.2.2 (Debian ``golang-github-hashicorp-memberlist-dev``,
  built against Debian's go-msgpack 0.5.5, the library Debian's Serf 0.9.4 agent uses): a
  test file added to a copy of the package called its own ``encode``,
  ``makeCompoundMessage``, ``compressPayload`` and ``encryptPayload``, and built a CRC
  packet the way ``rawSendMsgPacket`` does (``crc32.ChecksumIEEE``, big-endian).
* ``GO_V2_*`` — hashicorp/go-msgpack v2.1.5 (the codec of memberlist 0.5.x), encoding
  memberlist 0.5.4's struct definitions (copied verbatim from ``net.go``) with
  ``MsgpackHandle{}`` as memberlist's ``encode`` does. Its bytes equal memberlist 0.2.2's
  everywhere except Go ``int`` fields above 127, which v2 writes as signed integers.
* ``GO_054_*`` — memberlist 0.5.4's ``label.go`` and ``security.go`` compiled on their own:
  ``AddLabelHeaderToPacket``, and ``encryptPayload`` with a label as additional data; the
  stream form was framed as ``encryptLocalState`` frames it.
* ``GO_SERF_*`` — hashicorp/serf 0.9.4 (Debian source): ``(*Serf).encodeTags``.
* ``GO_LZW_*`` — Go's ``compress/lzw`` writer (LSB, literal width 8); large outputs are
  given as length and SHA-256.

The reverse direction was checked the same way (not repeatable here, as it needs Go):
memberlist 0.2.2 decoded this codec's alive message, a 200-node push-pull (plain and
compressed), a compound, a stream user message, a 50,000-byte LZW stream and an
AES-192 payload, all without error and with the right values.
"""

from __future__ import annotations

import hashlib
import random
import zlib

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tinyagents.cluster import MalformedMessage, MetaTooLarge
from tinyagents.cluster._wire import (
    MAX_ENCRYPTED_STREAM_SIZE,
    MAX_NESTING,
    MAX_PACKET_SIZE,
    MAX_PUSH_PULL_NODES,
    MAX_USER_STATE_SIZE,
    META_MAX_SIZE,
    Ack,
    Alive,
    Dead,
    ErrorResponse,
    IndirectPing,
    Keyring,
    Message,
    MessageType,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    StreamDecoder,
    StreamFrame,
    Suspect,
    User,
    add_crc,
    add_label,
    compress_message,
    decode_message,
    decode_packet,
    decode_stream,
    decode_tags,
    decompress_message,
    decrypt_payload,
    encode_compound,
    encode_message,
    encode_packet,
    encode_stream,
    encode_stream_message,
    encode_tags,
    encrypt_payload,
    encrypt_stream,
    ip_from_bytes,
    ip_to_bytes,
    lzw_compress,
    lzw_decompress,
    split_compound,
    strip_crc,
    strip_label,
)

LOCALHOST = bytes([127, 0, 0, 1])
SERF_VSN = bytes([1, 5, 2, 2, 5, 5])
ROLE_WEB_META = bytes.fromhex("ff81a4726f6c65a3776562")  # {"role": "web"} in Serf's encoding
KEY16 = b"0123456789abcdef"
KEY24 = b"0123456789abcdef01234567"
KEY32 = b"0123456789abcdef0123456789abcdef"

# -- golden bytes from Go (see the module docstring) ------------------------------------

GO_022_PING = bytes.fromhex("00 82 a4 4e6f6465 a6 6e6f64652d61 a5 5365714e6f 2a")
"""ping{SeqNo: 42, Node: "node-a"}: [0], fixmap 2 in sorted key order ("Node" before
"SeqNo"), both strings as fixstr raws; the omitempty Source* fields are absent."""

GO_022_PING_WITH_SOURCE = bytes.fromhex(
    "0085a44e6f6465a66e6f64652d61a55365714e6fcd012caa536f7572636541646472a47f000001"
    "aa536f757263654e6f6465a66e6f64652d62aa536f75726365506f7274cd1f0a"
)
GO_022_INDIRECT_PING = bytes.fromhex(
    "0185a44e61636bc3a44e6f6465a66e6f64652d63a4506f7274cd1f0aa55365714e6f07a6546172676574a40a000002"
)
GO_022_ACK_NIL_PAYLOAD = bytes.fromhex("0282a75061796c6f6164c0a55365714e6f2a")
GO_022_ACK_PAYLOAD = bytes.fromhex("0282a75061796c6f6164a3010203a55365714e6fce00011170")
GO_022_NACK = bytes.fromhex("0b81a55365714e6f05")
GO_022_SUSPECT = bytes.fromhex(
    "0383a446726f6da66e6f64652d62ab496e6361726e6174696f6e03a44e6f6465a66e6f64652d61"
)
GO_022_ALIVE = bytes.fromhex(
    "04 86"
    "a4 41646472 a4 7f000001"  # Addr: 127.0.0.1 as 4 raw bytes
    "ab 496e6361726e6174696f6e 01"  # Incarnation: 1
    "a4 4d657461 ab ff81a4726f6c65a3776562"  # Meta: Serf tags {"role": "web"}
    "a4 4e6f6465 a6 6e6f64652d61"  # Node: "node-a"
    "a4 506f7274 cd 1f0a"  # Port: 7946 as uint16
    "a3 56736e a6 010502020505"  # Vsn: a 6-byte raw string, not an array
)
GO_022_DEAD = bytes.fromhex(
    "0583a446726f6da66e6f64652d61ab496e6361726e6174696f6e09a44e6f6465a66e6f64652d61"
)
GO_022_ERR = bytes.fromhex("0d81a54572726f72a4626f6f6d")
GO_022_COMPOUND_PING_ACK = bytes.fromhex(
    "07 02 0015 0012"  # compound, 2 parts, lengths 21 and 18 (uint16 big-endian)
    "0082a44e6f6465a66e6f64652d61a55365714e6f2a"  # the ping above
    "0282a75061796c6f6164c0a55365714e6f2a"  # ack{SeqNo: 42, Payload: nil}
)
GO_022_CRC_PING = bytes.fromhex("0c c1f0ddb3 0082a44e6f6465a66e6f64652d61a55365714e6f2a")
"""[12], CRC-32 (IEEE) of the ping, big-endian, then the ping."""
GO_022_COMPRESSED_PING = bytes.fromhex(
    "0982a4416c676f00a3427566b800010822e5e40d9932a6dc182cd3224ca92965e214541110"
)
GO_022_PUSH_PULL = bytes.fromhex(
    "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656eccc8"  # UserStateLen 200: uint8
    "87a441646472a47f000001ab496e6361726e6174696f6e01a44d657461abff81a4726f6c65a3776562"
    "a44e616d65a66e6f64652d61a4506f7274cd1f0aa5537461746500a356736ea6010502020505"
)
"""memberlist 0.2.2's push-pull header {Nodes: 1, UserStateLen: 200, Join: true} and one
node record, without the 200 bytes of user state."""
GO_022_USER_STREAM_HEADER = bytes.fromhex("0881aa557365724d73674c656ecd012c")
GO_022_ENCRYPTED_V1_K16 = bytes.fromhex(
    "01003d1eb12e8a7c972a671ff94834b3b56bd4629e7799e75d722d534024b4e319dde28b181d82002c8d34d234"
)
GO_022_ENCRYPTED_V0_K16 = bytes.fromhex(
    "00b466a2cb4d8a6e36fb67e4ec0a203cb21577e8da0f2249965f5180cb568c2895e5551a292ddfa47cc85fbd"
    "0407c096c5bc0e35c1ad9178221adb4345"
)
"""Both are encryptPayload(vsn, "0123456789abcdef", "hello memberlist", nil)."""

GO_V2_PUSH_PULL_HEADER = bytes.fromhex(
    "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656ed100c8"  # UserStateLen: int16
)
GO_V2_PUSH_PULL_HEADER_BIG = bytes.fromhex(
    "0683a44a6f696ec2a54e6f646573d1012cac5573657253746174654c656ed200011170"
)
GO_V2_PUSH_NODE = bytes.fromhex(
    "87a441646472a47f000001ab496e6361726e6174696f6e01a44d657461abff81a4726f6c65a3776562"
    "a44e616d65a66e6f64652d61a4506f7274cd1f0aa5537461746500a356736ea6010502020505"
)
GO_V2_USER_STREAM_HEADER = bytes.fromhex("0881aa557365724d73674c656ed1012c")
GO_V2_ACK_EMPTY_PAYLOAD = bytes.fromhex("0282a75061796c6f6164a0a55365714e6f2a")
LONG_NAME = "a-node-name-that-is-longer-than-thirty-one-bytes"
GO_V2_DEAD_LONG_NAMES = bytes.fromhex(
    "0583a446726f6dda0030612d6e6f64652d6e616d652d746861742d69732d6c6f6e6765722d7468616e2d74"
    "68697274792d6f6e652d6279746573ab496e6361726e6174696f6e01a44e6f6465da0030612d6e6f64652d"
    "6e616d652d746861742d69732d6c6f6e6765722d7468616e2d7468697274792d6f6e652d6279746573"
)
"""A 48-byte string is raw16 (da 0030): go-msgpack writes no str8."""

GO_054_LABELLED_PING = bytes.fromhex("f4 04 70726f64 0082a44e6f6465a66e6f64652d61a55365714e6f2a")
GO_054_PACKET_ENCRYPTED_WITH_LABEL = {
    KEY16: "01ae6f1ea19508fcedbfa71f755a4d18f4687964fb95854991805219552c3b9b7aa65abd2cc3513c8f51"
    "25233e6c1a870d51",
    KEY24: "0177a9d00830eac49150fddf673d9b1f8c40f5f71f314556be7344bf7e556526219997e864ba1298f2d5"
    "b64f81eab9360caa",
    KEY32: "0136891d18238c9ee4d85a19b7dc0cc654c3bbdeebc7094a9dee4b94ab97aab9c2f69f8517a1e56e2d33"
    "6d69318dce942a5a",
}
"""encryptPayload(1, key, <the ping>, []byte("prod")): what memberlist 0.5 sends after the
label header "prod"."""
GO_054_STREAM_ENCRYPTED_K32 = bytes.fromhex(
    "0a00000032010ff943f531875c6ccd50d4e19561ccf61b958fee80d70adb6b38279a19dadb0a3ed80e0644"
    "1b93ffa71a6efd24ce901acc"
)
"""[10][uint32 50] then the ping encrypted with additional data [10][0 0 0 50] + "prod"."""
GO_054_STREAM_ENCRYPTED_K32_NO_LABEL = bytes.fromhex(
    "0a000000320107455096d2bc76222373e41df0283eec8e73204cff78fe6dad766cc803001e031b726fc12b"
    "025dbb6b3db023144633b8f8"
)

GO_SERF_TAGS_ROLE_WEB = bytes.fromhex("ff81a4726f6c65a3776562")
GO_SERF_TAGS_EMPTY = bytes.fromhex("ff80")
GO_SERF_TAGS_DC_ROLE = bytes.fromhex("ff82a26463a465617374a4726f6c65a3776562")

GO_LZW_SMALL = {
    b"": "000302",
    b"a": "00c30404",
    b"abababababab": "00c388114870a0c180",
    b"TOBEORNOTTOBEORTOBEORNOT": "00a93c1152e48914274fa80824687061c183090302",
    b"a" * 40: "00c3081c48b0a0c18308090604",
}


def _lcg_bytes(n: int) -> bytes:
    """The Go program's pseudo-random input: x = x*1103515245 + 12345 (uint32), bits 16-23."""
    out = bytearray()
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((x >> 16) & 0xFF)
    return bytes(out)


GO_LZW_LARGE = [
    # (input, compressed length, sha256 of the compressed bytes)
    (
        _lcg_bytes(30_000),
        41_029,
        "90081eb60f4d86d6554b2abb228090c54d8d49c51a36ef4e61e6e790c5d5ec94",
    ),
    (
        b"the quick brown fox jumps over the lazy dog. " * 500,
        1_788,
        "674ae115e53fa19c8260a5c6e2c68749b708d4dbca4ae87c12bb7c6d324eb951",
    ),
    (bytes(100_000), 530, "7a2b74e419500a3be5ff7cda6b8829a1eb730ccfee1d9e062be7a8ef00a0f6bf"),
]


def _alive(**changes: object) -> Alive:
    fields: dict[str, object] = {
        "incarnation": 1,
        "node": "node-a",
        "addr": LOCALHOST,
        "port": 7946,
        "meta": ROLE_WEB_META,
        "vsn": SERF_VSN,
    }
    fields.update(changes)
    return Alive(**fields)  # type: ignore[arg-type]


def _node(name: str = "node-a", **changes: object) -> PushNodeState:
    fields: dict[str, object] = {
        "name": name,
        "addr": LOCALHOST,
        "port": 7946,
        "meta": ROLE_WEB_META,
        "incarnation": 1,
        "state": 0,
        "vsn": SERF_VSN,
    }
    fields.update(changes)
    return PushNodeState(**fields)  # type: ignore[arg-type]


EVERY_PACKET_MESSAGE: list[Message] = [
    Ping(42, "node-a"),
    Ping(300, "node-a", LOCALHOST, 7946, "node-b"),
    IndirectPing(7, bytes([10, 0, 0, 2]), 7946, "node-c", nack=True),
    IndirectPing(8, bytes(16), 1, "node-c", source_addr=LOCALHOST, source_port=2, source_node="x"),
    Ack(42),
    Ack(70000, b"\x01\x02\x03"),
    Nack(5),
    Suspect(3, "node-a", "node-b"),
    _alive(),
    _alive(addr=ip_to_bytes("::1"), meta=b"", incarnation=2**32 - 1, port=65535),
    Dead(9, "node-a", "node-a"),
    User(b"\x03serf user event"),
    User(b""),
]
"""One of each message that packets carry (an ErrorResponse only travels on streams)."""


# -- message bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "golden"),
    [
        (Ping(42, "node-a"), GO_022_PING),
        (Ping(300, "node-a", LOCALHOST, 7946, "node-b"), GO_022_PING_WITH_SOURCE),
        (IndirectPing(7, bytes([10, 0, 0, 2]), 7946, "node-c", True), GO_022_INDIRECT_PING),
        (Ack(42), GO_022_ACK_NIL_PAYLOAD),
        (Ack(70000, b"\x01\x02\x03"), GO_022_ACK_PAYLOAD),
        (Nack(5), GO_022_NACK),
        (Suspect(3, "node-a", "node-b"), GO_022_SUSPECT),
        (_alive(), GO_022_ALIVE),
        (Dead(9, "node-a", "node-a"), GO_022_DEAD),
        (ErrorResponse("boom"), GO_022_ERR),
        (Dead(1, LONG_NAME, LONG_NAME), GO_V2_DEAD_LONG_NAMES),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, bytes) else "",
)
def test_messages_encode_to_the_go_bytes_and_back(message: Message, golden: bytes) -> None:
    assert encode_message(message) == golden
    assert decode_message(golden) == message


@pytest.mark.parametrize(
    "message", [*EVERY_PACKET_MESSAGE, ErrorResponse("boom")], ids=lambda m: type(m).__name__
)
def test_every_message_round_trips(message: Message) -> None:
    assert decode_message(encode_message(message)) == message
    if not isinstance(message, ErrorResponse):
        assert decode_packet(encode_packet([message])).messages == (message,)
    if isinstance(message, Ping | Ack | User | ErrorResponse):  # what streams carry
        assert decode_stream(encode_stream(message)).message == message


def test_alive_vsn_is_a_six_byte_raw_string_and_meta_carries_serf_tags() -> None:
    body = msgpack.unpackb(GO_022_ALIVE[1:], raw=True)
    assert body[b"Vsn"] == bytes([1, 5, 2, 2, 5, 5])
    assert GO_022_ALIVE.endswith(b"\xa3Vsn\xa6\x01\x05\x02\x02\x05\x05")
    assert decode_tags(decode_message(GO_022_ALIVE).meta) == {"role": "web"}  # type: ignore[union-attr]


def test_an_empty_go_byte_slice_decodes_whether_nil_or_empty() -> None:
    assert decode_message(GO_022_ACK_NIL_PAYLOAD) == Ack(42, b"")
    assert decode_message(GO_V2_ACK_EMPTY_PAYLOAD) == Ack(42, b"")


def test_user_messages_in_packets_are_the_raw_payload() -> None:
    assert encode_message(User(b"\x03hi")) == b"\x08\x03hi"
    assert decode_message(b"\x08\x03hi") == User(b"\x03hi")


def test_push_pull_is_encoded_as_go_msgpack_v2_writes_it() -> None:
    push_pull = PushPull(True, [_node()], bytes(200))
    assert encode_stream_message(push_pull) == GO_V2_PUSH_PULL_HEADER + GO_V2_PUSH_NODE + bytes(200)
    assert encode_message(push_pull) == encode_stream_message(push_pull)
    big = PushPull(False, [_node(f"n{i}") for i in range(300)], bytes(70000))
    assert encode_stream_message(big).startswith(GO_V2_PUSH_PULL_HEADER_BIG)


def test_push_pull_from_memberlist_0_2_decodes() -> None:
    """memberlist 0.2 writes UserStateLen 200 as uint8 (cc c8), v2 as int16 (d1 00 c8)."""
    expected = PushPull(True, (_node(),), bytes(200))
    frame = decode_stream(GO_022_PUSH_PULL + bytes(200))
    assert frame.message == expected
    assert not frame.compressed
    assert decode_stream(GO_V2_PUSH_PULL_HEADER + GO_V2_PUSH_NODE + bytes(200)).message == expected


def test_stream_user_message_headers_of_both_go_codecs_decode() -> None:
    assert encode_stream_message(User(b"u" * 300)) == GO_V2_USER_STREAM_HEADER + b"u" * 300
    for header in (GO_022_USER_STREAM_HEADER, GO_V2_USER_STREAM_HEADER):
        assert decode_stream(header + b"u" * 300).message == User(b"u" * 300)


def _body(message_type: int, fields: dict[bytes, object]) -> bytes:
    return bytes((message_type,)) + msgpack.packb(fields, use_bin_type=False)


def test_decoding_is_as_lenient_as_go() -> None:
    # missing fields take Go's zero values, unknown keys are ignored, nil is zero
    assert decode_message(_body(0, {})) == Ping(0, "")
    assert decode_message(_body(0, {b"SeqNo": 1, b"Extra": [1, 2], b"Node": None})) == Ping(1, "")
    # bin (rather than raw) for strings and bytes, and a Vsn sent as an array
    alive = _body(
        4,
        {b"Node": "n", b"Addr": LOCALHOST, b"Port": 1, b"Meta": b"m", b"Vsn": [1, 5, 2, 2, 5, 5]},
    )
    alive_bin = bytes((4,)) + msgpack.packb(
        {b"Node": b"n", b"Addr": LOCALHOST, b"Port": 1, b"Meta": b"m"}, use_bin_type=True
    )
    assert decode_message(alive) == Alive(0, "n", LOCALHOST, 1, b"m", SERF_VSN)
    assert decode_message(alive_bin) == Alive(0, "n", LOCALHOST, 1, b"m", b"")
    # signed integer forms for unsigned fields (go-msgpack v2 writes ints that way)
    assert decode_message(b"\x0b\x81\xa5SeqNo\xd1\x01\x00") == Nack(256)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty message"),
        (b"\x63\x80", "unknown message type 99"),
        (b"\x07\x00", "COMPOUND (7) is not a single message"),
        (b"\x00", "truncated msgpack"),
        (b"\x00\x82\xa4Node", "truncated msgpack"),
        (b"\x00\xc1", "bad msgpack"),
        (b"\x00\x91\x01", "should be a msgpack map, not list"),
        (b"\x00\x80\x00", "1 unexpected bytes after the msgpack body"),
        (_body(0, {b"SeqNo": "x"}), "field SeqNo should be an integer, not bytes"),
        (_body(0, {b"SeqNo": 2**32}), "field SeqNo is 4294967296, out of range for uint32"),
        (_body(0, {b"SeqNo": -1}), "out of range for uint32"),
        (_body(0, {b"SeqNo": True}), "should be an integer, not bool"),
        (_body(0, {b"SeqNo": 1.5}), "should be an integer, not float"),
        (_body(0, {b"Node": 7}), "field Node should be a byte string, not int"),
        (_body(0, {b"Node": b"\xff"}), "field Node is not valid UTF-8"),
        (_body(1, {b"Nack": 1}), "field Nack should be a boolean, not int"),
        (_body(1, {b"Port": 70000}), "out of range for uint16"),
        (_body(4, {b"Addr": b"\x01\x02\x03"}), "field Addr is 3 bytes, not an IPv4 or IPv6"),
        (_body(4, {b"Vsn": b"\x01\x02\x03"}), "field Vsn is 3 bytes, not the 6 protocol versions"),
        (_body(4, {b"Vsn": [1, 2, 300, 1, 1, 1]}), "field Vsn is an array with items"),
        (_body(4, {b"Meta": {b"a": 1}}), "field Meta should be a byte string, not dict"),
        (b"\x00\xde\x00\x41" + b"\xa1a\x01" * 65, "bad msgpack"),  # a map of 65 keys
    ],
)
def test_malformed_messages_raise_saying_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem.replace("(", r"\(").replace(")", r"\)")):
        decode_message(data)


def test_message_values_are_validated_and_vsn_must_be_six_bytes_to_send() -> None:
    with pytest.raises(ValueError, match="seq_no"):
        Ping(2**32, "x")
    with pytest.raises(ValueError, match="port"):
        Ping(1, "x", LOCALHOST, 65536)
    with pytest.raises(ValueError, match="addr"):
        _alive(addr=b"\x01")
    with pytest.raises(ValueError, match="vsn"):
        _alive(vsn=b"\x01\x05")
    with pytest.raises(ValueError, match=r"memberlist 0\.2 panics"):
        encode_message(_alive(vsn=b""))
    with pytest.raises(TypeError, match="PushNodeState"):
        PushPull(False, ["node"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a memberlist message"):
        encode_message("ping")  # type: ignore[arg-type]


def test_message_type_numbers_are_memberlists() -> None:
    assert [t.name for t in MessageType][:14] == [
        "PING",
        "INDIRECT_PING",
        "ACK",
        "SUSPECT",
        "ALIVE",
        "DEAD",
        "PUSH_PULL",
        "COMPOUND",
        "USER",
        "COMPRESS",
        "ENCRYPT",
        "NACK",
        "HAS_CRC",
        "ERR",
    ]
    assert [int(t) for t in MessageType] == [*range(14), 244]


def test_ip_addresses_are_raw_bytes() -> None:
    assert ip_to_bytes("127.0.0.1") == LOCALHOST
    assert len(ip_to_bytes("::1")) == 16
    assert ip_from_bytes(LOCALHOST) == "127.0.0.1"
    assert ip_from_bytes(ip_to_bytes("fe80::1")) == "fe80::1"
    assert ip_from_bytes(bytes(10) + b"\xff\xff" + LOCALHOST) == "127.0.0.1"
    with pytest.raises(ValueError, match="4 or 16 bytes"):
        ip_from_bytes(b"\x01")


# -- compound, CRC and label ------------------------------------------------------------


def test_compound_of_two_messages_is_gos() -> None:
    parts = [encode_message(Ping(42, "node-a")), encode_message(Ack(42))]
    assert encode_compound(parts) == GO_022_COMPOUND_PING_ACK
    assert split_compound(GO_022_COMPOUND_PING_ACK) == (parts, 0)
    assert encode_packet([Ping(42, "node-a"), Ack(42)]) == GO_022_COMPOUND_PING_ACK
    assert decode_packet(GO_022_COMPOUND_PING_ACK).messages == (Ping(42, "node-a"), Ack(42))


def test_truncated_compound_parts_are_counted_and_the_rest_kept() -> None:
    truncated = GO_022_COMPOUND_PING_ACK[:-3]
    assert split_compound(truncated) == ([encode_message(Ping(42, "node-a"))], 1)
    packet = decode_packet(truncated)
    assert packet.messages == (Ping(42, "node-a"),)
    assert [str(e) for e in packet.errors] == ["compound message: 1 of 2 parts truncated"]
    with pytest.raises(MalformedMessage, match="missing the count byte"):
        split_compound(b"\x07")
    with pytest.raises(MalformedMessage, match="truncated length table"):
        split_compound(b"\x07\x02\x00\x01")
    with pytest.raises(ValueError, match="at most 127 parts"):
        encode_compound([b"x"] * 128)


def test_compounds_are_sent_with_at_most_127_parts_and_read_with_up_to_255() -> None:
    """memberlist 0.2.2 (Serf 0.9.4) computes count*2 as a uint8 in decodeCompoundMessage,
    so from 128 parts on it misreads the length table (run in Go: of 128 nacks, it decoded
    none); memberlist 0.5 fixed that."""
    nack = encode_message(Nack(1))
    assert split_compound(encode_compound([nack] * 127)) == ([nack] * 127, 0)
    full = bytes((MessageType.COMPOUND, 255)) + len(nack).to_bytes(2, "big") * 255 + nack * 255
    assert decode_packet(full).messages == (Nack(1),) * 255
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        encode_compound([bytes(65536)])


def test_a_bad_part_of_a_compound_does_not_lose_the_others() -> None:
    data = encode_compound([b"\x00\xc1", encode_message(Nack(1)), b"\x63"])
    packet = decode_packet(data)
    assert packet.messages == (Nack(1),)
    assert len(packet.errors) == 2
    assert "bad msgpack" in str(packet.errors[0])
    assert "unknown message type 99" in str(packet.errors[1])
    with pytest.raises(MalformedMessage, match="bad msgpack"):  # nothing usable: raised
        decode_packet(encode_compound([b"\x00\xc1", b"\x63"]))


def test_crc_wrapped_packet_is_gos() -> None:
    ping = encode_message(Ping(42, "node-a"))
    assert add_crc(ping) == GO_022_CRC_PING
    assert strip_crc(GO_022_CRC_PING) == ping
    assert encode_packet([Ping(42, "node-a")], crc=True) == GO_022_CRC_PING
    packet = decode_packet(GO_022_CRC_PING)
    assert packet.crc
    assert packet.messages == (Ping(42, "node-a"),)


def test_a_bad_crc_is_refused() -> None:
    corrupted = bytearray(GO_022_CRC_PING)
    corrupted[-1] ^= 1
    with pytest.raises(MalformedMessage, match="bad CRC"):
        decode_packet(bytes(corrupted))
    with pytest.raises(MalformedMessage, match="CRC header is truncated"):
        decode_packet(b"\x0c\x00\x00")
    assert zlib.crc32(GO_022_PING) == 0xC1F0DDB3


def test_label_header_is_gos() -> None:
    ping = encode_message(Ping(42, "node-a"))
    assert add_label(ping, "prod") == GO_054_LABELLED_PING
    assert strip_label(GO_054_LABELLED_PING) == ("prod", ping)
    assert add_label(ping, "") == ping
    assert strip_label(ping) == ("", ping)
    packet = decode_packet(GO_054_LABELLED_PING)
    assert packet.label == "prod"
    assert packet.messages == (Ping(42, "node-a"),)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xf4", "label header is truncated"),
        (b"\xf4\x00", "label header cannot be empty when present"),
        (b"\xf4\x05ab", "label is truncated"),
        (b"\xf4\x01\xff\x00\x80", "label is not valid UTF-8"),
    ],
)
def test_bad_labels_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        strip_label(data)
    with pytest.raises(MalformedMessage, match=problem):
        decode_packet(data)


def test_a_label_is_at_most_255_bytes() -> None:
    assert strip_label(add_label(b"\x00", "x" * 255)) == ("x" * 255, b"\x00")
    with pytest.raises(ValueError, match="more than 255"):
        add_label(b"", "x" * 256)


# -- LZW and compression ----------------------------------------------------------------


@pytest.mark.parametrize(("data", "golden"), list(GO_LZW_SMALL.items()), ids=repr)
def test_lzw_matches_go_on_small_inputs(data: bytes, golden: str) -> None:
    assert lzw_compress(data).hex() == golden
    assert lzw_decompress(bytes.fromhex(golden)) == data


def test_lzw_golden_by_hand_for_abab() -> None:
    """Derived from the algorithm: 9-bit codes, LSB first. "abababababab" is sent as the
    codes 256 (clear), 97 a, 98 b, 258 ab, 260 aba, 259 ba, 262 abab, 257 (end): each new
    dictionary entry gets the next code from 258 on."""
    codes = [256, 97, 98, 258, 260, 259, 262, 257]
    value = sum(code << (9 * i) for i, code in enumerate(codes))
    expected = value.to_bytes((9 * len(codes) + 7) // 8, "little")
    assert expected.hex() == GO_LZW_SMALL[b"abababababab"]
    assert lzw_compress(b"abababababab") == expected


@pytest.mark.parametrize(
    ("data", "length", "digest"), GO_LZW_LARGE, ids=["random", "text", "zeros"]
)
def test_lzw_matches_go_across_code_widths_and_dictionary_resets(
    data: bytes, length: int, digest: str
) -> None:
    compressed = lzw_compress(data)
    assert len(compressed) == length
    assert hashlib.sha256(compressed).hexdigest() == digest
    assert lzw_decompress(compressed) == data


@given(st.binary(max_size=3000))
@example(b"")
@example(bytes(range(256)) * 20)
def test_lzw_round_trips(data: bytes) -> None:
    assert lzw_decompress(lzw_compress(data)) == data


def test_lzw_decompression_errors() -> None:
    with pytest.raises(MalformedMessage, match="truncated: no end code"):
        lzw_decompress(b"\x00\x03")  # a clear code, no end code (Go: unexpected EOF)
    with pytest.raises(MalformedMessage, match="invalid code 511"):
        lzw_decompress(b"\x00\xfe\xff")  # clear, then code 511 before it exists
    with pytest.raises(MalformedMessage, match="larger than the limit of 1000"):
        lzw_decompress(lzw_compress(bytes(2000)), max_size=1000)
    assert lzw_decompress(lzw_compress(b"abc") + b"ignored") == b"abc"  # as Go: stops at end


def test_compress_message_is_gos() -> None:
    ping = encode_message(Ping(42, "node-a"))
    assert compress_message(ping) == GO_022_COMPRESSED_PING
    assert decompress_message(GO_022_COMPRESSED_PING) == ping
    assert decode_packet(GO_022_COMPRESSED_PING).messages == (Ping(42, "node-a"),)
    with pytest.raises(MalformedMessage, match="unknown algorithm 1"):
        decompress_message(_body(9, {b"Algo": 1, b"Buf": b"\x00\x03\x02"}))


def test_packets_are_compressed_only_when_it_helps() -> None:
    small = encode_packet([Ping(1, "a")], compress=True)
    assert small == encode_message(Ping(1, "a"))
    alives = [_alive(node=f"node-{i}") for i in range(10)]
    big = encode_packet(alives, compress=True, crc=True)
    assert big[5] == MessageType.COMPRESS
    assert len(big) < len(encode_packet(alives))
    assert decode_packet(big).messages == tuple(alives)


# -- encryption -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY16, KEY24, KEY32], ids=["aes128", "aes192", "aes256"])
def test_encryption_round_trips_for_every_key_size(key: bytes) -> None:
    sealed = encrypt_payload(key, b"secret", b"ad")
    assert sealed[0] == 1
    assert len(sealed) == 1 + 12 + len(b"secret") + 16
    assert decrypt_payload([key], sealed, b"ad") == b"secret"
    assert encrypt_payload(key, b"secret") != encrypt_payload(key, b"secret")  # random nonce


def test_go_encrypted_payloads_decrypt() -> None:
    assert decrypt_payload([KEY16], GO_022_ENCRYPTED_V1_K16) == b"hello memberlist"
    assert decrypt_payload([KEY16], GO_022_ENCRYPTED_V0_K16) == b"hello memberlist"  # padded


@pytest.mark.parametrize("key", [KEY16, KEY24, KEY32], ids=["aes128", "aes192", "aes256"])
def test_go_encrypted_labelled_packets_decrypt(key: bytes) -> None:
    data = add_label(bytes.fromhex(GO_054_PACKET_ENCRYPTED_WITH_LABEL[key]), "prod")
    packet = decode_packet(data, keyring=Keyring([key]))
    assert packet == packet.__class__((Ping(42, "node-a"),), "prod", True, False)
    other_label = b"\xf4\x04test" + data[6:]  # the label is authenticated
    with pytest.raises(MalformedMessage, match="decryption failed"):
        decode_packet(other_label, keyring=Keyring([key]))


def test_a_secondary_key_decrypts_and_a_wrong_key_fails() -> None:
    old, new = Keyring([KEY16]), Keyring([KEY32, KEY16])
    sealed = old.encrypt(b"rotating")
    assert new.decrypt(sealed) == b"rotating"
    with pytest.raises(MalformedMessage, match="no installed key could decrypt"):
        Keyring([KEY24]).decrypt(sealed)
    with pytest.raises(MalformedMessage, match="decryption failed"):
        decode_packet(encode_packet([Nack(1)], keyring=old), keyring=Keyring([KEY24]))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "cannot decrypt an empty payload"),
        (b"\x02" + bytes(40), "unsupported encryption version 2"),
        (b"\x01" + bytes(27), "payload is too small to decrypt: 28 bytes"),
        (b"\x00" + bytes(40), "payload is too small to decrypt: 41 bytes"),
        (b"\x01" + bytes(40), "no installed key could decrypt"),
    ],
)
def test_undecryptable_payloads_raise(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        decrypt_payload([KEY16], data)


def test_version_0_padding_is_checked() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = bytes(12)
    bad_padding = b"\x00" + nonce + AESGCM(KEY16).encrypt(nonce, b"x" * 15 + b"\x05", None)
    with pytest.raises(MalformedMessage, match="bad PKCS#7 padding"):
        decrypt_payload([KEY16], bad_padding)


def test_keyring_holds_valid_keys_primary_first() -> None:
    keyring = Keyring([KEY16, KEY24, KEY16])
    assert keyring.keys == (KEY16, KEY24)
    assert keyring.primary == KEY16
    assert keyring.use(KEY24).keys == (KEY24, KEY16)
    assert keyring.add(KEY32).keys == (KEY16, KEY24, KEY32)
    assert keyring.remove(KEY24).keys == (KEY16,)
    assert "0123" not in repr(keyring)
    assert repr(keyring) == "<Keyring of 2 keys: AES-128, AES-192>"
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        Keyring([b"short"])
    with pytest.raises(ValueError, match="at least one key"):
        Keyring([])
    with pytest.raises(ValueError, match="cannot remove the primary key"):
        keyring.remove(KEY16)
    with pytest.raises(ValueError, match="add it first"):
        keyring.use(KEY32)


def test_encrypted_packets_with_verify_incoming_off_fall_back_to_plaintext() -> None:
    plain = encode_packet([Nack(3)])
    with pytest.raises(MalformedMessage, match="unsupported encryption version 11"):
        decode_packet(plain, keyring=Keyring([KEY16]))
    packet = decode_packet(plain, keyring=Keyring([KEY16]), verify_incoming=False)
    assert packet.messages == (Nack(3),)
    assert not packet.encrypted


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("crc", [False, True])
@pytest.mark.parametrize("encrypt", [False, True])
@pytest.mark.parametrize("label", ["", "prod"])
def test_packets_round_trip_through_every_envelope(
    compress: bool, crc: bool, encrypt: bool, label: str
) -> None:
    keyring = Keyring([KEY32]) if encrypt else None
    messages = [Ping(1, "b", LOCALHOST, 7946, "a"), _alive(), Suspect(2, "c", "a")]
    data = encode_packet(messages, compress=compress, crc=crc, keyring=keyring, label=label)
    packet = decode_packet(data, keyring=keyring)
    assert packet.messages == tuple(messages)
    assert (packet.label, packet.encrypted, packet.crc) == (label, encrypt, crc)
    assert packet.errors == ()


# -- packets: what may not be in them ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty message"),
        (bytes(MAX_PACKET_SIZE + 1), "over the limit of 65536"),
        (GO_022_ERR, "ERR \\(13\\) cannot be a message inside a packet"),
        (b"\x06\x80", "PUSH_PULL \\(6\\) cannot be a message inside a packet"),
        (b"\x0a\x00", "ENCRYPT \\(10\\) cannot be a message inside a packet"),
        (add_crc(add_crc(b"\x0b\x80")), "HAS_CRC \\(12\\) cannot be a message"),
        (b"\xc8", "unknown message type 200"),
        (encode_compound([b""]), "empty message"),
    ],
)
def test_packets_that_cannot_be_used_raise(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        decode_packet(data)


def test_nesting_is_bounded() -> None:
    data = encode_message(Nack(1))
    for _ in range(MAX_NESTING):
        data = encode_compound([data])
    assert decode_packet(data).messages == (Nack(1),)
    with pytest.raises(MalformedMessage, match="nested more than 8 levels"):
        decode_packet(encode_compound([data]))


def test_decompressed_packets_are_bounded() -> None:
    bomb = compress_message(b"\x08" + bytes(MAX_PACKET_SIZE))
    assert len(bomb) < 1000
    with pytest.raises(MalformedMessage, match="larger than the limit of 65536"):
        decode_packet(bomb)


# -- streams ----------------------------------------------------------------------------

STREAM_MESSAGES: list[Message] = [
    PushPull(True, [_node(), _node("node-b", state=3, addr=ip_to_bytes("::1"))], b"\x02serf"),
    PushPull(False, [], b""),
    User(b"\x03event"),
    Ping(9, "node-b"),
    Ack(9, b"coordinate"),
    ErrorResponse("failed to read"),
]


@pytest.mark.parametrize("message", STREAM_MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("encrypt", [False, True])
@pytest.mark.parametrize("label", ["", "prod"])
def test_streams_round_trip(message: Message, compress: bool, encrypt: bool, label: str) -> None:
    keyring = Keyring([KEY24]) if encrypt else None
    data = encode_stream(message, compress=compress, keyring=keyring, label=label)
    frame = decode_stream(data, keyring=keyring)
    assert frame.message == message
    assert (frame.label, frame.encrypted, frame.compressed) == (label, encrypt, compress)
    decoder = StreamDecoder(keyring)
    results = [decoder.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == frame
    assert decoder.frame == frame
    assert decoder.feed_eof() == frame


def test_go_encrypted_streams_decrypt_with_the_header_and_label_as_additional_data() -> None:
    keyring = Keyring([KEY32])
    labelled = decode_stream(add_label(GO_054_STREAM_ENCRYPTED_K32, "prod"), keyring=keyring)
    assert labelled == StreamFrame(Ping(42, "node-a"), "prod", encrypted=True)
    plain = decode_stream(GO_054_STREAM_ENCRYPTED_K32_NO_LABEL, keyring=keyring)
    assert plain.message == Ping(42, "node-a")
    with pytest.raises(MalformedMessage, match="decryption failed"):  # the label was authenticated
        decode_stream(GO_054_STREAM_ENCRYPTED_K32, keyring=keyring)


def test_stream_encryption_frame() -> None:
    payload = encode_message(Ping(42, "node-a"))
    data = encrypt_stream(Keyring([KEY32]), payload, "prod")
    assert data[:5] == b"\x0a\x00\x00\x00\x32"  # [10], then 1 + 12 + 21 + 16 = 50
    assert len(data) == 5 + 50
    assert Keyring([KEY32]).decrypt(data[5:], data[:5] + b"prod") == payload


def test_stream_decoder_waits_for_more_and_reports_truncation_at_eof() -> None:
    data = encode_stream(PushPull(False, [_node()], b"state"), compress=False)
    decoder = StreamDecoder()
    assert decoder.feed(data[:-1]) is None
    with pytest.raises(MalformedMessage, match="push-pull user state: truncated: 4 of 5 bytes"):
        decoder.feed_eof()
    with pytest.raises(RuntimeError, match="failed"):
        decoder.feed_eof()
    with pytest.raises(RuntimeError, match="takes no more data"):
        decoder.feed(b"x")
    decoder = StreamDecoder()
    assert decoder.feed(data + b"next") is not None  # bytes after the message are ignored
    with pytest.raises(MalformedMessage, match="4 unexpected bytes after the message"):
        decode_stream(data + b"next")


@pytest.mark.parametrize(
    ("data", "keyring", "problem"),
    [
        (b"", None, "stream: truncated: 0 of 1 bytes"),
        (b"\xf4\x00\x00", None, "label header cannot be empty"),
        (b"\xf4\x01\xff\x00", None, "stream label is not valid UTF-8"),
        (GO_054_STREAM_ENCRYPTED_K32_NO_LABEL, None, "encrypted and no keyring is configured"),
        (GO_022_PING, Keyring([KEY16]), "the stream is not encrypted"),
        (b"\x0a\x7f\xff\xff\xff", Keyring([KEY16]), "over the limit of 20971520"),
        (b"\x0b\x80", None, "NACK \\(11\\) cannot be the message of a stream"),
        (b"\x07\x00", None, "COMPOUND \\(7\\) cannot be the message of a stream"),
        (b"\x63", None, "unknown message type 99 on a stream"),
        (compress_message(b""), None, "decompressed stream is empty"),
        (compress_message(compress_message(GO_022_PING)), None, "COMPRESS \\(9\\) cannot be"),
        (compress_message(GO_022_PING + b"x"), None, "1 unexpected bytes after the message"),
        (
            _body(6, {b"Nodes": MAX_PUSH_PULL_NODES + 1}),
            None,
            "65537 nodes, over the limit of 65536",
        ),
        (_body(6, {b"Nodes": -1}), None, "field Nodes is negative"),
        (
            _body(6, {b"UserStateLen": MAX_USER_STATE_SIZE + 1}),
            None,
            "user state of 20971521 bytes, over the limit",
        ),
        (_body(8, {b"UserMsgLen": MAX_USER_STATE_SIZE + 1}), None, "user message of 20971521"),
        (_body(6, {b"Nodes": 1}) + msgpack.packb({b"State": 2**31}), None, "State is 2147483648"),
    ],
)
def test_malformed_streams_raise(data: bytes, keyring: Keyring | None, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        decode_stream(data, keyring=keyring)


def test_unencrypted_streams_are_read_when_verify_incoming_is_off() -> None:
    frame = decode_stream(GO_022_PING, keyring=Keyring([KEY16]), verify_incoming=False)
    assert frame.message == Ping(42, "node-a")
    assert not frame.encrypted
    assert MAX_ENCRYPTED_STREAM_SIZE == 20 * 1024 * 1024


# -- Serf tags --------------------------------------------------------------------------


def test_serf_tags_are_encoded_as_serf_does() -> None:
    assert encode_tags({"role": "web"}) == GO_SERF_TAGS_ROLE_WEB
    assert encode_tags({}) == GO_SERF_TAGS_EMPTY
    assert encode_tags({"role": "web", "dc": "east"}) == GO_SERF_TAGS_DC_ROLE  # keys sorted
    assert decode_tags(GO_SERF_TAGS_DC_ROLE) == {"dc": "east", "role": "web"}
    assert decode_tags(GO_SERF_TAGS_EMPTY) == {}


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=8))
def test_serf_tags_round_trip(tags: dict[str, str]) -> None:
    assert decode_tags(encode_tags(tags)) == tags


def test_meta_without_the_magic_byte_is_a_bare_role() -> None:
    assert decode_tags(b"web") == {"role": "web"}  # Serf protocol 2 encodes {"role": "web"} so
    assert decode_tags(b"") == {"role": ""}


def test_tags_are_at_most_512_bytes() -> None:
    # 1 magic + 1 fixmap + 2 for "k" + a raw16 header (3) + the value: 505 bytes fill 512
    assert len(encode_tags({"k": "v" * 505})) == META_MAX_SIZE
    with pytest.raises(MetaTooLarge, match="513 bytes, more than the limit of 512"):
        encode_tags({"k": "v" * 506})
    many = {f"{i:03}": "" for i in range(100)}  # more keys than a message body may have
    assert decode_tags(encode_tags(many)) == many


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (b"\xff", "truncated"),
        (b"\xff\x91\xa1a", "not a msgpack map"),
        (b"\xff\x81\xa1a\x01", "keys and values must be strings"),
        (b"\xff\x81\xa1a\xa1\xff", "not valid UTF-8"),
        (b"\xff\x80\x00", "unexpected bytes"),
    ],
)
def test_malformed_tags_raise(meta: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        decode_tags(meta)


def test_tags_must_be_strings() -> None:
    with pytest.raises(TypeError, match="strings to strings"):
        encode_tags({"k": 1})  # type: ignore[dict-item]


# -- fuzzing: bad input raises MalformedMessage and nothing else -------------------------


def _valid_packets() -> list[bytes]:
    keyring = Keyring([KEY16])
    messages = EVERY_PACKET_MESSAGE
    return [
        GO_022_ALIVE,
        GO_022_COMPOUND_PING_ACK,
        GO_022_CRC_PING,
        GO_022_COMPRESSED_PING,
        GO_054_LABELLED_PING,
        encode_packet(messages, compress=True, crc=True, label="l"),
        encode_packet(messages[:4], keyring=keyring, label="prod"),
    ]


VALID_PACKETS = _valid_packets()
VALID_STREAMS = [
    encode_stream(message, compress=compress, label=label)
    for message in STREAM_MESSAGES
    for compress in (False, True)
    for label in ("", "x")
]


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000) | mutated(VALID_PACKETS))
def test_fuzz_packet_decoder(data: bytes) -> None:
    for keyring in (None, Keyring([KEY16])):
        try:
            packet = decode_packet(data, keyring=keyring, verify_incoming=False)
        except MalformedMessage:
            continue
        assert packet.messages or not packet.errors  # only an empty compound has neither
        assert all(isinstance(error, MalformedMessage) for error in packet.errors)


@FUZZ
@given(st.binary(max_size=2000) | mutated(VALID_STREAMS))
def test_fuzz_stream_decoders(data: bytes) -> None:
    try:
        decode_stream(data)
    except MalformedMessage:
        pass
    decoder = StreamDecoder()
    try:
        for start in range(0, len(data), 7):
            if decoder.feed(data[start : start + 7]) is not None:
                break
        else:
            decoder.feed_eof()
    except MalformedMessage:
        pass


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_small_decoders(data: bytes) -> None:
    for decode in (decode_message, decode_tags, lzw_decompress, decompress_message, strip_crc):
        try:
            decode(data)
        except MalformedMessage:
            pass


@FUZZ
@given(mutated([lzw_compress(random.Random(1).randbytes(3000)), lzw_compress(bytes(5000))]))
def test_fuzz_lzw_decompressor(data: bytes) -> None:
    try:
        lzw_decompress(data, max_size=100_000)
    except MalformedMessage:
        pass


@settings(deadline=None)
@given(st.lists(st.sampled_from(EVERY_PACKET_MESSAGE), min_size=1, max_size=20))
def test_any_list_of_messages_round_trips_as_a_packet(messages: list[Message]) -> None:
    data = encode_packet(messages, compress=True, crc=True)
    assume(len(data) <= MAX_PACKET_SIZE)
    assert decode_packet(data).messages == tuple(messages)


def test_a_stream_decoder_buffers_at_most_64_mib() -> None:
    decoder = StreamDecoder()
    # a compress message whose Buf claims 100 MiB: its bytes pile up in the buffer
    assert decoder.feed(b"\x09\x82\xa4Algo\x00\xa3Buf\xdb\x06\x40\x00\x00") is None
    chunk = bytes(1 << 20)
    with pytest.raises(MalformedMessage, match="over the limit of bytes buffered"):
        for _ in range(65):
            decoder.feed(chunk)
