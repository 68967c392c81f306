"""Tests for :class:`wsloop.BinaryData`."""

from __future__ import annotations

import array
import math
import re
import struct
from typing import TYPE_CHECKING, Any

import pytest

from wsloop import BinaryData

if TYPE_CHECKING:
    from collections.abc import Callable

# name, a value, its little-endian encoding (written out by hand, not computed)
TYPED_CASES: list[tuple[str, int | float, bytes]] = [
    ("int8", -1, b"\xff"),
    ("int8", 0x7F, b"\x7f"),
    ("uint8", 0xAB, b"\xab"),
    ("int16", -2, b"\xfe\xff"),
    ("uint16", 0x1234, b"\x34\x12"),
    ("int32", 0x12345678, b"\x78\x56\x34\x12"),
    ("int32", -2, b"\xfe\xff\xff\xff"),
    ("uint32", 0xDEADBEEF, b"\xef\xbe\xad\xde"),
    ("int64", -2, b"\xfe\xff\xff\xff\xff\xff\xff\xff"),
    ("uint64", 0x0102030405060708, b"\x08\x07\x06\x05\x04\x03\x02\x01"),
    ("float32", 1.0, b"\x00\x00\x80\x3f"),
    ("float32", -2.5, b"\x00\x00\x20\xc0"),
    ("float64", 1.0, b"\x00\x00\x00\x00\x00\x00\xf0\x3f"),
    ("float64", 0.1, b"\x9a\x99\x99\x99\x99\x99\xb9\x3f"),
]

SIZES = {
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float32": 4,
    "float64": 8,
}

INT_RANGES = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-2147483648, 2147483647),
    "uint32": (0, 4294967295),
    "int64": (-9223372036854775808, 9223372036854775807),
    "uint64": (0, 18446744073709551615),
}


def getter(bd: BinaryData, name: str) -> Callable[..., Any]:
    return getattr(bd, f"get_{name}")  # type: ignore[no-any-return]


def setter(bd: BinaryData, name: str) -> Callable[..., None]:
    return getattr(bd, f"set_{name}")  # type: ignore[no-any-return]


def case_id(case: tuple[str, int | float, bytes]) -> str:
    return f"{case[0]}={case[1]!r}"


# ----------------------------------------------------------------------
# Construction


def test_default_is_empty_and_little_endian() -> None:
    bd = BinaryData()
    assert len(bd) == 0
    assert bd.to_bytes() == b""
    assert bd.little_endian is True


@pytest.mark.parametrize("little_endian", [True, False])
def test_little_endian_keyword(little_endian: bool) -> None:
    assert BinaryData(little_endian=little_endian).little_endian is little_endian


@pytest.mark.parametrize("size", [0, 1, 7, 1000])
def test_int_makes_zero_bytes(size: int) -> None:
    assert bytes(BinaryData(size)) == bytes(size)


@pytest.mark.parametrize(
    "source",
    [b"\x01\x02\x03", bytearray(b"\x01\x02\x03"), memoryview(b"\x01\x02\x03")],
    ids=["bytes", "bytearray", "memoryview"],
)
def test_from_bytes_like(source: bytes | bytearray | memoryview) -> None:
    assert bytes(BinaryData(source)) == b"\x01\x02\x03"


def test_constructor_copies_its_input() -> None:
    source = bytearray(b"abc")
    bd = BinaryData(source)
    source[0] = 0x7A
    assert bytes(bd) == b"abc"
    other = BinaryData(bd)
    bd.set_uint8(0, 0x78)
    assert bytes(other) == b"abc"
    assert other.buffer is not bd.buffer


def test_constructor_takes_raw_bytes_of_typed_buffer() -> None:
    source = array.array("H", [0x0102, 0x0304])
    assert bytes(BinaryData(source)) == source.tobytes()  # type: ignore[arg-type]


