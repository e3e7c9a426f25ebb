"""Hand-rolled encoding of FileChunk, the one hot message (no grpc, no protobuf objects).

Building and parsing a protobuf message per 1 MiB chunk copies the payload twice more than
needed and halves stream throughput here; FileChunk is two fields, so we write and read its
wire format directly. Bytes produced here parse as p2p.v1.FileChunk with any protobuf
library, and decode_chunk accepts anything a protobuf library produces. The field numbers
come from the generated descriptor, so p2p.proto stays the one source of the wire format.
"""
from protos.p2p_pb2 import FileChunk

_VARINT, _LENGTH_DELIMITED = 0, 2
_FIELD_OFFSET = FileChunk.DESCRIPTOR.fields_by_name["offset"].number
_FIELD_DATA = FileChunk.DESCRIPTOR.fields_by_name["data"].number
_TAG_OFFSET = _FIELD_OFFSET << 3 | _VARINT
_TAG_DATA = _FIELD_DATA << 3 | _LENGTH_DELIMITED


def _varint(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode_chunk(offset, data):
    """The serialized FileChunk{offset, data}, as bytes."""
    if offset < 0:
        offset += 1 << 64  # int64 on the wire: two's complement in 10 bytes
    head = (_TAG_OFFSET.to_bytes(1, "little") + _varint(offset) if offset else b"")
    return b"".join((head, _TAG_DATA.to_bytes(1, "little"), _varint(len(data)), data))


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def decode_chunk(raw):
    """(offset, memoryview of data) from a serialized FileChunk; ValueError if malformed."""
    view = memoryview(raw)
    pos, offset, data = 0, 0, view[0:0]
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(view, pos)
            if field == _FIELD_OFFSET:
                offset = value - (1 << 64) if value >= 1 << 63 else value
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _read_varint(view, pos)
            if pos + length > len(view):
                raise ValueError("truncated field")
            if field == _FIELD_DATA:
                data = view[pos:pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    if pos != len(view):
        raise ValueError("truncated message")
    return offset, data
