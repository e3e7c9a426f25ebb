"""The hand-rolled FileChunk codec must agree with protobuf both ways."""
import pytest

from peer_node.wire import decode_chunk, encode_chunk
from protos import p2p_pb2


@pytest.mark.parametrize("offset,data", [(0, b""), (0, b"abc"), (1, b"x"), (127, b"y" * 200),
                                         (2**40 + 5, b"z" * 70_000), (2**63 - 1, b"q"), (-1, b"n")])
def test_encode_parses_as_protobuf_and_back(offset, data):
    raw = encode_chunk(offset, data)
    msg = p2p_pb2.FileChunk.FromString(raw)
    assert (msg.offset, msg.data) == (offset, data)
    got_offset, got_data = decode_chunk(msg.SerializeToString())
    assert (got_offset, bytes(got_data)) == (offset, data)
    got_offset, got_data = decode_chunk(raw)
    assert (got_offset, bytes(got_data)) == (offset, data)


def test_decode_accepts_any_field_order_and_unknown_fields():
    raw = b"\x12\x02hi" + b"\x18\x05" + b"\x08\x07" + b"\x22\x01!"  # data, unknown 3, offset, unknown 4
    offset, data = decode_chunk(raw)
    assert (offset, bytes(data)) == (7, b"hi")


@pytest.mark.parametrize("raw", [b"\x12\x05ab", b"\x08", b"\x08\xff", b"\x0f"])
def test_decode_rejects_malformed(raw):
    with pytest.raises(ValueError):
        decode_chunk(raw)