def test_constructor_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match="length must not be negative, got -1"):
        BinaryData(-1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (True, "not bool"),
        ("text", "use set_from_text"),
        (1.5, "float"),
        ([1, 2], "list"),
    ],
)
def test_constructor_rejects_other_types(data: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        BinaryData(data)  # type: ignore[arg-type]


def test_slots_forbid_new_attributes() -> None:
    bd = BinaryData()
    with pytest.raises(AttributeError):
        bd.extra = 1  # type: ignore[attr-defined]


def test_subclass_keeps_working() -> None:
    class Packet(BinaryData):
        pass

    packet = Packet.from_hex("0102")
    assert type(packet) is Packet
    assert packet.get_uint16(0) == 0x0201
    assert repr(packet) == "Packet(length=2, hex='0102')"


# ----------------------------------------------------------------------
# Length, conversions, indexing


def test_len_and_byte_length() -> None:
    bd = BinaryData(b"hello")
    assert len(bd) == 5
    assert bd.byte_length == 5
    bd.append(b"!")
    assert len(bd) == bd.byte_length == 6


@pytest.mark.parametrize(
    ("new_length", "expected"),
    [(0, b""), (2, b"ab"), (3, b"abc"), (5, b"abc\x00\x00")],
)
def test_set_length(new_length: int, expected: bytes) -> None:
    bd = BinaryData(b"abc")
    bd.set_length(new_length)
    assert bytes(bd) == expected
    assert len(bd) == new_length


def test_set_length_rejects_negative() -> None:
    bd = BinaryData(b"abc")
    with pytest.raises(ValueError, match="length must not be negative, got -1"):
        bd.set_length(-1)
    assert bytes(bd) == b"abc"


def test_clear() -> None:
    bd = BinaryData(b"abc")
    bd.clear()
    assert len(bd) == 0
    assert bytes(bd) == b""


def test_bytes_and_to_bytes_are_copies() -> None:
    bd = BinaryData(b"xyz")
    as_bytes = bytes(bd)
    to_bytes = bd.to_bytes()
    assert type(as_bytes) is bytes
    assert type(to_bytes) is bytes
    bd.set_uint8(0, 0)
    assert as_bytes == to_bytes == b"xyz"


@pytest.mark.parametrize(("index", "expected"), [(0, 10), (2, 30), (-1, 40), (-4, 10)])
def test_getitem_int(index: int, expected: int) -> None:
    assert BinaryData(bytes([10, 20, 30, 40]))[index] == expected


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (slice(1, 3), b"\x14\x1e"),
        (slice(None), b"\x0a\x14\x1e\x28"),
        (slice(None, None, 2), b"\x0a\x1e"),
        (slice(3, 10), b"\x28"),
        (slice(5, 9), b""),
    ],
)
def test_getitem_slice(index: slice, expected: bytes) -> None:
    result = BinaryData(bytes([10, 20, 30, 40]))[index]
    assert type(result) is bytes
    assert result == expected


@pytest.mark.parametrize("index", [4, -5])
def test_getitem_out_of_range(index: int) -> None:
    with pytest.raises(
        IndexError, match=f"^index {index} is out of range for BinaryData of length 4$"
    ):
        BinaryData(4)[index]


# ----------------------------------------------------------------------
# Buffer protocol: memoryview() and buffer


def test_memoryview_is_live_and_writable() -> None:
    bd = BinaryData(b"abcd")
    with bd.memoryview() as view:
        assert view.format == "B"
        assert not view.readonly
        assert view.tobytes() == b"abcd"
        view[0] = 0x7A
        assert bytes(bd) == b"zbcd"
        bd.set_uint8(1, 0x79)
        assert view.tobytes() == b"zycd"


def test_memoryview_works_with_buffer_consumers() -> None:
    bd = BinaryData(6)
    bd.set_uint16(0, 0xBEEF)
    bd.set_int32(2, -5)
    with bd.memoryview() as view:
        assert struct.unpack_from("<Hi", view) == (0xBEEF, -5)
    struct.pack_into("<H", bd.buffer, 0, 7)
    assert bd.get_uint16(0) == 7


@pytest.mark.parametrize(
    "resize",
    [
        lambda bd: bd.append(b"x"),
        lambda bd: bd.set_length(10),
        lambda bd: bd.set_length(1),
        lambda bd: bd.clear(),
        lambda bd: bd.set_from_bytes(b"longer than four"),
        lambda bd: bd.set_from_text("hello"),
        lambda bd: bd.set_from_hex("00"),
        lambda bd: bd.set_from_base64("AA=="),
    ],
    ids=[
        "append",
        "grow",
        "shrink",
        "clear",
        "set_from_bytes",
        "set_from_text",
        "set_from_hex",
        "set_from_base64",
    ],
)
def test_resize_while_view_alive_raises_buffer_error(
    resize: Callable[[BinaryData], None],
) -> None:
    bd = BinaryData(b"abcd")
    view = bd.memoryview()
    with pytest.raises(BufferError, match="memoryview of it is alive; release it first"):
        resize(bd)
    assert bytes(bd) == b"abcd"
    view.release()
    resize(bd)
    assert bytes(bd) != b"abcd"


def test_same_length_replacement_allowed_while_view_alive() -> None:
    bd = BinaryData(b"abcd")
    with bd.memoryview() as view:
        bd.set_from_bytes(b"wxyz")
        assert view.tobytes() == b"wxyz"


def test_buffer_is_the_same_live_bytearray() -> None:
    bd = BinaryData(b"ab")
    buf = bd.buffer
    assert type(buf) is bytearray
    buf.extend(b"cd")
    assert bytes(bd) == b"abcd"
    bd.set_from_text("hello world")
    bd.append(b"!")
    bd.set_length(3)
    assert bd.buffer is buf
    assert buf == b"hel"


# ----------------------------------------------------------------------
# Equality and repr


@pytest.mark.parametrize(
    "other",
    [
        BinaryData(b"\x01\x02"),
        BinaryData(b"\x01\x02", little_endian=False),
        b"\x01\x02",
        bytearray(b"\x01\x02"),
        memoryview(b"\x01\x02"),
    ],
    ids=["BinaryData", "BinaryData-big-endian", "bytes", "bytearray", "memoryview"],
)
def test_equal(other: object) -> None:
    bd = BinaryData(b"\x01\x02")
    assert bd == other
    assert other == bd


@pytest.mark.parametrize(
    "other",
    [BinaryData(b"\x01"), b"\x01\x03", bytearray(b"\x01\x02\x00"), "\x01\x02", 258, None],
    ids=["shorter", "different", "longer", "str", "int", "None"],
)
def test_not_equal(other: object) -> None:
    bd = BinaryData(b"\x01\x02")
    assert bd != other
    assert other != bd


def test_unhashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(BinaryData())


@pytest.mark.parametrize(
    ("bd", "expected"),
    [
        (BinaryData(), "BinaryData(length=0, hex='')"),
        (BinaryData(b"\x00\xab"), "BinaryData(length=2, hex='00ab')"),
        (BinaryData(bytes(range(16))), f"BinaryData(length=16, hex='{bytes(range(16)).hex()}')"),
        (
            BinaryData(bytes(range(17))),
            f"BinaryData(length=17, hex='{bytes(range(16)).hex()}...')",
        ),
        (
            BinaryData(b"\x01", little_endian=False),
            "BinaryData(length=1, hex='01', little_endian=False)",
        ),
    ],
    ids=["empty", "short", "16-bytes", "17-bytes", "big-endian"],
)
def test_repr(bd: BinaryData, expected: str) -> None:
    assert repr(bd) == expected


# ----------------------------------------------------------------------
# Typed accessors


@pytest.mark.parametrize("case", TYPED_CASES, ids=case_id)
def test_typed_set_little_endian_exact_bytes(case: tuple[str, int | float, bytes]) -> None:
    name, value, encoded = case
    bd = BinaryData(len(encoded))
    setter(bd, name)(0, value)
    assert bytes(bd) == encoded
    assert getter(bd, name)(0) == value


@pytest.mark.parametrize("case", TYPED_CASES, ids=case_id)
def test_typed_set_big_endian_exact_bytes(case: tuple[str, int | float, bytes]) -> None:
    name, value, encoded = case
    bd = BinaryData(len(encoded), little_endian=False)
    setter(bd, name)(0, value)
    assert bytes(bd) == encoded[::-1]
    assert getter(bd, name)(0) == value


@pytest.mark.parametrize("case", TYPED_CASES, ids=case_id)
@pytest.mark.parametrize("default_little", [True, False])
def test_typed_per_call_byte_order_overrides_default(
    case: tuple[str, int | float, bytes], default_little: bool
) -> None:
    name, value, encoded = case
    bd = BinaryData(len(encoded), little_endian=default_little)
    setter(bd, name)(0, value, little_endian=True)
    assert bytes(bd) == encoded
    assert getter(bd, name)(0, little_endian=True) == value
    setter(bd, name)(0, value, little_endian=False)
    assert bytes(bd) == encoded[::-1]
    assert getter(bd, name)(0, little_endian=False) == value
    assert bd.little_endian is default_little


def test_uint16_example_from_docs() -> None:
    bd = BinaryData(2)
    bd.set_uint16(0, 0x1234)
    assert bytes(bd) == b"\x34\x12"
    bd.set_uint16(0, 0x1234, little_endian=False)
    assert bytes(bd) == b"\x12\x34"


def test_changing_little_endian_attribute_changes_reads() -> None:
    bd = BinaryData(b"\x12\x34")
    assert bd.get_uint16(0) == 0x3412
    bd.little_endian = False
    assert bd.get_uint16(0) == 0x1234


def test_typed_set_at_offset_leaves_other_bytes() -> None:
    bd = BinaryData(b"\xaa" * 8)
    bd.set_uint16(3, 0x0102)
    assert bytes(bd) == b"\xaa\xaa\xaa\x02\x01\xaa\xaa\xaa"
    assert bd.get_uint16(3) == 0x0102
    assert bd.get_uint16(2) == 0x02AA


def test_same_bytes_read_as_different_types() -> None:
    bd = BinaryData(b"\xff\xff\xff\xff\xff\xff\xff\xff")
    assert bd.get_int8(0) == -1
    assert bd.get_uint8(0) == 255
    assert bd.get_int16(0) == -1
    assert bd.get_uint16(0) == 65535
    assert bd.get_int32(0) == -1
    assert bd.get_uint32(0) == 4294967295
    assert bd.get_int64(0) == -1
    assert bd.get_uint64(0) == 18446744073709551615
    assert math.isnan(bd.get_float32(0))
    assert math.isnan(bd.get_float64(0))


@pytest.mark.parametrize("name", list(INT_RANGES))
@pytest.mark.parametrize("bound", ["minimum", "maximum"])
def test_int_extremes_round_trip(name: str, bound: str) -> None:
    value = INT_RANGES[name][0 if bound == "minimum" else 1]
    for little_endian in (True, False):
        bd = BinaryData(SIZES[name], little_endian=little_endian)
        setter(bd, name)(0, value)
        assert getter(bd, name)(0) == value


@pytest.mark.parametrize(
    ("name", "value", "encoded"),
    [
        ("int64", -(2**63), b"\x00\x00\x00\x00\x00\x00\x00\x80"),
        ("int64", 2**63 - 1, b"\xff\xff\xff\xff\xff\xff\xff\x7f"),
        ("uint64", 2**64 - 1, b"\xff\xff\xff\xff\xff\xff\xff\xff"),
        ("uint64", 2**63, b"\x00\x00\x00\x00\x00\x00\x00\x80"),
        ("uint64", 2**53 + 1, b"\x01\x00\x00\x00\x00\x00\x20\x00"),
    ],
)
def test_64_bit_extremes_exact_bytes(name: str, value: int, encoded: bytes) -> None:
    bd = BinaryData(8)
    setter(bd, name)(0, value)
    assert bytes(bd) == encoded
    assert getter(bd, name)(0) == value
    assert type(getter(bd, name)(0)) is int


@pytest.mark.parametrize("name", list(INT_RANGES))
@pytest.mark.parametrize("side", ["below", "above"])
def test_int_out_of_range_raises_value_error(name: str, side: str) -> None:
    low, high = INT_RANGES[name]
    value = low - 1 if side == "below" else high + 1
    bd = BinaryData(b"\x5a" * SIZES[name])
    expected = f"^value {value} is out of range for {name} \\[{low}, {high}\\]$"
    with pytest.raises(ValueError, match=expected):
        setter(bd, name)(0, value)
    assert bytes(bd) == b"\x5a" * SIZES[name]


@pytest.mark.parametrize("name", list(INT_RANGES))
def test_int_setter_rejects_float(name: str) -> None:
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        setter(BinaryData(8), name)(0, 1.0)


def test_int_setter_accepts_bool_and_index_types() -> None:
    class Three:
        def __index__(self) -> int:
            return 3

    bd = BinaryData(2)
    bd.set_uint8(0, True)
    bd.set_uint8(1, Three())  # type: ignore[arg-type]
    assert bytes(bd) == b"\x01\x03"


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("buffer_length", [0, 3, 8, 9])
def test_typed_access_just_past_the_end_raises(name: str, buffer_length: int) -> None:
    size = SIZES[name]
    offset = max(buffer_length - size + 1, 0)
    assert offset + size > buffer_length
    bd = BinaryData(buffer_length)
    expected = (
        f"^offset {offset} with size {size} is out of range"
        f" for BinaryData of length {buffer_length}$"
    )
    with pytest.raises(IndexError, match=expected):
        getter(bd, name)(offset)
    with pytest.raises(IndexError, match=expected):
        setter(bd, name)(offset, 0)
    assert bytes(bd) == bytes(buffer_length)


@pytest.mark.parametrize("name", list(SIZES))
def test_typed_access_last_position_works(name: str) -> None:
    size = SIZES[name]
    bd = BinaryData(size + 3)
    setter(bd, name)(3, 1)
    assert getter(bd, name)(3) == 1
    assert bytes(bd)[:3] == b"\x00\x00\x00"


@pytest.mark.parametrize("name", list(SIZES))
def test_typed_access_negative_offset_raises(name: str) -> None:
    bd = BinaryData(16)
    expected = f"^offset -1 with size {SIZES[name]} is out of range for BinaryData of length 16$"
    with pytest.raises(IndexError, match=expected):
        getter(bd, name)(-1)
    with pytest.raises(IndexError, match=expected):
        setter(bd, name)(-1, 0)
    assert bytes(bd) == bytes(16)


def test_offset_is_checked_before_value() -> None:
    with pytest.raises(IndexError, match="offset 1 with size 2"):
        BinaryData(2).set_uint16(1, -1)


# ----------------------------------------------------------------------
# Floats


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        (0.1, 0.10000000149011612),
        (1 / 3, 0.3333333432674408),
        (16777217, 16777216.0),
        (3.4028235e38, 3.4028234663852886e38),
        (1e-46, 0.0),
        (3, 3.0),
    ],
)
def test_float32_rounding(value: float, read_back: float) -> None:
    bd = BinaryData(4)
    bd.set_float32(0, value)
    result = bd.get_float32(0)
    assert result == read_back
    assert type(result) is float


def test_float64_keeps_full_precision() -> None:
    bd = BinaryData(8)
    bd.set_float64(0, 0.1)
    assert bd.get_float64(0) == 0.1
    bd.set_float64(0, 2**53 + 1)
    assert bd.get_float64(0) == float(2**53)


@pytest.mark.parametrize("name", ["float32", "float64"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, -0.0])
def test_float_special_values(name: str, value: float) -> None:
    bd = BinaryData(8)
    setter(bd, name)(0, value)
    result = getter(bd, name)(0)
    assert result == value
    assert math.copysign(1.0, result) == math.copysign(1.0, value)


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_float_nan(name: str) -> None:
    bd = BinaryData(8)
    setter(bd, name)(0, math.nan)
    assert math.isnan(getter(bd, name)(0))


@pytest.mark.parametrize("value", [1e39, -1e39, 2**128])
def test_float32_overflow_raises_value_error(value: float) -> None:
    bd = BinaryData(b"\x5a" * 4)
    with pytest.raises(ValueError, match=r"out of range for float32 \[-3\.40282346638"):
        bd.set_float32(0, value)
    assert bytes(bd) == b"\x5a" * 4


def test_float64_overflow_raises_value_error() -> None:
    bd = BinaryData(b"\x5a" * 8)
    with pytest.raises(ValueError, match=r"out of range for float64 \[-1\.797"):
        bd.set_float64(0, 10**400)
    assert bytes(bd) == b"\x5a" * 8


@pytest.mark.parametrize("name", ["float32", "float64"])
@pytest.mark.parametrize("value", ["1.5", b"1", None, 1j])
def test_float_setter_rejects_non_reals(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"{name} value must be a real number"):
        setter(BinaryData(8), name)(0, value)


# ----------------------------------------------------------------------
# fill


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0xAB,), b"\xab\xab\xab\xab\xab"),
        ((1, 2), b"\x00\x00\x01\x01\x01"),
        ((1, 1, 2), b"\x00\x01\x01\x00\x00"),
        ((1, 4, 1), b"\x00\x00\x00\x00\x01"),
        ((1, 2, 0), b"\x00\x00\x00\x00\x00"),
        ((1, 5), b"\x00\x00\x00\x00\x00"),
        ((1, 5, 0), b"\x00\x00\x00\x00\x00"),
        ((255, 0, None), b"\xff\xff\xff\xff\xff"),
    ],
)
def test_fill(args: tuple[int, ...], expected: bytes) -> None:
    bd = BinaryData(5)
    bd.fill(*args)
    assert bytes(bd) == expected


@pytest.mark.parametrize("value", [-1, 256])
def test_fill_rejects_value_outside_byte(value: int) -> None:
    with pytest.raises(ValueError, match=rf"^fill value {value} is out of range \[0, 255\]$"):
        BinaryData(3).fill(value)


@pytest.mark.parametrize(
    ("offset", "length", "message"),
    [
        (4, 2, "^offset 4 with size 2 is out of range for BinaryData of length 5$"),
        (0, 6, "^offset 0 with size 6 is out of range for BinaryData of length 5$"),
        (-1, 1, "^offset -1 with size 1 is out of range for BinaryData of length 5$"),
        (6, None, "^offset 6 is out of range for BinaryData of length 5$"),
        (-1, None, "^offset -1 is out of range for BinaryData of length 5$"),
        (6, 0, "^offset 6 with size 0 is out of range for BinaryData of length 5$"),
    ],
)
def test_fill_range_errors(offset: int, length: int | None, message: str) -> None:
    bd = BinaryData(5)
    with pytest.raises(IndexError, match=message):
        bd.fill(1, offset, length)
    assert bytes(bd) == bytes(5)


def test_fill_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match=r"^length must not be negative, got -1$"):
        BinaryData(5).fill(1, 0, -1)


# ----------------------------------------------------------------------
# copy_from


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, b"ABC..."),
        ({"dest_offset": 3}, b"...ABC"),
        ({"source_offset": 1}, b"BC...."),
        ({"source_offset": 1, "length": 1, "dest_offset": 5}, b".....B"),
        ({"length": 0, "dest_offset": 6}, b"......"),
        ({"source_offset": 3}, b"......"),
    ],
)
def test_copy_from(kwargs: dict[str, int], expected: bytes) -> None:
    bd = BinaryData(b"......")
    bd.copy_from(b"ABC", **kwargs)
    assert bytes(bd) == expected
    assert len(bd) == 6


@pytest.mark.parametrize(
    "source",
    [b"AB", bytearray(b"AB"), memoryview(b"xABx")[1:3], BinaryData(b"AB")],
    ids=["bytes", "bytearray", "memoryview", "BinaryData"],
)
def test_copy_from_source_types(source: bytes | bytearray | memoryview | BinaryData) -> None:
    bd = BinaryData(b"....")
    bd.copy_from(source, dest_offset=1)
    assert bytes(bd) == b".AB."


@pytest.mark.parametrize(
    ("source_offset", "dest_offset", "expected"),
    [(0, 2, b"ababcdgh"), (2, 0, b"cdefefgh"), (0, 0, b"abcdefgh")],
    ids=["forward-overlap", "backward-overlap", "same-place"],
)
def test_copy_from_self_overlapping(source_offset: int, dest_offset: int, expected: bytes) -> None:
    bd = BinaryData(b"abcdefgh")
    bd.copy_from(bd, source_offset, 4, dest_offset)
    assert bytes(bd) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_offset": 4}, "^offset 4 is out of range for source of length 3$"),
        (
            {"source_offset": 2, "length": 2},
            "^offset 2 with size 2 is out of range for source of length 3$",
        ),
        (
            {"source_offset": -1, "length": 1},
            "^offset -1 with size 1 is out of range for source of length 3$",
        ),
        ({"dest_offset": 4}, "^offset 4 with size 3 is out of range for destination of length 6$"),
        (
            {"dest_offset": -1},
            "^offset -1 with size 3 is out of range for destination of length 6$",
        ),
        (
            {"length": 0, "dest_offset": 7},
            "^offset 7 with size 0 is out of range for destination of length 6$",
        ),
    ],
)
def test_copy_from_range_errors_do_not_grow(kwargs: dict[str, int], message: str) -> None:
    bd = BinaryData(b"......")
    with pytest.raises(IndexError, match=message):
        bd.copy_from(b"ABC", **kwargs)
    assert bytes(bd) == b"......"


def test_copy_from_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match=r"^length must not be negative, got -2$"):
        BinaryData(4).copy_from(b"ab", 0, -2)


def test_copy_from_rejects_str() -> None:
    with pytest.raises(TypeError, match="not str"):
        BinaryData(4).copy_from("ab")  # type: ignore[arg-type]


# ----------------------------------------------------------------------
# set_from_bytes and append


@pytest.mark.parametrize(
    "data",
    [b"new", bytearray(b"new"), memoryview(b"new"), BinaryData(b"new")],
    ids=["bytes", "bytearray", "memoryview", "BinaryData"],
)
def test_set_from_bytes(data: bytes | bytearray | memoryview | BinaryData) -> None:
    bd = BinaryData(b"old contents", little_endian=False)
    bd.set_from_bytes(data)
    assert bytes(bd) == b"new"
    assert bd.little_endian is False


def test_set_from_bytes_copies_and_accepts_self() -> None:
    source = bytearray(b"abc")
    bd = BinaryData()
    bd.set_from_bytes(source)
    source[0] = 0
    assert bytes(bd) == b"abc"
    bd.set_from_bytes(bd)
    assert bytes(bd) == b"abc"


@pytest.mark.parametrize(
    "data",
    [b"cd", bytearray(b"cd"), memoryview(b"cd"), BinaryData(b"cd")],
    ids=["bytes", "bytearray", "memoryview", "BinaryData"],
)
def test_append(data: bytes | bytearray | memoryview | BinaryData) -> None:
    bd = BinaryData(b"ab")
    bd.append(data)
    assert bytes(bd) == b"abcd"


def test_append_empty_and_self() -> None:
    bd = BinaryData(b"ab")
    bd.append(b"")
    assert bytes(bd) == b"ab"
    bd.append(bd)
    assert bytes(bd) == b"abab"


@pytest.mark.parametrize(
    "call",
    [
        lambda bd: bd.append("text"),
        lambda bd: bd.append(5),
        lambda bd: bd.set_from_bytes("text"),
        lambda bd: bd.set_from_bytes(None),
    ],
    ids=["append-str", "append-int", "set_from_bytes-str", "set_from_bytes-None"],
)
def test_bytes_input_rejects_non_buffers(call: Callable[[BinaryData], None]) -> None:
    bd = BinaryData(b"ab")
    with pytest.raises(TypeError):
        call(bd)
    assert bytes(bd) == b"ab"


# ----------------------------------------------------------------------
# Text


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", b""),
        ("hello", b"hello"),
        ("héllo", b"h\xc3\xa9llo"),
        ("日本", b"\xe6\x97\xa5\xe6\x9c\xac"),
        ("🎮", b"\xf0\x9f\x8e\xae"),
        ("a\x00b", b"a\x00b"),
    ],
)
def test_text_round_trip(text: str, encoded: bytes) -> None:
    bd = BinaryData(b"previous contents")
    bd.set_from_text(text)
    assert bytes(bd) == encoded
    assert bd.get_text() == text
    assert BinaryData.from_text(text) == encoded


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, "héllo"),
        (1, None, "éllo"),
        (3, None, "llo"),
        (1, 2, "é"),
        (6, None, ""),
        (6, 0, ""),
    ],
)
def test_get_text_range(offset: int, length: int | None, expected: str) -> None:
    assert BinaryData.from_text("héllo").get_text(offset, length) == expected


@pytest.mark.parametrize(
    ("data", "offset", "length"),
    [(b"\xff", 0, None), (b"h\xc3\xa9", 0, 2), (b"h\xc3\xa9", 2, None), (b"\xed\xa0\x80", 0, 3)],
    ids=["invalid-byte", "cut-before-end", "starts-mid-char", "surrogate"],
)
def test_get_text_is_strict(data: bytes, offset: int, length: int | None) -> None:
    with pytest.raises(UnicodeDecodeError):
        BinaryData(data).get_text(offset, length)


def test_get_text_range_error() -> None:
    with pytest.raises(
        IndexError, match=r"^offset 2 with size 5 is out of range for BinaryData of length 5$"
    ):
        BinaryData.from_text("hello").get_text(2, 5)


def test_set_from_text_rejects_bytes() -> None:
    bd = BinaryData(b"keep")
    with pytest.raises(TypeError, match=r"^expected str, not bytes$"):
        bd.set_from_text(b"text")  # type: ignore[arg-type]
    assert bytes(bd) == b"keep"


def test_set_from_text_rejects_lone_surrogate() -> None:
    with pytest.raises(UnicodeEncodeError):
        BinaryData().set_from_text("\ud800")


@pytest.mark.parametrize("little_endian", [True, False])
def test_from_text_byte_order(little_endian: bool) -> None:
    assert BinaryData.from_text("x", little_endian=little_endian).little_endian is little_endian


# ----------------------------------------------------------------------
# Base64


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"foobar", "Zm9vYmFy"),
        (b"\xfb\xff\xbf", "+/+/"),
    ],
)
def test_base64_round_trip(raw: bytes, encoded: str) -> None:
    assert BinaryData(raw).get_base64() == encoded
    bd = BinaryData(b"previous")
    bd.set_from_base64(encoded)
    assert bytes(bd) == raw
    assert BinaryData.from_base64(encoded) == raw


def test_base64_all_byte_values() -> None:
    raw = bytes(range(256)) * 3
    encoded = BinaryData(raw).get_base64()
    assert "\n" not in encoded
    assert BinaryData.from_base64(encoded) == raw


def test_base64_ignores_whitespace() -> None:
    assert BinaryData.from_base64(" Zm9v\nYmFy\r\n\tZg== ") == b"foobarf"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Zm9", "^invalid base64: .*padding"),
        ("Zg", "^invalid base64: .*padding"),
        ("Z", "^invalid base64: "),
        ("-_-_", "^invalid base64: "),
        ("Zm9v!", "^invalid base64: "),
        ("Zm9vé", "^invalid base64: contains non-ASCII characters$"),
    ],
    ids=["missing-pad-3", "missing-pad-2", "one-char", "url-safe-alphabet", "bang", "non-ascii"],
)
def test_base64_invalid(text: str, message: str) -> None:
    bd = BinaryData(b"keep")
    with pytest.raises(ValueError, match=message):
        bd.set_from_base64(text)
    assert bytes(bd) == b"keep"
    with pytest.raises(ValueError, match=message):
        BinaryData.from_base64(text)


def test_base64_rejects_bytes_input() -> None:
    with pytest.raises(TypeError, match=r"^expected str, not bytes$"):
        BinaryData().set_from_base64(b"Zm9v")  # type: ignore[arg-type]


@pytest.mark.parametrize("little_endian", [True, False])
def test_from_base64_byte_order(little_endian: bool) -> None:
    bd = BinaryData.from_base64("AAE=", little_endian=little_endian)
    assert bd.little_endian is little_endian
    assert bd.get_uint16(0) == (0x0100 if little_endian else 0x0001)


# ----------------------------------------------------------------------
# Hex


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"", ""), (b"\x00", "00"), (b"\xde\xad\xbe\xef", "deadbeef"), (b"\x0a\xff", "0aff")],
)
def test_hex_round_trip(raw: bytes, encoded: str) -> None:
    assert BinaryData(raw).get_hex() == encoded
    bd = BinaryData(b"previous")
    bd.set_from_hex(encoded)
    assert bytes(bd) == raw
    assert BinaryData.from_hex(encoded) == raw


@pytest.mark.parametrize(
    "text", ["DEADBEEF", "DeAdBeEf", "de ad be ef", "  dead\nbeef\t", "d e a d b e e f"]
)
def test_set_from_hex_accepts_case_and_whitespace(text: str) -> None:
    assert BinaryData.from_hex(text) == b"\xde\xad\xbe\xef"


def test_get_hex_is_lowercase() -> None:
    assert BinaryData(bytes(range(256))).get_hex() == bytes(range(256)).hex()
    assert BinaryData(b"\xab\xcd").get_hex() == "abcd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", r"^invalid hex: odd number of digits \(3\), expected two per byte$"),
        ("a", r"^invalid hex: odd number of digits \(1\)"),
        ("0g", "^invalid hex: 'g' at position 1 is not a hex digit$"),
        ("0x12", "^invalid hex: 'x' at position 1 is not a hex digit$"),
        ("zz", "^invalid hex: 'z' at position 0 is not a hex digit$"),
        ("é0", "^invalid hex: 'é' at position 0 is not a hex digit$"),
    ],
)
def test_hex_invalid(text: str, message: str) -> None:
    bd = BinaryData(b"keep")
    with pytest.raises(ValueError, match=message):
        bd.set_from_hex(text)
    assert bytes(bd) == b"keep"
    with pytest.raises(ValueError, match=message):
        BinaryData.from_hex(text)


def test_hex_rejects_bytes_input() -> None:
    with pytest.raises(TypeError, match=r"^expected str, not bytes$"):
        BinaryData().set_from_hex(b"00")  # type: ignore[arg-type]


@pytest.mark.parametrize("little_endian", [True, False])
def test_from_hex_byte_order(little_endian: bool) -> None:
    assert BinaryData.from_hex("00", little_endian=little_endian).little_endian is little_endian


# ----------------------------------------------------------------------
# A whole message, the way a game would build and parse one


def test_build_and_parse_message() -> None:
    msg = BinaryData(3)
    msg.set_uint8(0, 7)
    msg.set_uint16(1, 513)
    name = BinaryData.from_text("Ann")
    msg.append(name)
    position = BinaryData(8, little_endian=False)
    position.set_float32(0, 1.5)
    position.set_float32(4, -0.25)
    msg.append(position)

    wire = bytes(msg)
    assert wire == b"\x07\x01\x02Ann\x3f\xc0\x00\x00\xbe\x80\x00\x00"

    parsed = BinaryData(wire)
    assert parsed.get_uint8(0) == 7
    assert parsed.get_uint16(1) == 513
    assert parsed.get_text(3, 3) == "Ann"
    assert parsed.get_float32(6, little_endian=False) == 1.5
    assert parsed.get_float32(10, little_endian=False) == -0.25
    assert re.fullmatch(r"BinaryData\(length=14, hex='[0-9a-f]{28}'\)", repr(parsed))
